//! What a container left on the host after it should be gone.

use std::fmt;
use std::path::{Path, PathBuf};

/// One host resource still tied to a container id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// `<root>/<id>` (the runtime's state dir).
    StateDir(PathBuf),
    /// A cgroup directory whose name contains the id.
    Cgroup(PathBuf),
    /// A line of the host's mountinfo mentioning the id or the bundle.
    Mount(String),
    /// A live process whose command line or cgroup mentions the id.
    Process {
        /// Its pid.
        pid: i32,
        /// `comm` and command line, for the report.
        what: String,
    },
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::StateDir(p) => write!(f, "state dir {}", p.display()),
            Leftover::Cgroup(p) => write!(f, "cgroup {}", p.display()),
            Leftover::Mount(line) => write!(f, "mount: {line}"),
            Leftover::Process { pid, what } => write!(f, "process {pid} {what}"),
        }
    }
}

/// Host resources still tied to a container id.
#[derive(Debug, Default)]
pub struct Leftovers(pub Vec<Leftover>);

impl Leftovers {
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One line per leftover.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Panics, listing what was found, unless nothing was.
    #[track_caller]
    pub fn assert_empty(&self, id: &str) {
        assert!(
            self.is_empty(),
            "container {id} left things behind:\n  {}",
            self.lines().join("\n  ")
        );
    }

    /// Removes what a runtime under test failed to remove, so that a failing test
    /// (runc leaks cgroups when `create` is killed) does not leave junk on the
    /// machine: kills the processes, then removes the cgroup dirs (deepest first)
    /// and the state dir. Mounts are reported only. Best effort, errors ignored;
    /// called after the assertions, never instead of them.
    pub fn scrub(&self) {
        for leftover in &self.0 {
            if let Leftover::Process { pid, .. } = leftover {
                // SAFETY: kill(2) has no memory effects. The pid was seen moments
                // ago with the container id in its cmdline or cgroup.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
        }
        let mut cgroups: Vec<&PathBuf> = self
            .0
            .iter()
            .filter_map(|l| match l {
                Leftover::Cgroup(p) => Some(p),
                _ => None,
            })
            .collect();
        cgroups.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for dir in cgroups {
            // A cgroup with just-killed members is busy until they are reaped.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        for leftover in &self.0 {
            if let Leftover::StateDir(dir) = leftover {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// Scans the host for anything container `id` (with state root `root` and bundle
/// `bundle`) may have left:
///
/// - its state dir `<root>/<id>`;
/// - a cgroup dir whose name contains the id, in any hierarchy under /sys/fs/cgroup
///   (v1 controllers, the v2/unified tree);
/// - a line of this process's /proc/self/mountinfo that mentions the id or the bundle
///   (a mount that escaped the container's mount namespace);
/// - a live (non-zombie) process, other than this one, whose command line or
///   /proc/<pid>/cgroup mentions the id.
///
/// Ids come from [`crate::unique_id`], which guarantees no id contains another, so a
/// substring match is exact enough.
pub fn leftovers(root: &Path, id: &str, bundle: &Path) -> Leftovers {
    let mut found = Vec::new();
    let state_dir = root.join(id);
    if state_dir.symlink_metadata().is_ok() {
        found.push(Leftover::StateDir(state_dir));
    }
    scan_cgroups(Path::new("/sys/fs/cgroup"), id, &mut found);
    let bundle = bundle.to_string_lossy();
    if let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in mountinfo.lines() {
            if line.contains(id) || line.contains(bundle.as_ref()) {
                found.push(Leftover::Mount(line.to_string()));
            }
        }
    }
    scan_processes(id, &mut found);
    Leftovers(found)
}

/// Adds every directory under `dir` whose name contains `id` (not following
/// symlinks: /sys/fs/cgroup/cpu is often a link to cpu,cpuacct).
fn scan_cgroups(dir: &Path, id: &str, found: &mut Vec<Leftover>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let path = entry.path();
        if entry.file_name().to_string_lossy().contains(id) {
            found.push(Leftover::Cgroup(path.clone()));
        }
        scan_cgroups(&path, id, found);
    }
}

/// Adds every process whose cmdline or cgroup membership mentions `id`.
fn scan_processes(id: &str, found: &mut Vec<Leftover>) {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        let dir = entry.path();
        // A zombie holds nothing but its pid; reaping orphans is the host init's
        // job (and an init that reaps lazily would otherwise make tests flaky).
        if is_zombie(&dir) {
            continue;
        }
        // A process may exit between readdir and these reads: treat as absent.
        let Ok(raw) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        // An empty cmdline on a process in the container's cgroup: its memory is
        // already released, it is inside exit(2) and about to be a zombie. On a
        // slow machine (the emulated VMs of `make test-kernels`) a SIGKILLed
        // task can sit in that window for a moment after `delete` returned.
        if raw.is_empty() {
            continue;
        }
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        let cgroup = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
        if cmdline.contains(id) || cgroup.contains(id) {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            found.push(Leftover::Process {
                pid: name.parse().unwrap_or(0),
                what: format!("({}): {}", comm.trim(), cmdline.trim()),
            });
        }
    }
}

/// True when /proc/<pid>/stat says the process is a zombie (state `Z`) or is gone.
fn is_zombie(dir: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
        return true;
    };
    // `pid (comm) S …`: comm may contain spaces and parentheses, so split at the
    // last ')'.
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        .unwrap_or(false)
}
