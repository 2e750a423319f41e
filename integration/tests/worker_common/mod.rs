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

/// One test's sandbox: a temp dir holding the work dir and the test's files.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            tmp: tempfile::Builder::new()
                .prefix("berth-worker-it-")
                .tempdir()
                .unwrap(),
        }
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
            .env("BERTH_BIN", runtime_bin());
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
