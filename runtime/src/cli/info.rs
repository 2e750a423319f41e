//! list, spec, features, plan and --version.

use crate::state::Root;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: table or json.
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    /// Print only the container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Where to write config.json.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// A config for running without root (user namespace, no cgroup limits).
    #[arg(long)]
    pub rootless: bool,
    /// Add a seccomp profile: `default` is berth's (profiles/default.json,
    /// resolved for the spec's capabilities). Without it the config has no
    /// `linux.seccomp`, exactly like `runc spec`.
    #[arg(long, value_name = "PROFILE")]
    pub seccomp: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The bundle to plan.
    pub bundle: PathBuf,
    /// Print the steps as JSON.
    #[arg(long)]
    pub json: bool,
    /// Container id to plan for.
    #[arg(long, default_value = "example")]
    pub id: String,
}

pub fn list(root: &Root, a: ListArgs) -> Result<i32> {
    let mut rows = Vec::new();
    for id in root.ids()? {
        // A container being deleted right now may vanish between the two reads.
        if let Ok(s) = root.load(&id) {
            rows.push(s.runc_state(&root.container_dir(&id)));
        }
    }
    if a.quiet {
        for r in &rows {
            super::out(&r.id);
        }
        return Ok(0);
    }
    match a.format.as_str() {
        "json" => super::out(serde_json::to_string(&rows)?),
        "table" => {
            let mut table =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for r in &rows {
                let owner = if r.owner.is_empty() { "root" } else { &r.owner };
                table.push([
                    r.id.clone(),
                    r.pid.to_string(),
                    r.status.to_string(),
                    r.bundle.display().to_string(),
                    r.created.clone(),
                    owner.to_string(),
                ]);
            }
            for line in tabulate(&table) {
                super::out(line);
            }
        }
        other => bail!("--format: unknown format {other:?} (table or json)"),
    }
    Ok(0)
}

/// Align columns like runc's `tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)`:
/// each column but the last is as wide as its widest cell plus 3 spaces,
/// at least 12; the last column is not padded.
pub fn tabulate<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(12);
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}", width = widths[i]));
                }
            }
            line
        })
        .collect()
}

/// The capabilities runc's default spec grants.
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The config.json `runc spec` (1.1.5) writes — the same fields and values
/// but `ociVersion` (berth's) and `hostname` — with berth's default seccomp
/// profile in `linux.seccomp` when `seccomp` is set.
pub fn default_spec(rootless: bool, seccomp: bool) -> serde_json::Value {
    let caps: Vec<&str> = DEFAULT_CAPS.to_vec();
    let mut namespaces = vec![
        serde_json::json!({"type": "pid"}),
        serde_json::json!({"type": "network"}),
        serde_json::json!({"type": "ipc"}),
        serde_json::json!({"type": "uts"}),
        serde_json::json!({"type": "mount"}),
    ];
    // As runc's `spec`: a cgroup namespace only on a pure cgroup v2 host.
    // On v1/hybrid hosts runc's suite (and clients) expect exec'd
    // processes to see their full cgroup paths.
    if matches!(
        crate::cgroups::detect(),
        Ok(crate::cgroups::Layout::V2 { .. })
    ) {
        namespaces.push(serde_json::json!({"type": "cgroup"}));
    }
    let mut spec = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces.clone(),
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if seccomp {
        spec["linux"]["seccomp"] = serde_json::json!(crate::seccomp::default_profile());
    }
    if rootless {
        // runc's specconv.ToRootless.
        // SAFETY: geteuid/getegid cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(serde_json::json!({"type": "user"}));
        let linux = &mut spec["linux"];
        linux["namespaces"] = namespaces.into();
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        if let Some(o) = linux.as_object_mut() {
            o.remove("resources");
        }
        for m in spec["mounts"].as_array_mut().into_iter().flatten() {
            if m["destination"] == "/sys" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            } else if let Some(o) = m.get_mut("options").and_then(|o| o.as_array_mut()) {
                o.retain(|o| {
                    !o.as_str()
                        .is_some_and(|o| o.starts_with("gid=") || o.starts_with("uid="))
                });
            }
        }
    }
    spec
}

