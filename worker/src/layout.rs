//! Where everything lives on disk, defined once: the worker's work dir and one run's directory.
//! The plan, the mounts, the outputs, the caches and `gc` all read paths from here.
//!
//! ```text
//! <work-dir>/images/        the image store (image.rs)
//!            shifted/       shifted copies of rootfs directories used in place (shift.rs)
//!            caches/<key>/  one task cache: gens/<gen>/ (immutable generations), current -> gens/<gen>, lock
//!            runs/<id>/     one run (below); runs/.<id> while its record is written,
//!                           runs/.probe-<pid>-… idmap probes, runs/.spec-… `<runtime> spec` probes
//!            runtime/       the runtime's --root
//!            bin/           berth-init
//!            cni/           IPAM leases and the network lock (net.rs)
//!
//! runs/<id>/run.json        who owns the run (worker pid + start time), container id, runtime
//!           rootfs/         the task's root: overlay(image, upper); unprivileged: from idmapped
//!                           layers, or over the image's shifted copy (see shift.rs)
//!           layers/rootfs/  rw/{upper,work} of that overlay; lower-idmapped/, rw-idmapped/ are
//!                           the idmapped layer mounts, detached once the overlay holds them
//!           layers/in-N/    the same for input N (lower = the caller's dir, never written)
//!           layers/cache-N/ the same for cache N (lower = the cache's current generation)
//!           inputs/N        input N's overlay, or its uid-shifted copy
//!           caches/N        cache N's copy-on-write view, committed after success
//!           vol/workdir     the work dir volume, /tmp/build/<hex>
//!           vol/out-N       outputs, copied to -o DIR after the task
//!           vol/scratch     /scratch
//!           etc/            resolv.conf, hosts, hostname
//!           net/            CNI state and the task's netns (net.rs)
//!           bundle/         config.json, runtime log, pid file
//! ```

use std::path::{Path, PathBuf};

/// The worker's work dir (`--work-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkLayout {
    pub root: PathBuf,
}

impl WorkLayout {
    pub fn new(root: &Path) -> WorkLayout {
        WorkLayout { root: root.into() }
    }
    /// The image store.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    /// Task caches, one directory per key.
    pub fn caches(&self) -> PathBuf {
        self.root.join("caches")
    }
    /// One cache's directory.
    pub fn cache(&self, key: &str) -> PathBuf {
        self.caches().join(key)
    }
    /// Run directories.
    pub fn runs(&self) -> PathBuf {
        self.root.join("runs")
    }
    /// One run's directory.
    pub fn run(&self, id: &str) -> RunLayout {
        RunLayout {
            dir: self.runs().join(id),
        }
    }
    /// The runtime's state dir (`--root`).
    pub fn runtime_root(&self) -> PathBuf {
        self.root.join("runtime")
    }
    /// Where berth-init is installed.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
}

/// The name of a partial directory (an import, pull or archive being unpacked under
/// `images/`): `<prefix><pid>-<start time>-<random>`, so `gc` can tell an interrupted one
/// (its process gone) from one in progress.
pub fn partial_name(prefix: &str) -> String {
    let me = std::process::id();
    format!(
        "{prefix}{me}-{}-{}",
        crate::sys::proc_start_time(me).unwrap_or(0),
        crate::sys::random_hex(6)
    )
}

/// The prefixes of partial directories under `images/`.
pub const PARTIAL_PREFIXES: [&str; 3] = [".import-", ".pull-", ".archive-"];

/// Is the partial directory `name` (see [`partial_name`]) abandoned: its process gone, or
/// made by a worker that did not record its owner (before owners were recorded)?
pub fn partial_is_stale(name: &str) -> bool {
    let Some(rest) = PARTIAL_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) else {
        return false;
    };
    let mut f = rest.splitn(3, '-');
    match (
        f.next().and_then(|p| p.parse::<u32>().ok()),
        f.next().and_then(|t| t.parse::<u64>().ok()),
        f.next(),
    ) {
        (Some(pid), Some(start), Some(_)) => !crate::sys::proc_alive(pid, start),
        _ => true,
    }
}

/// One run's directory, `<work-dir>/runs/<id>/` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    pub dir: PathBuf,
}

impl RunLayout {
    pub fn record(&self) -> PathBuf {
        self.dir.join("run.json")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn rootfs_layers(&self) -> PathBuf {
        self.dir.join("layers/rootfs")
    }
    pub fn inputs(&self) -> PathBuf {
        self.dir.join("inputs")
    }
    pub fn input(&self, i: usize) -> PathBuf {
        self.inputs().join(i.to_string())
    }
    pub fn input_layers(&self, i: usize) -> PathBuf {
        self.dir.join(format!("layers/in-{i}"))
    }
    pub fn cache(&self, i: usize) -> PathBuf {
        self.dir.join("caches").join(i.to_string())
    }
    pub fn cache_layers(&self, i: usize) -> PathBuf {
        self.dir.join(format!("layers/cache-{i}"))
    }
    pub fn workdir_volume(&self) -> PathBuf {
        self.dir.join("vol/workdir")
    }
    pub fn scratch_volume(&self) -> PathBuf {
        self.dir.join("vol/scratch")
    }
    pub fn output_volume(&self, i: usize) -> PathBuf {
        self.dir.join(format!("vol/out-{i}"))
    }
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
}
