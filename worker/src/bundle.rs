//! The OCI bundle's `config.json` for a task container, built from the worker's own base (so
//! it works with any runtime) following Concourse's containerd backend
//! (`worker/runtime/spec/spec.go`): namespaces, capabilities, mounts, id mappings, resources.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::task::ContainerLimits;
use crate::userns::IdRange;

/// Concourse's 14 capabilities for unprivileged tasks (`spec/capabilities.go`).
pub const UNPRIVILEGED_CAPS: [&str; 14] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Every capability up to CAP_CHECKPOINT_RESTORE (Linux 5.9): what a privileged task gets.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths masked / made read-only for unprivileged tasks (the runtime-spec defaults that runc
/// and Docker use; privileged tasks get neither, as with `docker run --privileged`).
const MASKED: [&str; 9] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];
const READONLY: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/sys/firmware",
];

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    pub source: PathBuf,
    pub dest: String,
    pub readonly: bool,
}

/// Network mode of the task container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A new network namespace on the worker's bridge, set up by the CNI plugins: egress
    /// through NAT, DNS through the worker's proxy (see net.rs).
    Bridge,
    /// A new network namespace with only loopback (no network at all).
    None,
    /// The host's network namespace.
    Host,
}

/// Everything that varies per task container.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub hostname: String,
    pub binds: Vec<Bind>,
    pub privileged: bool,
    /// The user namespace mapping (unprivileged tasks).
    pub idmap: Option<Vec<IdRange>>,
    pub limits: ContainerLimits,
    /// Whether the host has cgroup v1 memsw (then swap = memory limit, as Concourse sets it).
    pub memsw: bool,
    pub cgroups_path: String,
    pub seccomp: Option<Value>,
    pub annotations: Vec<(String, String)>,
    pub network: Network,
    /// Capabilities the worker holds (bit N = capability N), from [`held_caps`].
    pub cap_mask: u64,
}

/// The worker's capability bounding set (`CapBnd` in /proc/self/status).
pub fn held_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        })
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(u64::MAX)
}

fn id_maps(m: &[IdRange]) -> Value {
    Value::Array(
        m.iter()
            .map(|r| json!({"containerID": r.inside, "hostID": r.outside, "size": r.count}))
            .collect(),
    )
}

/// Build config.json.
pub fn config_json(p: &ContainerPlan) -> Value {
    // Only capabilities the worker itself holds can be granted (a host or outer container may
    // have dropped some from the bounding set; runc then fails with "unable to apply caps").
    let held = |c: &&&str| {
        ALL_CAPS
            .iter()
            .position(|a| a == *c)
            .is_some_and(|bit| p.cap_mask & (1u64 << bit) != 0)
    };
    let wanted: &[&str] = if p.privileged {
        &ALL_CAPS
    } else {
        &UNPRIVILEGED_CAPS
    };
    let caps: Vec<&str> = wanted.iter().filter(held).copied().collect();
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if p.network != Network::Host {
        // Bridge too: the runtime makes the namespace (owned by the task's user namespace, so
        // the task can mount sysfs), and the worker puts it on the bridge before `start`.
        namespaces.push(json!({"type": "network"}));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
    ];
    if p.network != Network::Host || p.privileged {
        // sysfs can only be mounted by a process owning the network namespace; an unprivileged
        // task on the host network gets none (as rootless runc does).
        let ro = if p.privileged { "rw" } else { "ro" };
        mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", ro]}));
        // The task's own cgroups, read-only (Concourse mounts them too); the runtime decides how
        // (v1 hierarchies, v2, or hybrid) for the host it runs on.
        mounts.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", ro]}));
    }
    if p.idmap.is_none() {
        // devpts' gid=5 only exists on the host side for privileged containers.
        mounts[2]["options"]
            .as_array_mut()
            .expect("array")
            .push(json!("gid=5"));
    }
    for b in &p.binds {
        let mut opts = vec!["rbind", "nosuid", "nodev"];
        if b.readonly {
            opts.push("ro");
        }
        mounts.push(
            json!({"destination": b.dest, "type": "bind", "source": b.source, "options": opts}),
        );
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(mem) = p.limits.memory {
        resources["memory"] = json!({"limit": mem});
        if p.memsw {
            resources["memory"]["swap"] = json!(mem);
        }
    }
    if let Some(cpu) = p.limits.cpu {
        resources["cpu"] = json!({"shares": cpu});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": p.cgroups_path,
    });
    if let Some(m) = &p.idmap {
        linux["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "user"}));
        linux["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "cgroup"}));
        linux["uidMappings"] = id_maps(m);
        linux["gidMappings"] = id_maps(m);
    }
    if !p.privileged {
        linux["maskedPaths"] = json!(MASKED);
        linux["readonlyPaths"] = json!(READONLY);
        if let Some(s) = &p.seccomp {
            linux["seccomp"] = s.clone();
        }
    }
    let mut user = json!({"uid": p.uid, "gid": p.gid});
    if !p.additional_gids.is_empty() {
        user["additionalGids"] = json!(p.additional_gids);
    }
    let mut cfg = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": user,
            "args": p.args,
            "env": p.env,
            "cwd": p.cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false,
        },
        "root": {"path": p.rootfs, "readonly": false},
        "hostname": p.hostname,
        "mounts": mounts,
        "linux": linux,
    });
    if !p.annotations.is_empty() {
        cfg["annotations"] = Value::Object(
            p.annotations
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        );
    }
    cfg
}

