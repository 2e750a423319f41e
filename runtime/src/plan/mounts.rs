//! Mount options → mount(2) flags, the way runc reads them.

use serde::Serialize;
use std::path::PathBuf;

/// One `mounts[]` entry, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountStep {
    /// Index in config.json `mounts[]`, for error messages.
    pub index: usize,
    /// Host path for binds (absolute), or the fs source (`proc`, `tmpfs`…).
    pub source: Option<PathBuf>,
    /// Path inside the container.
    pub destination: PathBuf,
    pub fstype: Option<String>,
    /// Flags for the first mount(2) call.
    pub flags: u64,
    /// Filesystem-specific options (`mode=755,size=65536k`).
    pub data: String,
    /// Propagation flags applied with a second mount(2) call.
    pub propagation: Vec<u64>,
    pub bind: bool,
    /// Bind mounts take ro/nosuid/… only through a remount.
    pub remount_flags: Option<u64>,
    /// `rro`: recursively read-only via mount_setattr(AT_RECURSIVE).
    pub recursive_readonly: bool,
}

/// Decode mount options into (flags, propagation, data, recursive-ro).
/// Unknown words are filesystem data, as in runc's `parseMountOptions`.
pub fn parse_options(options: &[String]) -> (u64, Vec<u64>, String, bool) {
    let mut flags: u64 = 0;
    let mut prop = Vec::new();
    let mut data = Vec::new();
    let mut rro = false;
    for o in options {
        let (clear, set): (bool, u64) = match o.as_str() {
            "ro" => (false, libc::MS_RDONLY),
            "rw" => (true, libc::MS_RDONLY),
            "suid" => (true, libc::MS_NOSUID),
            "nosuid" => (false, libc::MS_NOSUID),
            "dev" => (true, libc::MS_NODEV),
            "nodev" => (false, libc::MS_NODEV),
            "exec" => (true, libc::MS_NOEXEC),
            "noexec" => (false, libc::MS_NOEXEC),
            "sync" => (false, libc::MS_SYNCHRONOUS),
            "async" => (true, libc::MS_SYNCHRONOUS),
            "dirsync" => (false, libc::MS_DIRSYNC),
            "remount" => (false, libc::MS_REMOUNT),
            "mand" => (false, libc::MS_MANDLOCK),
            "nomand" => (true, libc::MS_MANDLOCK),
            "atime" => (true, libc::MS_NOATIME),
            "noatime" => (false, libc::MS_NOATIME),
            "diratime" => (true, libc::MS_NODIRATIME),
            "nodiratime" => (false, libc::MS_NODIRATIME),
            "relatime" => (false, libc::MS_RELATIME),
            "norelatime" => (true, libc::MS_RELATIME),
            "strictatime" => (false, libc::MS_STRICTATIME),
            "nostrictatime" => (true, libc::MS_STRICTATIME),
            "bind" => (false, libc::MS_BIND),
            "rbind" => (false, libc::MS_BIND | libc::MS_REC),
            "rro" => {
                rro = true;
                continue;
            }
            "rrw" => continue,
            // Options for other runtimes or features berth does not need.
            "tmpcopyup" | "idmap" | "ridmap" => continue,
            other => {
                if let Some(p) = super::propagation_flags(other) {
                    prop.push(p);
                } else {
                    data.push(other.to_string());
                }
                continue;
            }
        };
        if clear {
            flags &= !set;
        } else {
            flags |= set;
        }
    }
    (flags, prop, data.join(","), rro)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_and_data() {
        let (f, p, d, r) = parse_options(&s(&["nosuid", "strictatime", "mode=755", "size=65536k"]));
        assert_eq!(f, libc::MS_NOSUID | libc::MS_STRICTATIME);
        assert!(p.is_empty());
        assert_eq!(d, "mode=755,size=65536k");
        assert!(!r);
    }

    #[test]
    fn later_option_wins() {
        let (f, _, _, _) = parse_options(&s(&["ro", "rw"]));
        assert_eq!(f & libc::MS_RDONLY, 0);
    }

    #[test]
    fn rbind_propagation_rro() {
        let (f, p, _, r) = parse_options(&s(&["rbind", "rslave", "rro"]));
        assert_eq!(f, libc::MS_BIND | libc::MS_REC);
        assert_eq!(p, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert!(r);
    }
}
