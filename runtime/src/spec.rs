//! `config.json` → [`Spec`]: the OCI runtime-spec types berth reads, and the
//! validation that turns bad input into an error naming the field
//! (`config.json: process.args: must not be empty`).
//!
//! Unknown fields are ignored, as runc does, so bundles written for newer
//! runtimes still load; wrong *types* and bad *values* are errors.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// An error in the bundle's configuration: the JSON path of the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// e.g. `linux.seccomp.syscalls[3].action`
    pub field: String,
    pub msg: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, msg: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "config.json: {}", self.msg)
        } else {
            write!(f, "config.json: {}: {}", self.field, self.msg)
        }
    }
}

impl std::error::Error for SpecError {}

/// The top of `config.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub oci_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Root {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<ConsoleSize>,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default = "default_cwd")]
    pub cwd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_privileges: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_label: Option<String>,
}

fn default_cwd() -> String {
    "/".into()
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

/// The five capability sets, as names like `CAP_CHOWN`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounding: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effective: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inheritable: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permitted: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub typ: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub destination: PathBuf,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prestart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_runtime: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_container: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststart: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(rename = "type")]
    pub typ: String,
    pub path: PathBuf,
    #[serde(default)]
    pub major: i64,
    #[serde(default)]
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// `linux.resources`: what the cgroup will enforce.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Pids>,
    /// `blockIO` (not serde's camelCase `blockIo`).
    #[serde(default, rename = "blockIO", skip_serializing_if = "Option::is_none")]
    pub block_io: Option<BlockIo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<HugepageLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unified: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

/// Device access bits, as cgroup v2's device programs number them
/// (`BPF_DEVCG_ACC_*`).
pub mod access {
    pub const MKNOD: u32 = 1;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
    pub const ALL: u32 = MKNOD | READ | WRITE;
}

impl DeviceRule {
    /// The access the rule names, as [`access`] bits. Absent or empty
    /// means `rwm`. Any order and repetition of `r`, `w`, `m` is fine
    /// (`mrw`, `rr`). Another letter is an error in an allow rule; in a
    /// deny rule it is ignored, as runc does (its device emulator keeps
    /// only r/w/m, so `rwa` denies `rw`): a deny cannot grant anything.
    pub fn access_bits(&self) -> Result<u32, String> {
        let a = self.access.as_deref().filter(|a| !a.is_empty());
        let Some(a) = a else {
            return Ok(access::ALL);
        };
        let mut bits = 0;
        for c in a.chars() {
            bits |= match c {
                'r' => access::READ,
                'w' => access::WRITE,
                'm' => access::MKNOD,
                _ if !self.allow => 0,
                c => {
                    return Err(format!(
                        "{a:?}: unknown access {c:?} (an allow rule may only name r, w and m)"
                    ))
                }
            };
        }
        Ok(bits)
    }

    /// The access as the kernel's v1 files want it: `rwm` order, only
    /// known letters (may be empty for a deny rule naming none).
    pub fn access_string(&self) -> Result<String, String> {
        let bits = self.access_bits()?;
        let mut s = String::new();
        for (bit, c) in [
            (access::READ, 'r'),
            (access::WRITE, 'w'),
            (access::MKNOD, 'm'),
        ] {
            if bits & bit != 0 {
                s.push(c);
            }
        }
        Ok(s)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<i64>,
    #[serde(default, rename = "kernelTCP", skip_serializing_if = "Option::is_none")]
    pub kernel_tcp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<u64>,
    #[serde(
        default,
        rename = "disableOOMKiller",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_oom_killer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_hierarchy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_before_update: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_runtime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime_period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mems: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HugepageLimit {
    pub page_size: String,
    pub limit: u64,
}

/// `linux.resources.blockIO` (cgroup v1 blkio / v2 io). Weights are
/// 1..=1000 (0 means "not set", as in runc); checked in [`Spec::validate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockIo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_read_bps_device: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_write_bps_device: Vec<ThrottleDevice>,
    #[serde(
        default,
        rename = "throttleReadIOPSDevice",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub throttle_read_iops_device: Vec<ThrottleDevice>,
    #[serde(
        default,
        rename = "throttleWriteIOPSDevice",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub throttle_write_iops_device: Vec<ThrottleDevice>,
}

/// One entry of `blockIO.weightDevice`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_weight: Option<u16>,
}

/// One entry of a `blockIO.throttle*Device` list (bytes or I/Os per second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

/// `linux.resources.network`: net_cls class id and net_prio priorities
/// (cgroup v1 controllers only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(default, rename = "classID", skip_serializing_if = "Option::is_none")]
    pub class_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<InterfacePriority>,
}