/// Read a seccomp profile file: either a `linux.seccomp` object, or a whole config.json.
pub fn load_seccomp(path: &Path) -> Result<Value> {
    let data = std::fs::read(path)
        .with_context(|| format!("reading seccomp profile {}", path.display()))?;
    let v: Value = serde_json::from_slice(&data)
        .with_context(|| format!("parsing seccomp profile {}", path.display()))?;
    let prof = if v.get("linux").is_some() {
        v["linux"]["seccomp"].clone()
    } else {
        v
    };
    if prof.get("defaultAction").is_none() {
        bail!(
            "seccomp profile {}: no defaultAction (want a linux.seccomp object)",
            path.display()
        );
    }
    Ok(prof)
}

/// The container's resolv.conf: the host's, minus loopback nameservers, which would point at
/// the container's own loopback (Concourse `ParseHostResolveConf`).
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    for l in host.lines() {
        let mut f = l.split_whitespace();
        if f.next() == Some("nameserver") {
            if let Some(addr) = f.next() {
                if let Ok(ip) = addr
                    .split('%')
                    .next()
                    .unwrap_or(addr)
                    .parse::<std::net::IpAddr>()
                {
                    if ip.is_loopback() {
                        continue;
                    }
                }
            }
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// A resolved `run.user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub name: String,
    pub home: String,
}

/// Resolve `user` (`name`, `uid`, `name:group`, `uid:gid`) against the image's /etc/passwd and
/// /etc/group (read from the image's lower directory, never through a container).
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser> {
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (if user.is_empty() { "root" } else { user }, None),
    };
    let pw = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7);
    let entry = pw.clone().find(|f| f[0] == u).or_else(|| {
        u.parse::<u32>()
            .ok()
            .and_then(|n| pw.clone().find(|f| f[2].parse() == Ok(n)))
    });
    let (uid, mut gid, name, home) = match (&entry, u.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse()
                .with_context(|| format!("run.user: bad uid in /etc/passwd for {u}"))?,
            f[3].parse()
                .with_context(|| format!("run.user: bad gid in /etc/passwd for {u}"))?,
            f[0].to_string(),
            f[5].to_string(),
        ),
        (None, Ok(n)) => (n, n, u.to_string(), "/".to_string()),
        (None, Err(_)) if u == "root" => (0, 0, "root".to_string(), "/root".to_string()),
        (None, Err(_)) => bail!("run.user: user {u:?} not found in the image's /etc/passwd"),
    };
    let groups = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4);
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .clone()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .with_context(|| {
                    format!("run.user: group {g:?} not found in the image's /etc/group")
                })?,
        };
    }
    let mut additional: Vec<u32> = groups
        .filter(|f| f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .filter(|&x| x != gid)
        .collect();
    additional.sort_unstable();
    additional.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
        name,
        home,
    })
}

