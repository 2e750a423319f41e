//! Registry pulls from a real local registry: Debian's `docker-registry` started on
//! 127.0.0.1 with its own storage, filled with `skopeo copy` from a layout built from the
//! busybox fixture. Manifest lists, gzip + zstd layers, caching by digest, a corrupted blob.

mod worker_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use worker_common::*;

struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(env: &Env) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = env.path("registry-storage");
    let config = env.write(
        "registry.yml",
        &format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp: {{addr: '127.0.0.1:{port}'}}\n",
            storage.display()
        ),
    );
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting docker-registry (apt-get install docker-registry)");
    let reg = Registry {
        child,
        port,
        storage,
    };
    // Wait until it accepts connections (bounded; not a timing assertion).
    let deadline =
        std::time::Instant::now() + berth_integration::scaled(std::time::Duration::from_secs(10));
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return reg;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("docker-registry did not start on 127.0.0.1:{port}");
}

fn push(layout: &Path, reg: &Registry, name: &str) {
    sh(&format!("skopeo copy -q --all --dest-tls-verify=false \"oci:$1:latest\" docker://127.0.0.1:{}/{name}", reg.port), &[layout]);
}

fn stored_images(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.work_dir().join("images"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

const CHECK: &str = "run: {path: sh, args: [-c, 'ls /data /opq | tr \"\\n\" \" \"; cat /etc/motd; echo $FROM_IMAGE']}\n";

#[test]
fn pull_manifest_list_and_cache_by_digest() {
    let env = Env::new();
    let reg = start_registry(&env);
    let layout = make_layout(&env, true);
    push(&layout, &reg, "test/multi:1");
    let task = env.write(
        "task.yml",
        &format!("platform: linux\nimage_resource: {{type: registry-image, source: {{repository: '127.0.0.1:{}/test/multi', tag: '1'}}}}\n{CHECK}", reg.port),
    );
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "/data: keep  /opq: y layer2\nyes\n",
        "linux/amd64 picked, whiteouts applied: {}",
        text(&o)
    );
    let first = stored_images(&env);
    assert_eq!(first.len(), 1, "{first:?}");
    // Second run: served from the store, even with the registry gone.
    drop(reg);
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stored_images(&env), first);
    env.assert_clean(&[]);
}

#[test]
fn pull_by_digest_with_image_flag() {
    let env = Env::new();
    let reg = start_registry(&env);
    let layout = make_layout(&env, false);
    push(&layout, &reg, "test/single:latest");
    let digest = String::from_utf8_lossy(
        &Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                &format!("docker://127.0.0.1:{}/test/single:latest", reg.port),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let task = env.write("task.yml", &format!("platform: linux\n{CHECK}"));
    let o = env.worker(&[
        "run",
        task.to_str().unwrap(),
        "--image",
        &format!("127.0.0.1:{}/test/single@{digest}", reg.port),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "/data: keep  /opq: y layer2\nyes\n");
    assert_eq!(stored_images(&env), vec![digest.replace(':', "-")]);
}

#[test]
fn corrupted_blob_in_the_registry_is_a_digest_error() {
    let env = Env::new();
    let reg = start_registry(&env);
    let layout = make_layout(&env, false);
    push(&layout, &reg, "test/bad:1");
    // Corrupt the zstd layer's data file in the registry's own storage.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("manifest.json")).unwrap()).unwrap();
    let hex = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let data = reg
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(&hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let task = env.write("task.yml", &format!("platform: linux\n{CHECK}"));
    let o = env.worker(&[
        "run",
        task.to_str().unwrap(),
        "--image",
        &format!("127.0.0.1:{}/test/bad:1", reg.port),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("digest mismatch") && stderr(&o).contains(&hex),
        "{}",
        text(&o)
    );
    assert_eq!(stored_images(&env), Vec::<String>::new(), "store touched");
    env.assert_clean(&[]);
}