/// One entry of `network.priorities`: written as `<name> <priority>` to
/// net_prio.ifpriomap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InterfacePriority {
    pub name: String,
    pub priority: u32,
}

/// `linux.seccomp`, exactly as the runtime-spec defines it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    #[serde(default)]
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// `None` (absent) and `Some(vec![])` differ: absent means "SPEC_ALLOW if supported".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SeccompSyscall>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompSyscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SeccompArg>,
    /// Free text explaining the rule (berth's profiles carry one per group; ignored by the filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompArg {
    pub index: u32,
    pub value: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_two: Option<u64>,
    pub op: String,
}

/// Namespace kinds, in the order berth joins them (user first, so the
/// others can be joined with the capabilities it grants; mount last but
/// one, so paths of the others still resolve on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    User,
    Ipc,
    Uts,
    Network,
    Pid,
    Cgroup,
    Time,
    Mount,
}

impl NsKind {
    pub const ALL: [NsKind; 8] = [
        NsKind::User,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Network,
        NsKind::Pid,
        NsKind::Cgroup,
        NsKind::Time,
        NsKind::Mount,
    ];

    pub fn parse(s: &str) -> Option<NsKind> {
        Some(match s {
            "user" => NsKind::User,
            "ipc" => NsKind::Ipc,
            "uts" => NsKind::Uts,
            "network" => NsKind::Network,
            "pid" => NsKind::Pid,
            "cgroup" => NsKind::Cgroup,
            "time" => NsKind::Time,
            "mount" => NsKind::Mount,
            _ => return None,
        })
    }

    /// The runtime-spec name (`network`, `mount`, …).
    pub fn name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Network => "network",
            NsKind::Pid => "pid",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
            NsKind::Mount => "mount",
        }
    }

    /// The name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::Network => "net",
            NsKind::Mount => "mnt",
            other => other.name(),
        }
    }

    pub fn clone_flag(self) -> libc::c_int {
        match self {
            NsKind::User => libc::CLONE_NEWUSER,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Uts => libc::CLONE_NEWUTS,
            NsKind::Network => libc::CLONE_NEWNET,
            NsKind::Pid => libc::CLONE_NEWPID,
            NsKind::Cgroup => libc::CLONE_NEWCGROUP,
            NsKind::Time => 0x80, // CLONE_NEWTIME
            NsKind::Mount => libc::CLONE_NEWNS,
        }
    }
}

/// Deserialize JSON bytes; on failure, the error carries the JSON path of
/// the offending value (`process.user.uid`).
///
/// serde_path_to_error tracks the path through every call of the
/// deserializer, which costs CPU on the start path and keeps its ~0.5 MB of
/// monomorphized code in the pages a start touches (peak RSS). A config
/// that parses — every start — does not need the path: parse plainly, and
/// only when that fails parse again under serde_path_to_error, so the error
/// is the one it always was. Neither pass checks for trailing characters,
/// as before.
pub(crate) fn deserialize_with_path<T: serde::de::DeserializeOwned>(
    data: &[u8],
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    if let Ok(v) = T::deserialize(&mut serde_json::Deserializer::from_slice(data)) {
        return Ok(v);
    }
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(data))
}

