//! Registry pulls from a real local registry: Debian's `docker-registry` started on
//! 127.0.0.1 with its own storage, filled with `skopeo copy` from a layout built from the
//! busybox fixture. Manifest lists, gzip + zstd layers, caching by digest, a corrupted blob;
//! through a proxy that logs requests and slows the registry down: tags resolved on every
//! run, the unreachable-registry fallback, Ctrl-C during a pull.

mod worker_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

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

/// A TCP proxy in front of the registry: logs the request lines it passes and can slow down
/// ("trickle": 1 KiB every 20 ms) or stop ("stall") what the registry sends back, to catch a
/// pull in the middle of a layer.
struct Proxy {
    port: u16,
    st: Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    requests: Mutex<Vec<String>>,
    /// Bytes passed from the registry to the worker.
    down: AtomicU64,
    /// 0 pass, 1 trickle, 2 stall.
    mode: AtomicU8,
    stop: AtomicBool,
}

const PASS: u8 = 0;
const TRICKLE: u8 = 1;
const STALL: u8 = 2;

impl Drop for Proxy {
    fn drop(&mut self) {
        self.st.stop.store(true, Ordering::SeqCst);
    }
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let st = Arc::new(ProxyState::default());
        let s = st.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || proxy_conn(c, upstream, s));
            }
        });
        Proxy { port, st }
    }

    fn requests(&self) -> Vec<String> {
        self.st.requests.lock().unwrap().clone()
    }

    /// Wait (bounded) until `bytes` went down to `child`, which must still be running.
    fn wait_for_bytes(&self, bytes: u64, child: &mut Child) {
        for _ in 0..3000 {
            if self.st.down.load(Ordering::SeqCst) >= bytes {
                return;
            }
            if let Some(s) = child.try_wait().unwrap() {
                panic!("berth-worker ended ({s}) before {bytes} bytes were pulled");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the pull never reached {bytes} bytes");
    }
}

fn proxy_conn(client: TcpStream, upstream: u16, st: Arc<ProxyState>) {
    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (mut c_in, mut u_out) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let s = st.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            for l in String::from_utf8_lossy(&buf[..n]).lines() {
                if l.starts_with("GET ") || l.starts_with("HEAD ") {
                    s.requests.lock().unwrap().push(l.to_string());
                }
            }
            if u_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = u_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut u_in, mut c_out) = (up, client);
    let mut buf = [0u8; 65536];
    loop {
        let mode = st.mode.load(Ordering::SeqCst);
        while st.mode.load(Ordering::SeqCst) == STALL {
            if st.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let chunk = if mode == PASS { buf.len() } else { 1024 };
        let n = match u_in.read(&mut buf[..chunk]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
        st.down.fetch_add(n as u64, Ordering::SeqCst);
        if mode == TRICKLE {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let _ = c_out.shutdown(std::net::Shutdown::Write);
}

/// A copy of the (single-manifest) `layout` whose config says `FROM_IMAGE=<v>`: same layers,
/// another manifest digest.
fn variant(env: &Env, layout: &Path, v: &str) -> PathBuf {
    let dst = env.path(&format!("layout-{v}"));
    sh(r#"cp -a "$1" "$2""#, &[layout, &dst]);
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let blob = |d: &serde_json::Value| {
        dst.join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let mut index = read(&dst.join("index.json"));
    let mut m = read(&blob(&index["manifests"][0]["digest"]));
    let mut cfg = read(&blob(&m["config"]["digest"]));
    cfg["config"]["Env"][0] = serde_json::json!(format!("FROM_IMAGE={v}"));
    let (dc, sc) = add_blob(
        &dst,
        &env.write(&format!("config-{v}.json"), &cfg.to_string()),
    );
    m["config"]["digest"] = serde_json::json!(dc);
    m["config"]["size"] = serde_json::json!(sc);
    let (dm, sm) = add_blob(
        &dst,
        &env.write(&format!("manifest-{v}.json"), &m.to_string()),
    );
    index["manifests"][0]["digest"] = serde_json::json!(dm);
    index["manifests"][0]["size"] = serde_json::json!(sm);
    std::fs::write(dst.join("index.json"), index.to_string()).unwrap();
    dst
}

fn resource_task(env: &Env, port: u16, repo: &str) -> PathBuf {
    env.write(
        "task.yml",
        &format!("platform: linux\nimage_resource: {{type: registry-image, source: {{repository: '127.0.0.1:{port}/{repo}', tag: '1'}}}}\n{CHECK}"),
    )
}

#[test]
fn a_re_pushed_tag_runs_the_new_digest_and_an_unchanged_one_is_not_downloaded() {
    let env = Env::new();
    let reg = start_registry(&env);
    let proxy = Proxy::start(reg.port);
    let layout = make_layout(&env, false);
    push(&layout, &reg, "test/tag:1");
    let task = resource_task(&env, proxy.port, "test/tag");
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).ends_with("\nyes\n"), "{}", text(&o));
    // The tag moves to another digest: the next run resolves it and runs the new image.
    push(&variant(&env, &layout, "v2"), &reg, "test/tag:1");
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).ends_with("\nv2\n"),
        "old digest ran: {}",
        text(&o)
    );
    assert_eq!(stored_images(&env).len(), 2, "{:?}", stored_images(&env));
    // Unchanged: one manifest request, no blob downloaded.
    let before = proxy.requests().len();
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).ends_with("\nv2\n"), "{}", text(&o));
    let reqs = proxy.requests()[before..].to_vec();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].contains("/v2/test/tag/manifests/1 "), "{reqs:?}");
    assert_eq!(stored_images(&env).len(), 2);
    env.assert_clean(&[]);
}