/// Concourse's default PATH (`envWithDefaultPath`): root gets the sbin directories too.
pub fn default_path(uid: u32) -> &'static str {
    if uid == 0 {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    } else {
        "PATH=/usr/local/bin:/usr/bin:/bin"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(privileged: bool) -> ContainerPlan {
        ContainerPlan {
            rootfs: "/r".into(),
            args: vec!["/tmp/berth-init".into(), "true".into()],
            env: vec!["A=1".into()],
            cwd: "/tmp/build/abcd1234".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: "h".into(),
            binds: vec![Bind {
                source: "/s".into(),
                dest: "/d".into(),
                readonly: true,
            }],
            privileged,
            idmap: (!privileged).then(|| crate::userns::concourse_mapping(4294967294)),
            limits: ContainerLimits {
                cpu: Some(512),
                memory: Some(1 << 30),
            },
            memsw: true,
            cgroups_path: "/berth-worker/x".into(),
            seccomp: Some(json!({"defaultAction": "SCMP_ACT_ERRNO"})),
            annotations: vec![],
            network: Network::None,
            cap_mask: u64::MAX,
        }
    }

    #[test]
    fn unprivileged_gets_userns_14_caps_and_seccomp() {
        let c = config_json(&plan(false));
        assert_eq!(
            c["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        let ns: Vec<&str> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"user") && ns.contains(&"cgroup") && ns.contains(&"network"));
        assert_eq!(
            c["linux"]["uidMappings"][0],
            json!({"containerID": 0, "hostID": 4294967294u32, "size": 1})
        );
        assert_eq!(c["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            c["linux"]["resources"]["memory"],
            json!({"limit": 1u64 << 30, "swap": 1u64 << 30})
        );
        assert_eq!(c["linux"]["resources"]["cpu"]["shares"], 512);
    }

    #[test]
    fn privileged_is_host_root_without_seccomp() {
        let c = config_json(&plan(true));
        assert_eq!(
            c["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            41
        );
        let ns: Vec<&str> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(!ns.contains(&"user"));
        assert!(c["linux"].get("seccomp").is_none());
        assert!(c["linux"].get("uidMappings").is_none());
        assert!(c["linux"].get("maskedPaths").is_none());
    }

    #[test]
    fn caps_the_worker_lacks_are_not_granted() {
        let mut p = plan(true);
        p.cap_mask = !(1u64 << 24); // no CAP_SYS_RESOURCE
        let c = config_json(&p);
        let b = c["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(b.len(), 40);
        assert!(!b.contains(&json!("CAP_SYS_RESOURCE")));
    }

    #[test]
    fn resolv_conf_drops_loopback() {
        let host = "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "search example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions edns0\n"
        );
    }

    #[test]
    fn users() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\nbob:x:1000:\nwheel:x:10:bob\nstaff:x:50:\n",
        )
        .unwrap();
        let b = resolve_user(t.path(), "bob").unwrap();
        assert_eq!(
            (b.uid, b.gid, b.additional_gids.clone(), b.home.as_str()),
            (1000, 1000, vec![10], "/home/bob")
        );
        assert_eq!(resolve_user(t.path(), "bob:staff").unwrap().gid, 50);
        assert_eq!(resolve_user(t.path(), "1000").unwrap().name, "bob");
        assert_eq!(resolve_user(t.path(), "4242:7").unwrap().uid, 4242);
        assert_eq!(resolve_user(t.path(), "").unwrap().uid, 0);
        assert!(resolve_user(t.path(), "nobody")
            .unwrap_err()
            .to_string()
            .contains("run.user"));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(resolve_user(empty.path(), "root").unwrap().uid, 0);
    }
}