/// The runtime-spec versions berth accepts: any 1.x.
fn check_oci_version(v: &str) -> Result<(), SpecError> {
    let major = v.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(SpecError::new(
            "ociVersion",
            format!("unsupported version {v:?} (berth implements runtime-spec 1.x)"),
        ));
    }
    Ok(())
}

impl Spec {
    /// Read and validate `<bundle>/config.json`.
    pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
        let path = bundle.join("config.json");
        let data = std::fs::read(&path)
            .map_err(|e| SpecError::new("", format!("cannot read {}: {}", path.display(), e)))?;
        Self::from_json(&data)
    }

    /// Parse and validate config.json bytes. Type errors name the JSON path.
    pub fn from_json(data: &[u8]) -> Result<Spec, SpecError> {
        let spec: Spec = deserialize_with_path(data).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.to_string();
            // serde's message carries " at line L column C": keep it, it helps.
            if path == "." {
                SpecError::new("", msg)
            } else {
                SpecError::new(path, msg)
            }
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks serde cannot express: values, not types.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_oci_version(&self.oci_version)?;
        let root = self
            .root
            .as_ref()
            .ok_or_else(|| SpecError::new("root", "required"))?;
        if root.path.as_os_str().is_empty() {
            return Err(SpecError::new("root.path", "must not be empty"));
        }
        if let Some(p) = &self.process {
            validate_process(p)?;
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if !m.destination.is_absolute() {
                return Err(SpecError::new(
                    format!("mounts[{i}].destination"),
                    format!("must be an absolute path, got {:?}", m.destination),
                ));
            }
        }
        let linux = self.linux.clone().unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for (i, ns) in linux.namespaces.iter().enumerate() {
            let kind = NsKind::parse(&ns.typ).ok_or_else(|| {
                SpecError::new(
                    format!("linux.namespaces[{i}].type"),
                    format!("unknown namespace type {:?}", ns.typ),
                )
            })?;
            if !seen.insert(kind) {
                return Err(SpecError::new(
                    format!("linux.namespaces[{i}].type"),
                    format!("namespace {:?} listed twice", ns.typ),
                ));
            }
            if let Some(path) = &ns.path {
                if !path.is_absolute() {
                    return Err(SpecError::new(
                        format!("linux.namespaces[{i}].path"),
                        format!("must be an absolute path, got {path:?}"),
                    ));
                }
            }
        }
        let has_userns = seen.contains(&NsKind::User);
        if !has_userns && (!linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty()) {
            return Err(SpecError::new(
                "linux.uidMappings",
                "id mappings given without a user namespace",
            ));
        }
        let new_userns = linux
            .namespaces
            .iter()
            .any(|n| n.typ == "user" && n.path.is_none());
        if new_userns {
            validate_maps("linux.uidMappings", &linux.uid_mappings)?;
            validate_maps("linux.gidMappings", &linux.gid_mappings)?;
        }
        if self.hostname.as_deref().is_some_and(|h| !h.is_empty()) && !seen.contains(&NsKind::Uts) {
            return Err(SpecError::new(
                "hostname",
                "cannot set a hostname without a new UTS namespace",
            ));
        }
        if self.domainname.as_deref().is_some_and(|h| !h.is_empty()) && !seen.contains(&NsKind::Uts)
        {
            return Err(SpecError::new(
                "domainname",
                "cannot set a domainname without a new UTS namespace",
            ));
        }
        if let Some(p) = &linux.rootfs_propagation {
            if crate::plan::propagation_flags(p).is_none() {
                return Err(SpecError::new(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {p:?}"),
                ));
            }
        }
        if let Some(r) = &linux.resources {
            validate_resources(r)?;
        }
        for key in linux.sysctl.keys() {
            check_sysctl(key, &seen).map_err(|msg| SpecError::new(sysctl_field(key), msg))?;
        }
        for (i, d) in linux.devices.iter().enumerate() {
            if !matches!(d.typ.as_str(), "c" | "b" | "u" | "p") {
                return Err(SpecError::new(
                    format!("linux.devices[{i}].type"),
                    format!("unknown device type {:?} (want c, b, u or p)", d.typ),
                ));
            }
            if !d.path.is_absolute() {
                return Err(SpecError::new(
                    format!("linux.devices[{i}].path"),
                    format!("must be an absolute path, got {:?}", d.path),
                ));
            }
        }
        Ok(())
    }

    pub fn linux(&self) -> Linux {
        self.linux.clone().unwrap_or_default()
    }
}

