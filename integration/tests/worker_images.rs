//! Image formats end to end: rootfs tarball, OCI layout dir (gzip + zstd layers, whiteouts,
//! opaque dirs), oci-archive (made by skopeo), digest verification, the store commands.

mod worker_common;

use worker_common::*;

const CHECK: &str = "platform: linux\nrun: {path: sh, args: [-c, 'ls /data /opq | tr \"\\n\" \" \"; cat /etc/motd; echo $FROM_IMAGE']}\n";

#[test]
fn oci_layout_layers_whiteouts_and_image_config() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let layout = make_layout(&env, false);
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
}

#[test]
fn oci_archive_from_skopeo_and_names() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let layout = make_layout(&env, false);
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
}

#[test]
fn corrupted_layer_is_a_digest_error_and_leaves_the_store_alone() {
    let env = Env::new();
    let layout = make_layout(&env, false);
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
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let tgz = env.path("rootfs.tgz");
        // With a device node and a FIFO, which must come out as such (not as empty files).
        sh(
            r#"cp -a "$1" "$3"; mkdir -p "$3/dev"; mknod "$3/dev/null" c 1 3; chmod 666 "$3/dev/null"; mkfifo "$3/fifo"; tar -C "$3" -czf "$2" ."#,
            &[&busybox(), &tgz, &env.path("stage")],
        );
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
        let root = images[0].path().join("rootfs");
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
        assert!(m.file_type().is_char_device(), "dev/null: {m:?}");
        assert_eq!((m.rdev(), m.mode() & 0o777), (libc::makedev(1, 3), 0o666));
        assert!(std::fs::symlink_metadata(root.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        env.assert_clean(&[]);
    }
}
