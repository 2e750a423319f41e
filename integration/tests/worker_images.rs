//! Image formats end to end: rootfs tarball, OCI layout dir (gzip + zstd layers, whiteouts,
//! opaque dirs), oci-archive (made by skopeo), digest verification, the store commands.

mod worker_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use worker_common::*;

fn sh(script: &str, args: &[&Path]) {
    let o = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .arg("sh")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o));
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Move `file` into the layout's blobs as sha256:<hex>; returns (digest, size).
fn add_blob(layout: &Path, file: &Path) -> (String, u64) {
    let hex = sha256(file);
    let dst = layout.join("blobs/sha256").join(&hex);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(file, &dst).unwrap();
    (
        format!("sha256:{hex}"),
        std::fs::metadata(&dst).unwrap().len(),
    )
}

/// An OCI image layout with two layers built with tar/gzip/zstd from the busybox fixture:
/// layer 1 (gzip) = busybox + data/{keep,old} + opq/x, layer 2 (zstd) = a whiteout of
/// data/old, an opaque opq/ with opq/y, and etc/motd.
fn make_layout(env: &Env) -> PathBuf {
    let l1 = env.path("stage1");
    let l2 = env.path("stage2");
    sh(
        r#"mkdir -p "$1" "$2"; cp -a "$3"/. "$1"/; mkdir -p "$1/data" "$1/opq"; echo keep > "$1/data/keep"; echo old > "$1/data/old"; echo x > "$1/opq/x"
           mkdir -p "$2/data" "$2/opq" "$2/etc"; : > "$2/data/.wh.old"; : > "$2/opq/.wh..wh..opq"; echo y > "$2/opq/y"; echo layer2 > "$2/etc/motd"
           tar -C "$1" -cf - . | gzip -n > "$4"; tar -C "$2" -cf - . | zstd -q > "$5""#,
        &[
            &l1,
            &l2,
            &busybox(),
            &env.path("l1.tar.gz"),
            &env.path("l2.tar.zst"),
        ],
    );
    let layout = env.path("layout");
    std::fs::create_dir_all(&layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let (d1, s1) = add_blob(&layout, &env.path("l1.tar.gz"));
    let (d2, s2) = add_blob(&layout, &env.path("l2.tar.zst"));
    let diff = |p: &str| {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} {} | sha256sum",
                if p.ends_with("gz") {
                    "gzip -dc"
                } else {
                    "zstd -dcq"
                },
                env.path(p).display()
            ))
            .output()
            .unwrap();
        format!(
            "sha256:{}",
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap()
        )
    };
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["FROM_IMAGE=yes", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo from-cmd $FROM_IMAGE"]},
        "rootfs": {"type": "layers", "diff_ids": [diff("l1.tar.gz"), diff("l2.tar.zst")]}
    });
    let cfg_path = env.write("config.json", &config.to_string());
    let (dc, sc) = add_blob(&layout, &cfg_path);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": dc, "size": sc},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d1, "size": s1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": d2, "size": s2}
        ]
    });
    let m_path = env.write("manifest.json", &manifest.to_string());
    let (dm, sm) = add_blob(&layout, &m_path);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": dm, "size": sm,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    layout
}

const CHECK: &str = "platform: linux\nrun: {path: sh, args: [-c, 'ls /data /opq | tr \"\\n\" \" \"; cat /etc/motd; echo $FROM_IMAGE']}\n";

#[test]
fn oci_layout_layers_whiteouts_and_image_config() {
    let env = Env::new();
    let layout = make_layout(&env);
    let task = env.write("task.yml", CHECK);
    let o = env.run(&task, &layout, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "/data: keep  /opq: y layer2\nyes\n",
        "{}",
        text(&o)
    );
    // An empty run.path runs the image's entrypoint + cmd.
    let task2 = env.write("task2.yml", "platform: linux\nrun: {}\n");
    let o = env.run(&task2, &layout, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "from-cmd yes\n");
    // The unpacked image is stored once, under the manifest digest, and the run did not change it.
    let list = env.worker(&["images", "list"]);
    assert_eq!(stdout(&list).lines().count(), 2, "{}", text(&list));
    let key = std::fs::read_dir(env.work_dir().join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .unwrap();
    assert!(
        !key.join("rootfs/tmp/build").exists(),
        "a run wrote into the stored image"
    );
}

#[test]
fn oci_archive_from_skopeo_and_names() {
    let env = Env::new();
    let layout = make_layout(&env);
    let archive = env.path("image.tar");
    sh(
        r#"skopeo copy -q "oci:$1:latest" "oci-archive:$2:latest""#,
        &[&layout, &archive],
    );
    let o = env.worker(&[
        "images",
        "import",
        archive.to_str().unwrap(),
        "--name",
        "example/probe:1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // image_resource finds it by name, without --image.
    let task = env.write("task.yml", &CHECK.replace("platform: linux\n", "platform: linux\nimage_resource: {type: registry-image, source: {repository: example/probe, tag: '1'}}\n"));
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "/data: keep  /opq: y layer2\nyes\n");
    let o = env.worker(&["images", "rm", "example/probe:1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = env.worker(&["images", "list"]);
    assert_eq!(stdout(&o).lines().count(), 1, "{}", text(&o));
}

#[test]
fn corrupted_layer_is_a_digest_error_and_leaves_the_store_alone() {
    let env = Env::new();
    let layout = make_layout(&env);
    // Flip the last byte of the zstd layer (the smaller blob that is a layer).
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("manifest.json")).unwrap()).unwrap();
    let d = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let blob = layout.join("blobs/sha256").join(&d);
    let mut data = std::fs::read(&blob).unwrap();
    let n = data.len();
    data[n - 1] ^= 0xff;
    std::fs::write(&blob, data).unwrap();
    let o = env.worker(&["images", "import", layout.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("digest mismatch") || stderr(&o).contains(&d),
        "{}",
        text(&o)
    );
    let left: Vec<_> = std::fs::read_dir(env.work_dir().join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "store touched: {left:?}");
}

#[test]
fn rootfs_tarball_gzip_is_imported_once() {
    let env = Env::new();
    let tgz = env.path("rootfs.tgz");
    sh(r#"tar -C "$1" -czf "$2" ."#, &[&busybox(), &tgz]);
    let task = env.write(
        "task.yml",
        "platform: linux\nrun: {path: busybox, args: [echo, from-tarball]}\n",
    );
    for _ in 0..2 {
        let o = env.run(&task, &tgz, &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(stdout(&o), "from-tarball\n");
    }
    let images: Vec<_> = std::fs::read_dir(env.work_dir().join("images"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(images.len(), 1);
    assert_eq!(
        images[0].file_name().to_string_lossy(),
        format!("sha256-{}", sha256(&tgz))
    );
    env.assert_clean(&[]);
}
