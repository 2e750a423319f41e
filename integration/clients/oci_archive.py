#!/usr/bin/env python3
"""Write an OCI image archive (oci-archive tar) of a rootfs directory.

Usage: oci_archive.py ROOTFS REF OUT.tar

One uncompressed layer, a config with a default PATH, an index whose
manifest carries the `org.opencontainers.image.ref.name` annotation (and
containerd's `io.containerd.image.name`) so `ctr images import` names it.
"""
import hashlib, io, json, os, sys, tarfile, tempfile

rootfs, ref, out = sys.argv[1:4]

def blob(tf, data, media):
    d = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{d}")
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))
    return {"mediaType": media, "digest": f"sha256:{d}", "size": len(data)}

with tempfile.TemporaryFile() as layer:
    with tarfile.open(fileobj=layer, mode="w") as lt:
        for name in sorted(os.listdir(rootfs)):
            lt.add(os.path.join(rootfs, name), arcname=name)
    layer.seek(0)
    layer_bytes = layer.read()
diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
}).encode()
with tarfile.open(out, "w") as tf:
    l = blob(tf, layer_bytes, "application/vnd.oci.image.layer.v1.tar")
    c = blob(tf, config, "application/vnd.oci.image.config.v1+json")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": c, "layers": [l]}).encode()
    m = blob(tf, manifest, "application/vnd.oci.image.manifest.v1+json")
    m["annotations"] = {"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref}
    for name, data in [("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
                       ("index.json", json.dumps({"schemaVersion": 2, "manifests": [m]}).encode())]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
