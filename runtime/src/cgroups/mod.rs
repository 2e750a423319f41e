//! Cgroups: place a container and enforce `linux.resources`, on v1, v2 and
//! hybrid hosts, with the cgroupfs driver (no systemd).

use crate::spec::Resources;
use std::path::PathBuf;

/// The host's cgroup layout, read from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// controller name → mount point (co-mounted controllers share one)
    V1 { hierarchies: Vec<(String, PathBuf)> },
    /// the cgroup2 mount
    V2 { root: PathBuf },
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified)
    Hybrid { hierarchies: Vec<(String, PathBuf)>, unified: PathBuf },
}

pub type Result<T> = anyhow::Result<T>;

/// Detect the host layout.
pub fn detect() -> Result<Layout> {
    todo!("cgroups helper")
}

/// One container's cgroup: the same relative path in every hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub layout: Layout,
    /// e.g. `/berth/<id>`
    pub path: String,
}

impl Cgroup {
    pub fn new(layout: Layout, path: &str) -> Cgroup {
        Cgroup { layout, path: path.to_string() }
    }
    /// Every directory `create` will make (recorded in state before creating).
    pub fn dirs(&self) -> Vec<PathBuf> {
        todo!()
    }
    pub fn create(&self) -> Result<()> {
        todo!()
    }
    pub fn apply(&self, _r: &Resources) -> Result<()> {
        todo!()
    }
    pub fn add_pid(&self, _pid: i32) -> Result<()> {
        todo!()
    }
    pub fn pids(&self) -> Result<Vec<i32>> {
        todo!()
    }
    pub fn destroy(&self) -> Result<()> {
        todo!()
    }
}
