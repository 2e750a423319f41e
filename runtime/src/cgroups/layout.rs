//! The host's cgroup layout, read from `/proc/self/mountinfo`.

use super::Result;
use anyhow::{anyhow, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The host's cgroup layout, read from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// controller name → mount point (co-mounted controllers share one;
    /// named hierarchies appear as `name=systemd`)
    V1 { hierarchies: Vec<(String, PathBuf)> },
    /// the cgroup2 mount
    V2 { root: PathBuf },
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified)
    Hybrid {
        hierarchies: Vec<(String, PathBuf)>,
        unified: PathBuf,
    },
}

impl Layout {
    /// The mount point of the v1 hierarchy serving `controller`.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        match self {
            Layout::V1 { hierarchies } | Layout::Hybrid { hierarchies, .. } => hierarchies
                .iter()
                .find(|(c, _)| c == controller)
                .map(|(_, p)| p.as_path()),
            Layout::V2 { .. } => None,
        }
    }

    /// The cgroup2 mount point, if any.
    pub fn unified_root(&self) -> Option<&Path> {
        match self {
            Layout::V2 { root } => Some(root),
            Layout::Hybrid { unified, .. } => Some(unified),
            Layout::V1 { .. } => None,
        }
    }

    /// Every distinct mount point, v1 hierarchies first (in mountinfo
    /// order), then the cgroup2 mount.
    pub fn mounts(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        if let Layout::V1 { hierarchies } | Layout::Hybrid { hierarchies, .. } = self {
            for (_, p) in hierarchies {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        if let Some(u) = self.unified_root() {
            out.push(u.to_path_buf());
        }
        out
    }
}

/// Detect the host layout from /proc/self/mountinfo.
pub fn detect() -> Result<Layout> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| anyhow!("reading /proc/self/mountinfo: {}", super::errno_text(&e)))?;
    parse_mountinfo(&text)
}

/// The pure part of [`detect`]: mountinfo text → [`Layout`].
///
/// Each line is `id parent major:minor root mountpoint opts [optional…] - fstype source superopts`.
/// For `cgroup` (v1) mounts the controllers are the super options that are
/// not generic mount options (`rw`, `relatime`…); `name=X` marks a named
/// hierarchy. The first mount of a controller wins (later ones are binds).
pub fn parse_mountinfo(text: &str) -> Result<Layout> {
    const GENERIC: &[&str] = &[
        "rw",
        "ro",
        "relatime",
        "noatime",
        "nosuid",
        "nodev",
        "noexec",
        "clone_children",
        "xattr",
        "noprefix",
        "nsdelegate",
        "memory_recursiveprot",
        "memory_localevents",
        "memory_hugetlb_accounting",
        "favordynmods",
        "cpuset_v2_mode",
    ];
    let mut hierarchies: Vec<(String, PathBuf)> = Vec::new();
    let mut unified: Option<PathBuf> = None;
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.is_empty() {
            continue;
        }
        let mountpoint = PathBuf::from(crate::sys::unescape_mountinfo(l[4]));
        match r[0] {
            "cgroup2" if unified.is_none() => unified = Some(mountpoint),
            "cgroup" => {
                let superopts = r.get(2).copied().unwrap_or("");
                for opt in superopts.split(',') {
                    if GENERIC.contains(&opt) || opt.starts_with("release_agent=") {
                        continue;
                    }
                    if !hierarchies.iter().any(|(c, _)| c == opt) {
                        hierarchies.push((opt.to_string(), mountpoint.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    // A v1 layout whose only hierarchy is systemd's name=systemd tracker has
    // no controllers there: if cgroup2 is mounted too, it is still hybrid.
    Ok(match (hierarchies.is_empty(), unified) {
        (true, Some(root)) => Layout::V2 { root },
        (false, Some(unified)) => Layout::Hybrid { hierarchies, unified },
        (false, None) => Layout::V1 { hierarchies },
        (true, None) => bail!("no cgroup filesystem is mounted (nothing of type cgroup or cgroup2 in /proc/self/mountinfo)"),
    })
}