/// Key order of runtime-spec's Go types (specs-go), which `runc spec` writes.
const GO_FIELD_ORDER: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "hostname",
    "mounts",
    "linux",
    // process
    "terminal",
    "user",
    "args",
    "env",
    "cwd",
    "capabilities",
    "rlimits",
    "noNewPrivileges",
    "uid",
    "gid",
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
    // root, mounts, rlimits (a mount's and an rlimit's `type` sort alike)
    "path",
    "readonly",
    "destination",
    "type",
    "hard",
    "soft",
    "source",
    "options",
    // linux
    "uidMappings",
    "gidMappings",
    "containerID",
    "hostID",
    "size",
    "resources",
    "devices",
    "allow",
    "access",
    "namespaces",
    "seccomp",
    "maskedPaths",
    "readonlyPaths",
    // seccomp
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "syscalls",
    "names",
    "action",
    "errnoRet",
    "args",
    "index",
    "value",
    "valueTwo",
    "op",
];

/// JSON as Go's `json.MarshalIndent(v, "", "\t")` prints a specs-go value:
/// tab indents, struct fields in [`GO_FIELD_ORDER`], no final newline
/// (what `runc spec` writes, byte for byte).
pub fn go_indent(v: &serde_json::Value) -> String {
    fn rank(k: &str) -> usize {
        GO_FIELD_ORDER
            .iter()
            .position(|f| *f == k)
            .unwrap_or(GO_FIELD_ORDER.len())
    }
    fn write(v: &serde_json::Value, depth: usize, out: &mut String) {
        let pad = |d: usize| "\t".repeat(d);
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_by_key(|k| rank(k)); // stable: unknown keys stay sorted
                out.push_str("{\n");
                for (i, k) in keys.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                    out.push_str(": ");
                    write(&m[k.as_str()], depth + 1, out);
                    out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push('}');
            }
            serde_json::Value::Array(a) if !a.is_empty() => {
                out.push_str("[\n");
                for (i, x) in a.iter().enumerate() {
                    out.push_str(&pad(depth + 1));
                    write(x, depth + 1, out);
                    out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
                }
                out.push_str(&pad(depth));
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, 0, &mut out);
    out
}

pub fn spec(a: SpecArgs) -> Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let seccomp = match a.seccomp.as_deref() {
        None => false,
        Some("default") => true,
        Some(other) => bail!(
            "--seccomp: unknown profile {other:?} (only \"default\", berth's profiles/default.json)"
        ),
    };
    let text = go_indent(&default_spec(a.rootless, seccomp));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(0)
}

pub fn features() -> Result<i32> {
    let caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mut caps = caps;
    caps.sort();
    let f = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "dev", "diratime", "dirsync", "exec", "mand", "noatime", "nodev",
                         "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind",
                         "relatime", "remount", "ro", "rprivate", "rro", "rrw", "rshared", "rslave", "runbindable", "rw",
                         "shared", "slave", "strictatime", "suid", "sync", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG",
                               "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG",
                                   "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "run.berth.seccomp.enosys": "set to \"runc\" for runc's exact ENOSYS verdicts",
            "org.opencontainers.runc.version": env!("CARGO_PKG_VERSION")
        }
    });
    super::out(format_args!("{}", serde_json::to_string_pretty(&f)?));
    Ok(0)
}

pub fn plan(root: &Root, a: PlanArgs) -> Result<i32> {
    let o = crate::container::create::CreateOpts {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        ..Default::default()
    };
    let p = crate::container::create::prepare(root, &o)?.plan;
    if a.json {
        super::out(format_args!("{}", serde_json::to_string_pretty(&p)?));
    } else {
        print!("{}", p.render());
    }
    Ok(0)
}

pub fn print_version() {
    // runc's three lines first, in runc's order: go-runc parses the first
    // ("runc version X"), Docker and runc's own suite (version.bats) expect
    // "commit:" on the second and "spec:" on the third. berth names itself last.
    super::out(format_args!(
        "runc version 1.1.5+berth.{}",
        env!("CARGO_PKG_VERSION")
    ));
    super::out(format_args!(
        "commit: {}",
        option_env!("BERTH_COMMIT").unwrap_or("unknown")
    ));
    super::out(format_args!("spec: {}", crate::state::OCI_VERSION));
    super::out(format_args!("libseccomp: {}", libseccomp_version()));
    super::out(format_args!("berth version {}", env!("CARGO_PKG_VERSION")));
}

fn libseccomp_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "unknown".into(),
    }
}