/// `linux.resources` values that are wrong whatever the host (what the
/// host lacks is checked by the cgroup code before anything is created).
/// Also used by `update`.
pub fn validate_resources(r: &Resources) -> Result<(), SpecError> {
    let dev_num = |field: String, n: Option<i64>| match n {
        Some(n) if n < -1 => Err(SpecError::new(
            field,
            format!("{n} is not a device number (-1 or absent means any)"),
        )),
        _ => Ok(()),
    };
    for (i, d) in r.devices.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        if let Some(t) = d.typ.as_deref() {
            if !matches!(t, "a" | "b" | "c") {
                return Err(SpecError::new(
                    format!("{field}.type"),
                    format!("unknown device type {t:?} (want a, b or c)"),
                ));
            }
        }
        dev_num(format!("{field}.major"), d.major)?;
        dev_num(format!("{field}.minor"), d.minor)?;
        d.access_bits()
            .map_err(|e| SpecError::new(format!("{field}.access"), e))?;
    }
    if let Some(b) = &r.block_io {
        let weight = |field: String, w: Option<u16>| match w {
            Some(w) if w > 1000 => Err(SpecError::new(
                field,
                format!("{w} is outside 1..1000 (0 means not set)"),
            )),
            _ => Ok(()),
        };
        let device = |field: &str, major: i64, minor: i64| {
            if major < 0 || minor < 0 {
                return Err(SpecError::new(
                    field,
                    format!("{major}:{minor} is not a block device number"),
                ));
            }
            Ok(())
        };
        weight("linux.resources.blockIO.weight".into(), b.weight)?;
        weight("linux.resources.blockIO.leafWeight".into(), b.leaf_weight)?;
        for (i, d) in b.weight_device.iter().enumerate() {
            let field = format!("linux.resources.blockIO.weightDevice[{i}]");
            device(&field, d.major, d.minor)?;
            weight(format!("{field}.weight"), d.weight)?;
            weight(format!("{field}.leafWeight"), d.leaf_weight)?;
        }
        for (name, list) in [
            ("throttleReadBpsDevice", &b.throttle_read_bps_device),
            ("throttleWriteBpsDevice", &b.throttle_write_bps_device),
            ("throttleReadIOPSDevice", &b.throttle_read_iops_device),
            ("throttleWriteIOPSDevice", &b.throttle_write_iops_device),
        ] {
            for (i, t) in list.iter().enumerate() {
                device(
                    &format!("linux.resources.blockIO.{name}[{i}]"),
                    t.major,
                    t.minor,
                )?;
            }
        }
    }
    for (i, h) in r.hugepage_limits.iter().enumerate() {
        let p = &h.page_size;
        if p.is_empty() || p.contains('/') || p.contains(char::is_whitespace) {
            return Err(SpecError::new(
                format!("linux.resources.hugepageLimits[{i}].pageSize"),
                format!("{p:?} is not a page size (like \"2MB\")"),
            ));
        }
    }
    if let Some(n) = &r.network {
        for (i, p) in n.priorities.iter().enumerate() {
            // Written as "<name> <priority>" to net_prio.ifpriomap: a name
            // with a blank or newline would be another entry.
            if p.name.is_empty() || p.name.contains(char::is_whitespace) || p.name.contains('/') {
                return Err(SpecError::new(
                    format!("linux.resources.network.priorities[{i}].name"),
                    format!("{:?} is not an interface name", p.name),
                ));
            }
        }
    }
    Ok(())
}

/// How an error names a sysctl: `linux.sysctl["net.ipv4.ip_forward"]`.
pub fn sysctl_field(key: &str) -> String {
    format!("linux.sysctl[{key:?}]")
}