#[test]
fn an_unreachable_registry_falls_back_to_the_stored_pull_with_a_warning() {
    let env = Env::new();
    let reg = start_registry(&env);
    let port = reg.port;
    push(&make_layout(&env, false), &reg, "test/gone:1");
    let task = resource_task(&env, port, "test/gone");
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!stderr(&o).contains("warning"), "{}", text(&o));
    drop(reg);
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).ends_with("\nyes\n"), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning: registry 127.0.0.1:") && e.contains("unreachable"),
        "{}",
        text(&o)
    );
    assert!(e.contains(&format!("127.0.0.1:{port}/test/gone:1")), "{e}");
    // A tag never pulled has nothing to fall back to: an error naming the registry.
    let other = resource_task(&env, port, "test/never");
    let o = env.worker(&["run", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!("registry 127.0.0.1:{port} is unreachable")),
        "{}",
        text(&o)
    );
    env.assert_clean(&[]);
}

/// Start `run` of an image_resource through `proxy` (stderr piped) and wait until the pull is
/// inside the first layer (more than manifest and config went down).
fn start_slow_pull(env: &Env, reg: &Registry, proxy: &Proxy) -> Child {
    push(&make_layout(env, false), reg, "test/slow:1");
    proxy.st.mode.store(TRICKLE, Ordering::SeqCst);
    let task = resource_task(env, proxy.port, "test/slow");
    let mut child = env
        .cmd()
        .arg("run")
        .arg(&task)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    proxy.wait_for_bytes(32 << 10, &mut child);
    child
}

fn sigint(child: &Child) {
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

/// Wait for `child` (bounded: a hang guard, not a timing assertion); kill it on a hang.
fn wait_bounded(mut child: Child) -> std::process::Output {
    for _ in 0..1500 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    panic!("berth-worker did not stop after SIGINT: {}", text(&o));
}

#[test]
fn sigint_during_a_pull_cancels_it_and_leaves_nothing() {
    let env = Env::new();
    let reg = start_registry(&env);
    let proxy = Proxy::start(reg.port);
    let child = start_slow_pull(&env, &reg, &proxy);
    sigint(&child);
    // The layer still trickles: only a cancelled pull ends before it is complete.
    let o = wait_bounded(child);
    assert_eq!(o.status.code(), Some(3), "aborted: {}", text(&o));
    assert!(
        stderr(&o).contains("cancelling the image pull"),
        "{}",
        text(&o)
    );
    assert_eq!(stdout(&o), "", "the task must not have run");
    assert_eq!(
        stored_images(&env),
        Vec::<String>::new(),
        "left in the store"
    );
    env.assert_clean(&[]);
}

#[test]
fn a_second_sigint_exits_at_once_and_gc_sweeps_the_rest() {
    let env = Env::new();
    let reg = start_registry(&env);
    let proxy = Proxy::start(reg.port);
    let mut child = start_slow_pull(&env, &reg, &proxy);
    // The registry stops sending: the cancelled download waits in a read.
    proxy.st.mode.store(STALL, Ordering::SeqCst);
    sigint(&child);
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("interrupt again to exit now") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "no cancel message");
    }
    sigint(&child);
    let o = wait_bounded(child);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("interrupted again: exiting now"), "{rest}");
    // What the killed pull left is hidden from the store and swept by gc.
    assert!(
        stored_images(&env).iter().all(|n| n.starts_with(".pull-")),
        "{:?}",
        stored_images(&env)
    );
    let g = env.worker(&["gc"]);
    assert!(g.status.success(), "{}", text(&g));
    assert_eq!(stored_images(&env), Vec::<String>::new(), "{}", text(&g));
    env.assert_clean(&[]);
}

#[test]
fn a_path_looking_image_that_does_not_exist_is_an_error_not_a_pull() {
    let env = Env::new();
    let task = env.write("task.yml", &format!("platform: linux\n{CHECK}"));
    for image in ["./no-such-rootfs", "/no/such/rootfs.tar", "~/img"] {
        let o = env.worker(&["run", task.to_str().unwrap(), "--image", image]);
        assert_eq!(o.status.code(), Some(2), "{image}: {}", text(&o));
        assert!(
            stderr(&o).contains(&format!("image path {image}: no such file or directory")),
            "{image}: {}",
            text(&o)
        );
        assert!(!stderr(&o).contains("registry"), "{image}: {}", text(&o));
    }
    assert_eq!(stored_images(&env), Vec::<String>::new());
    env.assert_clean(&[]);
}

#[test]
fn images_pull_stores_the_tag_and_skips_a_known_digest() {
    let env = Env::new();
    let reg = start_registry(&env);
    let proxy = Proxy::start(reg.port);
    push(&make_layout(&env, true), &reg, "test/pulled:2");
    let r = format!("127.0.0.1:{}/test/pulled:2", proxy.port);
    let o = env.worker(&["images", "pull", &r]);
    assert!(o.status.success(), "{}", text(&o));
    let key = stdout(&o).trim().to_string();
    assert_eq!(stored_images(&env), vec![key.clone()]);
    let list = env.worker(&["images", "list"]);
    assert!(stdout(&list).contains(&r), "{}", text(&list));
    let before = proxy.requests().len();
    let o = env.worker(&["images", "pull", &r]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), key);
    let reqs = proxy.requests()[before..].to_vec();
    assert!(reqs.iter().all(|r| !r.contains("/blobs/")), "{reqs:?}");
}
