//! Shared helpers for the berth-worker end-to-end tests (run as root).
//!
//! Binaries: `BERTH_WORKER_BIN` (default target/release/berth-worker) drives the runtime
//! `BERTH_BIN` (default target/release/berth; runc works too). Fixtures: `BERTH_FIXTURES`
//! (default <repo>/build). Every test gets its own `--work-dir`, so tests can run in parallel
//! and each checks that *its* runs left nothing behind.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixtures() -> PathBuf {
    std::env::var_os("BERTH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("build"))
}

pub fn busybox() -> PathBuf {
    fixtures().join("rootfs/busybox")
}

pub fn bookworm() -> PathBuf {
    fixtures().join("rootfs/bookworm")
}

pub fn worker_bin() -> PathBuf {
    std::env::var_os("BERTH_WORKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/berth-worker"))
}

pub fn runtime_bin() -> String {
    std::env::var("BERTH_BIN")
        .unwrap_or_else(|_| repo().join("target/release/berth").display().to_string())
}

/// The highest id in our uid map: where task root lands on the host (Concourse's mapping).
pub fn host_max() -> u32 {
    let m = std::fs::read_to_string("/proc/self/uid_map").unwrap();
    let mut max = 0u64;
    for l in m.lines() {
        let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
        max = max.max(f[0] + f[2] - 1);
    }
    max.min(u32::MAX as u64 - 1) as u32
}

/// The `BERTH_WORKER_IDMAP` settings the unprivileged tests run under: `auto` (idmapped
/// mounts where the kernel has them, as on a 6.x host) and `off` (the uid-shifted copies every
/// kernel before 5.19 gets). On such an old kernel both give shifted copies.
pub const IDMAP_MODES: [&str; 2] = ["auto", "off"];

/// One test's sandbox: a temp dir holding the work dir and the test's files.
pub struct Env {
    pub tmp: tempfile::TempDir,
    /// `BERTH_WORKER_IDMAP` for every worker command of this env (unset: the worker's default).
    pub idmap: Option<String>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            tmp: tempfile::Builder::new()
                .prefix("berth-worker-it-")
                .tempdir()
                .unwrap(),
            idmap: None,
        }
    }

    /// An env whose worker commands run with `BERTH_WORKER_IDMAP=mode`.
    pub fn with_idmap(mode: &str) -> Env {
        let mut e = Env::new();
        e.idmap = Some(mode.to_string());
        e
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn work_dir(&self) -> PathBuf {
        self.path("work")
    }

    /// Write a file (creating parents) and return its path.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(worker_bin());
        c.arg("--work-dir")
            .arg(self.work_dir())
            .env("BERTH_BIN", runtime_bin())
            // These tests need no network: keep them off the host's network stack (no bridge
            // or iptables rules on the test machine). worker_net.rs tests the bridge inside
            // namespaces of its own.
            .env("BERTH_WORKER_NETWORK", "none")
            // `-o` directories the worker creates belong to SUDO_UID/SUDO_GID: a test run
            // through sudo must not change who owns the outputs.
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID");
        match &self.idmap {
            Some(m) => c.env("BERTH_WORKER_IDMAP", m),
            None => c.env_remove("BERTH_WORKER_IDMAP"),
        };
        c
    }

    /// `berth-worker ARGS…`, waited for.
    pub fn worker(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .output()
            .expect("running berth-worker")
    }

    /// `berth-worker run TASK --image IMAGE ARGS…`.
    pub fn run(&self, task: &Path, image: &Path, extra: &[&str]) -> Output {
        let mut c = self.cmd();
        c.arg("run").arg(task).arg("--image").arg(image).args(extra);
        c.output().expect("running berth-worker")
    }

    /// Start `berth-worker run` with stdout piped and wait until the task prints `marker`.
    /// The child is handed to the caller, which waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn spawn_until(
        &self,
        task: &Path,
        image: &Path,
        extra: &[&str],
        marker: &str,
    ) -> (Child, BufReader<std::process::ChildStdout>) {
        let mut c = self.cmd();
        c.arg("run")
            .arg(task)
            .arg("--image")
            .arg(image)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawning berth-worker");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).unwrap();
            if n == 0 {
                let o = child.wait_with_output();
                panic!("berth-worker ended before the task printed {marker:?}: {o:?}");
            }
            if line.trim() == marker {
                return (child, out);
            }
        }
    }

    /// The ids of runs currently recorded in the work dir.
    pub fn run_ids(&self) -> Vec<String> {
        match std::fs::read_dir(self.work_dir().join("runs")) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Nothing of this env's runs is left: no mount under the work dir, no run record, no
    /// runtime state, and no cgroup for any of `ids`.
    pub fn assert_clean(&self, ids: &[String]) {
        let work = self.work_dir();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<&str> = info
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|m| Path::new(m).starts_with(&work))
            })
            .collect();
        assert!(left.is_empty(), "mounts left behind: {left:#?}");
        assert_eq!(
            self.run_ids(),
            Vec::<String>::new(),
            "run records left behind"
        );
        let state: Vec<_> = std::fs::read_dir(work.join("runtime"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(state.is_empty(), "runtime state left behind: {state:?}");
        for id in ids {
            for ctrl in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let cg = ctrl
                    .path()
                    .join("berth-worker")
                    .join(format!("berth-worker-{id}"));
                assert!(!cg.exists(), "cgroup left behind: {}", cg.display());
            }
        }
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Is any process running whose command line contains `needle`?
pub fn process_running(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
            .unwrap_or(false)
    })
}

/// First 8 hex digits of sha256(s), computed by coreutils (independent of the worker's code).
pub fn sha8(s: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("printf %s \"$1\" | sha256sum | cut -c1-8")
        .arg("sh")
        .arg(s)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn sh(script: &str, args: &[&Path]) {
    let o = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .arg("sh")
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{script}: {}", text(&o));
}

pub fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Move `file` into the layout's blobs as sha256:<hex>; returns (digest, size).
pub fn add_blob(layout: &Path, file: &Path) -> (String, u64) {
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
pub fn make_layout(env: &Env, nested_index: bool) -> PathBuf {
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
    let mut top = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": dm, "size": sm});
    if nested_index {
        // A multi-platform image: the layout's entry is an image index (a manifest list once
        // pushed) naming an arm64 decoy first, then our linux/amd64 manifest.
        // The decoy differs only in its config's FROM_IMAGE, so picking it shows in the output.
        let mut decoy_cfg = config.clone();
        decoy_cfg["architecture"] = serde_json::json!("arm64");
        decoy_cfg["config"]["Env"][0] = serde_json::json!("FROM_IMAGE=arm64-decoy");
        let (ddc, sdc) = add_blob(
            &layout,
            &env.write("config-decoy.json", &decoy_cfg.to_string()),
        );
        let mut decoy = manifest.clone();
        decoy["config"]["digest"] = serde_json::json!(ddc);
        decoy["config"]["size"] = serde_json::json!(sdc);
        let (ddm, sdm) = add_blob(
            &layout,
            &env.write("manifest-decoy.json", &decoy.to_string()),
        );
        let nested = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ddm, "size": sdm, "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": dm, "size": sm, "platform": {"os": "linux", "architecture": "amd64"}}
        ]});
        let n_path = env.write("index-nested.json", &nested.to_string());
        let (dn, sn) = add_blob(&layout, &n_path);
        top = serde_json::json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": dn, "size": sn});
    }
    top["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    layout
}