/// The file under `/proc/sys` a sysctl key names. Keys are dotted
/// (`net.ipv4.ip_forward`); a key whose first separator is `/` is in the
/// slash form and is read as runc reads it (`.` and `/` swapped), so in the
/// dotted form a `/` stands for a dot inside one name
/// (`net.ipv4.conf.eth0/100.forwarding` → `net/ipv4/conf/eth0.100/forwarding`).
/// Empty, `.` and `..` components are refused: the key must name a file
/// below `/proc/sys`, never climb out of it.
pub fn sysctl_path(key: &str) -> Result<String, String> {
    let slash_form = match (key.find('.'), key.find('/')) {
        (Some(d), Some(s)) => s < d,
        (None, Some(_)) => true,
        _ => false,
    };
    let parts: Vec<String> = if slash_form {
        key.split('/').map(str::to_string).collect()
    } else {
        key.split('.').map(|p| p.replace('/', ".")).collect()
    };
    if parts.iter().any(|p| p.is_empty() || p == "." || p == "..") {
        return Err("not a sysctl name (want dotted names like net.ipv4.ip_forward)".into());
    }
    Ok(parts.join("/"))
}

/// Only sysctls that live in a namespace the container has its own copy of
/// may be set — anything else would change the host (runc's rule,
/// libcontainer/configs/validate): IPC sysctls need an IPC namespace, `net.*`
/// a network namespace, `kernel.domainname` a UTS namespace. A network
/// namespace joined by path is checked against the runtime's own on the
/// host, in `create` (see [`sysctl_net_path_is_host`]).
fn check_sysctl(key: &str, namespaces: &std::collections::BTreeSet<NsKind>) -> Result<(), String> {
    let path = sysctl_path(key)?;
    let dotted = path.replace('/', ".");
    let ipc = matches!(
        dotted.as_str(),
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || dotted.starts_with("fs.mqueue.");
    if ipc {
        if namespaces.contains(&NsKind::Ipc) {
            return Ok(());
        }
        return Err(format!(
            "sysctl {dotted:?} is not allowed in the host's ipc namespace: \
             linux.namespaces has no \"ipc\" entry, so it would change the host"
        ));
    }
    if dotted.starts_with("net.") {
        if namespaces.contains(&NsKind::Network) {
            return Ok(());
        }
        return Err(format!(
            "sysctl {dotted:?} not allowed in host network namespace: \
             linux.namespaces has no \"network\" entry, so it would change the host"
        ));
    }
    if namespaces.contains(&NsKind::Uts) {
        match dotted.as_str() {
            "kernel.domainname" => return Ok(()),
            "kernel.hostname" => {
                return Err(format!(
                "sysctl {dotted:?} is not allowed as it conflicts with the OCI \"hostname\" field"
            ))
            }
            _ => {}
        }
    }
    Err(format!(
        "sysctl {dotted:?} is not in a separate kernel namespace: setting it would change the host"
    ))
}

/// `net.*` sysctls with a network namespace joined by path: refused when
/// that path is the runtime's own network namespace (the host's), as runc
/// does. Returns the offending key.
pub fn sysctl_net_path_is_host(spec: &Spec) -> std::io::Result<Option<String>> {
    let linux = spec.linux();
    let Some(key) = linux
        .sysctl
        .keys()
        .find(|k| sysctl_path(k).is_ok_and(|p| p.starts_with("net/")))
    else {
        return Ok(None);
    };
    let Some(path) = linux
        .namespaces
        .iter()
        .find(|n| n.typ == "network")
        .and_then(|n| n.path.as_ref())
    else {
        return Ok(None);
    };
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata("/proc/self/ns/net")?;
    let theirs = std::fs::metadata(path)?;
    Ok((own.dev() == theirs.dev() && own.ino() == theirs.ino()).then(|| key.clone()))
}

fn validate_process(p: &Process) -> Result<(), SpecError> {
    if p.args.is_empty() || p.args[0].is_empty() {
        return Err(SpecError::new("process.args", "must not be empty"));
    }
    if !p.cwd.starts_with('/') {
        return Err(SpecError::new(
            "process.cwd",
            format!("must be an absolute path, got {:?}", p.cwd),
        ));
    }
    for (i, e) in p.env.iter().enumerate() {
        if !e.contains('=') {
            return Err(SpecError::new(
                format!("process.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in p.rlimits.iter().enumerate() {
        if crate::plan::rlimit_resource(&r.typ).is_none() {
            return Err(SpecError::new(
                format!("process.rlimits[{i}].type"),
                format!("unknown rlimit {:?}", r.typ),
            ));
        }
        if !seen.insert(r.typ.clone()) {
            return Err(SpecError::new(
                format!("process.rlimits[{i}].type"),
                format!("rlimit {:?} given twice", r.typ),
            ));
        }
        if r.soft > r.hard {
            return Err(SpecError::new(
                format!("process.rlimits[{i}]"),
                format!(
                    "{}: soft limit {} is above hard limit {}",
                    r.typ, r.soft, r.hard
                ),
            ));
        }
    }
    if let Some(caps) = &p.capabilities {
        for (set, list) in [
            ("bounding", &caps.bounding),
            ("effective", &caps.effective),
            ("inheritable", &caps.inheritable),
            ("permitted", &caps.permitted),
            ("ambient", &caps.ambient),
        ] {
            for (i, name) in list.iter().enumerate() {
                if name.parse::<caps::Capability>().is_err() {
                    return Err(SpecError::new(
                        format!("process.capabilities.{set}[{i}]"),
                        format!("unknown capability {name:?}"),
                    ));
                }
            }
        }
    }
    if let Some(adj) = p.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(SpecError::new(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..1000"),
            ));
        }
    }
    Ok(())
}

fn validate_maps(field: &str, maps: &[IdMapping]) -> Result<(), SpecError> {
    if maps.is_empty() {
        return Err(SpecError::new(
            field,
            "a new user namespace needs at least one mapping",
        ));
    }
    if maps.len() > 340 {
        return Err(SpecError::new(field, "more than 340 mappings"));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.size == 0 {
            return Err(SpecError::new(
                format!("{field}[{i}].size"),
                "must not be 0",
            ));
        }
        let c_end = m.container_id as u64 + m.size as u64;
        let h_end = m.host_id as u64 + m.size as u64;
        if c_end > u32::MAX as u64 || h_end > u32::MAX as u64 {
            return Err(SpecError::new(
                format!("{field}[{i}]"),
                "range overflows 32-bit ids",
            ));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlaps = |a: u32, b: u32| {
                (a as u64) < b as u64 + o.size as u64 && (b as u64) < a as u64 + m.size as u64
            };
            if overlaps(m.container_id, o.container_id) || overlaps(m.host_id, o.host_id) {
                return Err(SpecError::new(
                    format!("{field}[{i}]"),
                    format!("overlaps {field}[{j}]"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["/bin/true"], "cwd": "/"},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    fn err(v: serde_json::Value) -> String {
        Spec::from_json(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_config_loads() {
        let s = Spec::from_json(&serde_json::to_vec(&base()).unwrap()).unwrap();
        assert_eq!(s.process.unwrap().args, vec!["/bin/true"]);
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut v = base();
        v["process"]["args"] = serde_json::json!("not a list");
        let e = err(v);
        assert!(e.starts_with("config.json: process.args: "), "{e}");
    }

    /// The plain first pass of deserialize_with_path changes nothing a
    /// user sees: deep type errors still name their path, and bytes after
    /// the config object are still ignored as they always were.
    #[test]
    fn fast_parse_keeps_paths_and_trailing_bytes() {
        let mut v = base();
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                         {"names": "personality", "action": "SCMP_ACT_ERRNO"}]
        });
        let e = err(v);
        assert!(
            e.starts_with("config.json: linux.seccomp.syscalls[1].names: "),
            "{e}"
        );
        let mut data = serde_json::to_vec(&base()).unwrap();
        data.extend_from_slice(b"\n}garbage");
        assert!(Spec::from_json(&data).is_ok());
    }

    #[test]
    fn empty_args_rejected() {
        let mut v = base();
        v["process"]["args"] = serde_json::json!([]);
        assert_eq!(err(v), "config.json: process.args: must not be empty");
    }

    #[test]
    fn unknown_namespace_names_index() {
        let mut v = base();
        v["linux"]["namespaces"][1]["type"] = "mnt".into();
        assert_eq!(
            err(v),
            "config.json: linux.namespaces[1].type: unknown namespace type \"mnt\""
        );
    }

    #[test]
    fn rlimit_soft_above_hard() {
        let mut v = base();
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert!(err(v).contains("process.rlimits[0]: RLIMIT_NOFILE: soft limit 10"));
    }

    #[test]
    fn hostname_needs_uts() {
        let mut v = base();
        v["hostname"] = "box".into();
        assert!(err(v).starts_with("config.json: hostname:"));
    }

    #[test]
    fn overlapping_maps() {
        let mut v = base();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "user"}]);
        v["linux"]["uidMappings"] = serde_json::json!([
            {"containerID": 0, "hostID": 1000, "size": 10},
            {"containerID": 5, "hostID": 5000, "size": 10}
        ]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        assert_eq!(
            err(v),
            "config.json: linux.uidMappings[1]: overlaps linux.uidMappings[0]"
        );
    }

    /// `blockIO` is read under its real name (serde's camelCase would have
    /// made it `blockIo` and silently ignored every block I/O limit).
    #[test]
    fn block_io_and_network_are_typed() {
        let mut v = base();
        v["linux"]["resources"] = serde_json::json!({
            "blockIO": {"weight": 500, "leafWeight": 300,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}
        });
        let s = Spec::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        let r = s.linux().resources.unwrap();
        let b = r.block_io.unwrap();
        assert_eq!((b.weight, b.leaf_weight), (Some(500), Some(300)));
        assert_eq!(b.weight_device[0].weight, Some(500));
        assert_eq!(b.throttle_read_iops_device[0].rate, 100);
        let n = r.network.unwrap();
        assert_eq!(n.class_id, Some(1048577));
        assert_eq!(n.priorities[0].name, "eth0");
        // And written back under the same names (state.json keeps the config).
        let back = serde_json::to_value(s.linux().resources.unwrap()).unwrap();
        assert_eq!(back["blockIO"]["throttleReadIOPSDevice"][0]["rate"], 100);
        assert_eq!(back["network"]["classID"], 1048577);
    }

    #[test]
    fn bad_block_io_and_network_name_the_field() {
        let cases = [
            (serde_json::json!({"blockIO": {"weight": "heavy"}}), "config.json: linux.resources.blockIO.weight: "),
            (serde_json::json!({"blockIO": {"weight": 70000}}), "config.json: linux.resources.blockIO.weight: "),
            (serde_json::json!({"blockIO": {"weight": 1001}}), "config.json: linux.resources.blockIO.weight: 1001 is outside 1..1000"),
            (serde_json::json!({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 2000}]}}),
             "config.json: linux.resources.blockIO.weightDevice[0].leafWeight: 2000 is outside"),
            (serde_json::json!({"blockIO": {"throttleWriteBpsDevice": [{"major": -8, "minor": 0, "rate": 1}]}}),
             "config.json: linux.resources.blockIO.throttleWriteBpsDevice[0]: -8:0 is not a block device number"),
            (serde_json::json!({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}}),
             "config.json: linux.resources.blockIO.throttleReadBpsDevice[0]: missing field `rate`"),
            (serde_json::json!({"network": {"classID": -1}}), "config.json: linux.resources.network.classID: "),
            (serde_json::json!({"network": {"priorities": [{"name": "eth0 1\nlo", "priority": 1}]}}),
             "config.json: linux.resources.network.priorities[0].name: \"eth0 1\\nlo\" is not an interface name"),
            (serde_json::json!({"network": {"priorities": [{"name": "eth0"}]}}),
             "config.json: linux.resources.network.priorities[0]: missing field `priority`"),
            (serde_json::json!({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}),
             "config.json: linux.resources.hugepageLimits[0].pageSize: \"../2MB\" is not a page size"),
            (serde_json::json!({"devices": [{"allow": true, "access": "rwa"}]}),
             "config.json: linux.resources.devices[0].access: \"rwa\": unknown access 'a'"),
            (serde_json::json!({"devices": [{"allow": false, "type": "u"}]}),
             "config.json: linux.resources.devices[0].type: unknown device type \"u\""),
        ];
        for (resources, want) in cases {
            let mut v = base();
            v["linux"]["resources"] = resources.clone();
            let e = err(v);
            assert!(e.starts_with(want), "{resources}: {e}");
        }
    }

    /// runc's access strings: any order, repeats; other letters only in a
    /// deny rule (ignored there, as runc's device emulator does).
    #[test]
    fn device_access_strings() {
        let r = |allow: bool, a: &str| DeviceRule {
            allow,
            access: Some(a.into()),
            ..Default::default()
        };
        assert_eq!(r(true, "mrw").access_string().unwrap(), "rwm");
        assert_eq!(r(true, "wr").access_string().unwrap(), "rw");
        assert_eq!(r(true, "").access_string().unwrap(), "rwm", "empty = rwm");
        assert_eq!(r(false, "rwa").access_string().unwrap(), "rw");
        assert_eq!(r(false, "a").access_bits().unwrap(), 0);
        assert!(r(true, "rwa").access_bits().is_err());
        let mut v = base();
        v["linux"]["resources"] = serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "mwr"}
        ]});
        Spec::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
    }

    #[test]
    fn sysctl_needs_the_namespace_it_lives_in() {
        let with = |ns: serde_json::Value, key: &str| {
            let mut v = base();
            v["linux"]["namespaces"] = ns;
            v["linux"]["sysctl"] = serde_json::json!({ key: "1" });
            Spec::from_json(&serde_json::to_vec(&v).unwrap())
        };
        let none = serde_json::json!([{"type": "mount"}]);
        for key in [
            "net.ipv4.tcp_keepalive_time",
            "net/ipv4/tcp_keepalive_time",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.domainname",
            "kernel.core_pattern",
            "vm.swappiness",
        ] {
            let e = with(none.clone(), key).unwrap_err();
            assert_eq!(e.field, format!("linux.sysctl[{key:?}]"), "{e}");
        }
        let e = with(none.clone(), "net.ipv4.ip_forward").unwrap_err();
        assert!(
            e.msg.contains("not allowed in host network namespace"),
            "{e}"
        );
        let own = serde_json::json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}]);
        for key in [
            "net.ipv4.ip_forward",
            "net/ipv4/conf/all/forwarding",
            "kernel.shmmax",
            "fs.mqueue.msg_max",
            "kernel.domainname",
        ] {
            assert!(with(own.clone(), key).is_ok(), "{key}");
        }
        // Still refused with every namespace: not namespaced, or a conflicting field.
        for key in ["kernel.core_pattern", "kernel.hostname", "vm.swappiness"] {
            assert!(with(own.clone(), key).is_err(), "{key}");
        }
    }

    #[test]
    fn sysctl_keys_stay_below_proc_sys() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            "net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.eth0/100.forwarding").unwrap(),
            "net/ipv4/conf/eth0.100/forwarding"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            "net/ipv4/conf/eth0.100/forwarding"
        );
        for bad in [
            "net..ipv4",
            "net.//.kernel.core_pattern",
            "net/../kernel/core_pattern",
            "net.ipv4.",
            "",
        ] {
            assert!(sysctl_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unsupported_version() {
        let mut v = base();
        v["ociVersion"] = "2.0.0".into();
        assert!(err(v).starts_with("config.json: ociVersion: unsupported version"));
    }
}
