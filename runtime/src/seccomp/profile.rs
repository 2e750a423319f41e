//! Profiles: checking an OCI `linux.seccomp` object field by field, and
//! reading Docker-format profiles (`archMap`, `includes`/`excludes`) by
//! resolving them for one container, as `docker run --security-opt seccomp=`
//! does (moby/profiles `seccomp_linux.go` `setupSeccomp`).
//!
//! [`check`] never stops at the first problem: it returns everything it can
//! understand plus a list of [`Problem`]s. `create` fails on the first fatal
//! one; `berth seccomp lint` prints them all as warnings.

use super::enosys::{arch_by_name, arch_info};
use super::Context;
use crate::spec::{self, SeccompArg, SeccompSyscall};
use anyhow::Context as _;
use libseccomp::{ScmpArch, ScmpSyscall};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a rule (or the default) does with a syscall. `SCMP_ACT_KILL` is
/// `KillThread`, as in runc, crun and libseccomp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Allow,
    Log,
    Notify,
}

impl Action {
    /// Parse an OCI action name with its optional `errnoRet`. ERRNO and TRACE
    /// default to EPERM (runc `getAction`); any other action given an errno is
    /// an error (OCI: "the runtime MUST print and error and fail"; runc
    /// silently ignores it, crun errors).
    pub fn parse(name: &str, errno: Option<u32>) -> Result<Action, (bool, ProblemKind, String)> {
        let takes_errno = matches!(name, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE");
        let a = match name {
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => Action::Notify,
            "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE" => {
                let e = errno.unwrap_or(libc::EPERM as u32);
                if e > 4095 {
                    return Err((
                        true,
                        ProblemKind::Invalid,
                        format!("{e} is above the largest errno (4095)"),
                    ));
                }
                if name == "SCMP_ACT_ERRNO" {
                    Action::Errno(e as u16)
                } else {
                    Action::Trace(e as u16)
                }
            }
            _ => {
                return Err((
                    false,
                    ProblemKind::Invalid,
                    format!("unknown action {name:?}"),
                ))
            }
        };
        if let (false, Some(e)) = (takes_errno, errno) {
            return Err((
                true,
                ProblemKind::ErrnoOnAction,
                format!("{name} takes no errno (got {e})"),
            ));
        }
        Ok(a)
    }

    pub fn to_scmp(self) -> libseccomp::ScmpAction {
        use libseccomp::ScmpAction as S;
        match self {
            Action::KillThread => S::KillThread,
            Action::KillProcess => S::KillProcess,
            Action::Trap => S::Trap,
            Action::Errno(e) => S::Errno(e as i32),
            Action::Trace(t) => S::Trace(t),
            Action::Allow => S::Allow,
            Action::Log => S::Log,
            Action::Notify => S::Notify,
        }
    }

    /// The 32-bit value a filter returns for this action.
    pub fn ret(self) -> u32 {
        use super::bpf::*;
        match self {
            Action::KillThread => RET_KILL_THREAD,
            Action::KillProcess => RET_KILL_PROCESS,
            Action::Trap => RET_TRAP,
            Action::Errno(e) => RET_ERRNO | e as u32,
            Action::Trace(t) => RET_TRACE | t as u32,
            Action::Allow => RET_ALLOW,
            Action::Log => RET_LOG,
            Action::Notify => RET_USER_NOTIF,
        }
    }

    /// ALLOW, LOG and TRACE let unknown syscalls run (or a tracer decide), so
    /// runc adds no ENOSYS stub for such a default (`isAllowAction`).
    pub fn is_permissive(self) -> bool {
        matches!(self, Action::Allow | Action::Log | Action::Trace(_))
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Errno(e) => write!(f, "SCMP_ACT_ERRNO({})", super::bpf::errno_name(*e as i32)),
            Action::Trace(t) => write!(f, "SCMP_ACT_TRACE({t})"),
            Action::KillThread => write!(f, "SCMP_ACT_KILL_THREAD"),
            Action::KillProcess => write!(f, "SCMP_ACT_KILL_PROCESS"),
            Action::Trap => write!(f, "SCMP_ACT_TRAP"),
            Action::Allow => write!(f, "SCMP_ACT_ALLOW"),
            Action::Log => write!(f, "SCMP_ACT_LOG"),
            Action::Notify => write!(f, "SCMP_ACT_NOTIFY"),
        }
    }
}

/// One argument comparison, in libseccomp's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    pub index: u32,
    pub op: Op,
    /// The compared value; for MASKED_EQ the datum (OCI `valueTwo`).
    pub value: u64,
    /// MASKED_EQ only: the mask (OCI `value`, runc's meaning).
    pub mask: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

impl Cond {
    fn parse(a: &SeccompArg) -> Result<Cond, String> {
        if a.index > 5 {
            return Err(format!("index {} is not an argument (0..5)", a.index));
        }
        let op = match a.op.as_str() {
            "SCMP_CMP_NE" => Op::Ne,
            "SCMP_CMP_LT" => Op::Lt,
            "SCMP_CMP_LE" => Op::Le,
            "SCMP_CMP_EQ" => Op::Eq,
            "SCMP_CMP_GE" => Op::Ge,
            "SCMP_CMP_GT" => Op::Gt,
            "SCMP_CMP_MASKED_EQ" => Op::MaskedEq,
            other => return Err(format!("unknown operator {other:?}")),
        };
        Ok(if op == Op::MaskedEq {
            // runc: MakeCondition(index, op, value, valueTwo) → datum_a = mask = value.
            Cond {
                index: a.index,
                op,
                value: a.value_two.unwrap_or(0),
                mask: a.value,
            }
        } else {
            Cond {
                index: a.index,
                op,
                value: a.value,
                mask: 0,
            }
        })
    }

    pub fn to_scmp(self) -> libseccomp::ScmpArgCompare {
        use libseccomp::ScmpCompareOp as C;
        let op = match self.op {
            Op::Ne => C::NotEqual,
            Op::Lt => C::Less,
            Op::Le => C::LessOrEqual,
            Op::Eq => C::Equal,
            Op::Ge => C::GreaterEqual,
            Op::Gt => C::Greater,
            Op::MaskedEq => C::MaskedEqual(self.mask),
        };
        libseccomp::ScmpArgCompare::new(self.index, op, self.value)
    }

    /// Evaluate against a 64-bit argument (libseccomp semantics; the datum of
    /// MASKED_EQ is masked too).
    pub fn matches(&self, arg: u64) -> bool {
        match self.op {
            Op::Ne => arg != self.value,
            Op::Lt => arg < self.value,
            Op::Le => arg <= self.value,
            Op::Eq => arg == self.value,
            Op::Ge => arg >= self.value,
            Op::Gt => arg > self.value,
            Op::MaskedEq => arg & self.mask == self.value & self.mask,
        }
    }
}

impl std::fmt::Display for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.index;
        match self.op {
            Op::MaskedEq => write!(f, "(arg{i} & {:#x}) == {:#x}", self.mask, self.value),
            op => {
                let s = match op {
                    Op::Ne => "!=",
                    Op::Lt => "<",
                    Op::Le => "<=",
                    Op::Eq => "==",
                    Op::Ge => ">=",
                    _ => ">",
                };
                write!(f, "arg{i} {s} {:#x}", self.value)
            }
        }
    }
}

/// One `names[]` entry of one `syscalls[]` element: runc turns each name
/// into its own rule sharing the element's action and args.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Index into `syscalls[]`.
    pub entry: usize,
    /// Index into that element's `names[]`.
    pub name_index: usize,
    pub name: String,
    /// Native number (negative for libseccomp pseudo-syscalls); `None` if unknown.
    pub nr: Option<i32>,
    pub action: Action,
    pub conds: Vec<Cond>,
    pub comment: Option<String>,
}

impl Rule {
    /// runc `matchCall`: if two comparisons share an argument index, each
    /// comparison becomes its own rule (OR); otherwise one rule (AND).
    pub fn cond_groups(&self) -> Vec<Vec<Cond>> {
        let dup = self
            .conds
            .iter()
            .enumerate()
            .any(|(i, c)| self.conds[..i].iter().any(|d| d.index == c.index));
        if dup {
            self.conds.iter().map(|c| vec![*c]).collect()
        } else {
            vec![self.conds.clone()]
        }
    }

    /// Would this rule fire for these arguments?
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        self.conds.is_empty()
            || self
                .cond_groups()
                .iter()
                .any(|g| g.iter().all(|c| c.matches(args[c.index as usize])))
    }

    pub fn field(&self, prefix: &str) -> String {
        format!(
            "{prefix}syscalls[{}].names[{}]",
            self.entry, self.name_index
        )
    }
}

/// The filter flags berth will pass to seccomp(2), from `flags`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub log: bool,
    pub spec_allow: bool,
    /// SPEC_ALLOW came from an absent `flags` (runc's default): drop it if the
    /// kernel says EINVAL instead of failing.
    pub spec_allow_implicit: bool,
    pub wait_killable_recv: bool,
    /// Accepted and ignored, as runc does: init is single-threaded.
    pub tsync: bool,
}

/// A checked profile: everything [`check`] could understand.
#[derive(Debug, Clone)]
pub struct Checked {
    /// `None` when seccomp is disabled (no defaultAction and no syscalls, as runc).
    pub default: Option<Action>,
    /// `architectures`, resolved (the native arch is added at compile time).
    pub archs: Vec<ScmpArch>,
    pub flags: Flags,
    pub rules: Vec<Rule>,
    pub notify: bool,
}

/// Something wrong with a profile. `fatal` ones stop `create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub msg: String,
    pub fatal: bool,
    /// What is wrong, for `seccomp lint`'s codes (never read from `msg`).
    pub kind: ProblemKind,
}

/// The kinds of profile problem `seccomp lint` tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A syscall name this libseccomp (or any kernel) does not know.
    UnknownSyscall,
    /// An errno given to an action that takes none.
    ErrnoOnAction,
    /// SCMP_ACT_NOTIFY used where it cannot work, or its fields.
    Notify,
    /// Anything else that makes the profile invalid.
    Invalid,
}

fn fatal(probs: &mut Vec<Problem>, field: String, msg: String) {
    fatal_kind(probs, ProblemKind::Invalid, field, msg)
}

fn fatal_kind(probs: &mut Vec<Problem>, kind: ProblemKind, field: String, msg: String) {
    probs.push(Problem {
        field,
        msg,
        fatal: true,
        kind,
    })
}

/// Real syscalls newer than libseccomp 2.5.4's tables (name, first kernel).
/// A profile may name them (Docker's does); berth skips them with a warning
/// when the installed libseccomp cannot resolve them, as runc does.
pub const NEWER_SYSCALLS: &[(&str, &str)] = &[
    ("uretprobe", "6.11"),
    ("riscv_hwprobe", "6.4"),
    ("statmount", "6.8"),
    ("listmount", "6.8"),
    ("lsm_get_self_attr", "6.8"),
    ("lsm_set_self_attr", "6.8"),
    ("lsm_list_modules", "6.8"),
    ("mseal", "6.10"),
    ("setxattrat", "6.13"),
    ("getxattrat", "6.13"),
    ("listxattrat", "6.13"),
    ("removexattrat", "6.13"),
    ("open_tree_attr", "6.15"),
    ("file_getattr", "6.17"),
    ("file_setattr", "6.17"),
];

fn newer_than_libseccomp(name: &str) -> Option<&'static str> {
    NEWER_SYSCALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
}

/// The installed libseccomp's version, for messages.
pub fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "?".into())
}

/// Check `p` field by field. `prefix` is prepended to field paths
/// (`"linux.seccomp."` inside config.json, `""` for a profile file).
pub fn check(p: &spec::Seccomp, prefix: &str) -> (Checked, Vec<Problem>) {
    let mut probs = Vec::new();
    let default = check_default(p, prefix, &mut probs);
    let archs = check_archs(p, prefix, &mut probs);
    let flags = check_flags(p, prefix, &mut probs);
    let rules = check_syscalls(p, prefix, &mut probs);
    let notify = rules.iter().any(|r| r.action == Action::Notify);
    check_notify(p, prefix, flags, notify, &mut probs);
    (
        Checked {
            default,
            archs,
            flags,
            rules,
            notify,
        },
        probs,
    )
}

/// `defaultAction` + `defaultErrnoRet`; `None` when disabled or invalid.
fn check_default(p: &spec::Seccomp, prefix: &str, probs: &mut Vec<Problem>) -> Option<Action> {
    let disabled = p.default_action.is_empty() && p.syscalls.is_empty();
    let default = if disabled {
        None
    } else if p.default_action.is_empty() {
        fatal(
            probs,
            format!("{prefix}defaultAction"),
            "is required".into(),
        );
        None
    } else {
        match Action::parse(&p.default_action, p.default_errno_ret) {
            Ok(Action::Notify) => {
                fatal_kind(
                    probs,
                    ProblemKind::Notify,
                    format!("{prefix}defaultAction"),
                    "SCMP_ACT_NOTIFY cannot be the default action (runc, youki: every syscall, \
                     including the hand-off of the listener fd, would wait for the agent)"
                        .into(),
                );
                None
            }
            Ok(a) => Some(a),
            Err((errno_field, kind, msg)) => {
                let f = if errno_field {
                    "defaultErrnoRet"
                } else {
                    "defaultAction"
                };
                fatal_kind(probs, kind, format!("{prefix}{f}"), msg);
                None
            }
        }
    };

    default
}

/// `architectures`, resolved to libseccomp tokens.
fn check_archs(p: &spec::Seccomp, prefix: &str, probs: &mut Vec<Problem>) -> Vec<ScmpArch> {
    let mut archs = Vec::new();
    for (i, a) in p.architectures.iter().enumerate() {
        match arch_by_name(a) {
            Some(info) => archs.push(info.scmp),
            None => fatal(
                probs,
                format!("{prefix}architectures[{i}]"),
                format!("unknown architecture {a:?}"),
            ),
        }
    }

    archs
}

/// `flags`: absent and `[]` differ (runc specconv).
fn check_flags(p: &spec::Seccomp, prefix: &str, probs: &mut Vec<Problem>) -> Flags {
    let mut flags = Flags::default();
    match &p.flags {
        None => {
            // runc specconv: absent flags → SPEC_ALLOW when supported.
            flags.spec_allow = true;
            flags.spec_allow_implicit = true;
        }
        Some(list) => {
            for (i, f) in list.iter().enumerate() {
                match f.as_str() {
                    "SECCOMP_FILTER_FLAG_TSYNC" => flags.tsync = true,
                    "SECCOMP_FILTER_FLAG_LOG" => flags.log = true,
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => flags.spec_allow = true,
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => flags.wait_killable_recv = true,
                    other => fatal(
                        probs,
                        format!("{prefix}flags[{i}]"),
                        format!("unknown seccomp filter flag {other:?}"),
                    ),
                }
            }
        }
    }

    flags
}

/// `syscalls[]`: one [`Rule`] per name, as runc.
fn check_syscalls(p: &spec::Seccomp, prefix: &str, probs: &mut Vec<Problem>) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (e, sc) in p.syscalls.iter().enumerate() {
        let field = format!("{prefix}syscalls[{e}]");
        if sc.names.is_empty() {
            fatal(
                probs,
                format!("{field}.names"),
                "must name at least one syscall".into(),
            );
        }
        let action = match Action::parse(&sc.action, sc.errno_ret) {
            Ok(a) => a,
            Err((errno_field, kind, msg)) => {
                let f = if errno_field { "errnoRet" } else { "action" };
                fatal_kind(probs, kind, format!("{field}.{f}"), msg);
                continue;
            }
        };
        let mut conds = Vec::new();
        let mut bad_args = false;
        for (j, a) in sc.args.iter().enumerate() {
            match Cond::parse(a) {
                Ok(c) => conds.push(c),
                Err(msg) => {
                    fatal(probs, format!("{field}.args[{j}]"), msg);
                    bad_args = true;
                }
            }
        }
        if bad_args {
            continue;
        }
        for (n, name) in sc.names.iter().enumerate() {
            let nr = ScmpSyscall::from_name(name)
                .ok()
                .map(|s| s.as_raw_syscall());
            if nr.is_none() {
                // runc and youki skip unknown names with a debug/warn log; crun
                // skips unless run.oci.seccomp_fail_unknown_syscall is set. berth
                // fails on a name no kernel has: a typo ("clonee") would silently
                // leave a hole or a denial. A real syscall that this libseccomp is
                // too old for is skipped like runc does, so Docker's and
                // containerd's current profiles still run; it is numbered above
                // every name libseccomp knows, so the ENOSYS stub answers it.
                let f = format!("{field}.names[{n}]");
                match newer_than_libseccomp(name) {
                    Some(since) => probs.push(Problem {
                        field: f,
                        msg: format!(
                            "unknown syscall {name:?} (Linux {since}; too new for libseccomp {}): skipped, as runc does",
                            libseccomp_version()
                        ),
                        fatal: false,
                        kind: ProblemKind::UnknownSyscall,
                    }),
                    None => fatal_kind(
                        probs,
                        ProblemKind::UnknownSyscall,
                        f,
                        format!("unknown syscall {name:?}"),
                    ),
                }
                continue;
            }
            if action == Action::Notify && name == "write" {
                fatal_kind(
                    probs,
                    ProblemKind::Notify,
                    format!("{field}.names[{n}]"),
                    "SCMP_ACT_NOTIFY cannot be used for the write syscall: init writes the \
                     listener fd to the runtime with it (runc's message)"
                        .into(),
                );
                continue;
            }
            rules.push(Rule {
                entry: e,
                name_index: n,
                name: name.clone(),
                nr,
                action,
                conds: conds.clone(),
                comment: sc.comment.clone(),
            });
        }
    }
    rules
}

/// The NOTIFY-related fields, which only make sense together.
fn check_notify(
    p: &spec::Seccomp,
    prefix: &str,
    flags: Flags,
    notify: bool,
    probs: &mut Vec<Problem>,
) {
    if flags.wait_killable_recv && !notify {
        // runc passes it and the kernel says EINVAL; crun silently drops it.
        fatal_kind(
            probs,
            ProblemKind::Notify,
            format!("{prefix}flags"),
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs at least one SCMP_ACT_NOTIFY rule".into(),
        );
    }
    if notify
        && p.listener_path
            .as_deref()
            .is_none_or(|l| l.as_os_str().is_empty())
    {
        fatal_kind(
            probs,
            ProblemKind::Notify,
            format!("{prefix}listenerPath"),
            "is required when a rule uses SCMP_ACT_NOTIFY".into(),
        );
    }
    if p.listener_metadata.is_some() && p.listener_path.is_none() {
        fatal(
            probs,
            format!("{prefix}listenerMetadata"),
            "must not be set without listenerPath".into(),
        );
    }
}

// ---------------------------------------------------------------------------
// Docker format

/// A profile as `docker run --security-opt seccomp=FILE` reads it: the OCI
/// object plus `archMap`, per-rule `includes`/`excludes`, and the old
/// single-`name` form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerProfile {
    #[serde(default)]
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<DockerArch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<DockerSyscall>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerArch {
    pub architecture: String,
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerSyscall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<SeccompArg>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<DockerFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<DockerFilter>,
}

/// Conditions on a Docker rule: capabilities (bounding set), architectures
/// (Docker's names: `amd64`, `x86`, `arm64`, …) and a minimum kernel `"5.8"`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// Does this JSON look like a Docker-format profile?
pub fn is_docker_format(v: &serde_json::Value) -> bool {
    v.get("archMap").is_some()
        || v.get("syscalls")
            .and_then(|s| s.as_array())
            .is_some_and(|a| {
                a.iter().any(|s| {
                    s.get("includes").is_some()
                        || s.get("excludes").is_some()
                        || s.get("name").is_some()
                })
            })
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.splitn(3, '.');
    let major = it.next()?.parse().ok()?;
    let minor: String = it
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The running kernel's "major.minor" (uname).
pub fn running_kernel() -> Option<(u32, u32)> {
    let u = nix::sys::utsname::uname().ok()?;
    parse_kernel(&u.release().to_string_lossy())
}

/// Resolve a Docker profile for one container (moby `setupSeccomp`):
/// `archMap` expands to the native arch plus its sub-arches; a rule is kept
/// when every `includes` condition holds (all caps in the bounding set, the
/// native arch listed, kernel ≥ minKernel) and no `excludes` one does (any
/// cap, the arch, kernel ≥ minKernel). Identical resolved rules are merged so
/// the output has no duplicates.
pub fn resolve_docker(d: &DockerProfile, ctx: &Context) -> anyhow::Result<spec::Seccomp> {
    if !d.architectures.is_empty() && !d.arch_map.is_empty() {
        anyhow::bail!("both architectures and archMap are set; use one of them");
    }
    let native = ctx_arch(ctx)?;
    let kernel = match ctx.kernel {
        Some(k) => Some(k),
        None => running_kernel(),
    };
    let mut out = spec::Seccomp {
        default_action: d.default_action.clone(),
        default_errno_ret: d.default_errno_ret,
        architectures: d.architectures.clone(),
        flags: d.flags.clone(),
        listener_path: d.listener_path.clone(),
        listener_metadata: d.listener_metadata.clone(),
        syscalls: Vec::new(),
    };
    if let Some(m) = d.arch_map.iter().find(|m| m.architecture == native.oci) {
        out.architectures.push(m.architecture.clone());
        out.architectures
            .extend(m.sub_architectures.clone().unwrap_or_default());
    }
    let has_cap = |c: &String| ctx.caps.iter().any(|x| x == c);
    let kernel_at_least = |i: usize, v: &str, which: &str| -> anyhow::Result<bool> {
        let want = parse_kernel(v).with_context(|| {
            format!("syscalls[{i}].{which}.minKernel: {v:?} is not \"<major>.<minor>\"")
        })?;
        Ok(kernel.is_none_or(|k| k >= want))
    };
    for (i, s) in d.syscalls.iter().enumerate() {
        if let Some(x) = &s.excludes {
            if x.arches.iter().any(|a| a == native.docker)
                || x.caps.iter().any(has_cap)
                || match &x.min_kernel {
                    Some(v) => kernel_at_least(i, v, "excludes")?,
                    None => false,
                }
            {
                continue;
            }
        }
        if let Some(inc) = &s.includes {
            if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == native.docker))
                || !inc.caps.iter().all(has_cap)
                || match &inc.min_kernel {
                    Some(v) => !kernel_at_least(i, v, "includes")?,
                    None => false,
                }
            {
                continue;
            }
        }
        let mut names = s.names.clone();
        if let Some(n) = &s.name {
            if !names.is_empty() {
                anyhow::bail!("syscalls[{i}]: both name and names are set; use one of them");
            }
            names.push(n.clone());
        }
        let args = s.args.clone().unwrap_or_default();
        // Drop names an earlier kept rule already gives the same verdict with the same args.
        names.retain(|n| {
            !out.syscalls.iter().any(|o| {
                o.names.contains(n)
                    && o.action == s.action
                    && o.errno_ret == s.errno_ret
                    && o.args == args
            })
        });
        if names.is_empty() {
            continue;
        }
        out.syscalls.push(SeccompSyscall {
            names,
            action: s.action.clone(),
            errno_ret: s.errno_ret,
            args,
            comment: s.comment.clone(),
        });
    }
    Ok(out)
}

/// The architecture a context describes (native unless set).
pub fn ctx_arch(ctx: &Context) -> anyhow::Result<&'static super::enosys::ArchInfo> {
    match &ctx.arch {
        None => Ok(arch_info(ScmpArch::Native)),
        Some(a) => arch_by_name(a).with_context(|| format!("unknown architecture {a:?}")),
    }
}

/// Parse profile JSON in OCI or Docker format and resolve it for `ctx`.
pub fn parse_profile(text: &str, ctx: &Context) -> anyhow::Result<spec::Seccomp> {
    let v: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
    // Plain serde first, serde_path_to_error only to name the path of an
    // error (see spec::deserialize_with_path: the same errors, less CPU).
    if is_docker_format(&v) {
        let d = match DockerProfile::deserialize(&v) {
            Ok(d) => d,
            Err(_) => serde_path_to_error::deserialize(v)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner()))?,
        };
        resolve_docker(&d, ctx)
    } else {
        match spec::Seccomp::deserialize(&v) {
            Ok(s) => Ok(s),
            Err(_) => serde_path_to_error::deserialize(v)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner())),
        }
    }
}

/// Load a profile file (OCI `linux.seccomp` object or Docker format),
/// converted for the container described by `ctx`.
pub fn load_profile(path: &Path, ctx: &Context) -> anyhow::Result<spec::Seccomp> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading seccomp profile {}", path.display()))?;
    parse_profile(&text, ctx).with_context(|| format!("seccomp profile {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seccomp(v: serde_json::Value) -> spec::Seccomp {
        serde_json::from_value(v).unwrap()
    }

    fn first_fatal(v: serde_json::Value) -> String {
        let (_, probs) = check(&seccomp(v), "linux.seccomp.");
        let p = probs
            .into_iter()
            .find(|p| p.fatal)
            .expect("a fatal problem");
        format!("{}: {}", p.field, p.msg)
    }

    #[test]
    fn every_error_names_its_field() {
        let cases = [
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["close"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["clone", "clonee"], "action": "SCMP_ACT_ALLOW"}]}),
                "linux.seccomp.syscalls[3].names[1]: unknown syscall \"clonee\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_EPERM"}),
                "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_EPERM\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}),
                "linux.seccomp.defaultErrnoRet: SCMP_ACT_KILL takes no errno (got 1)",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 38}]}),
                "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_ALLOW takes no errno (got 38)",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALOW"}]}),
                "linux.seccomp.syscalls[0].action: unknown action \"SCMP_ACT_ALOW\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                              {"index": 1, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}),
                "linux.seccomp.syscalls[0].args[1]: unknown operator \"SCMP_CMP_LIKE\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
                "linux.seccomp.syscalls[0].args[0]: index 6 is not an argument (0..5)",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}),
                "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_Z80\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}),
                "linux.seccomp.flags[0]: unknown seccomp filter flag \"SECCOMP_FILTER_FLAG_FAST\"",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
                "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
                    {"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.syscalls[0].names[0]: SCMP_ACT_NOTIFY cannot be used for the write syscall",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}),
                "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs at least one SCMP_ACT_NOTIFY rule",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
                "linux.seccomp.listenerPath: is required when a rule uses SCMP_ACT_NOTIFY",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
                "linux.seccomp.listenerMetadata: must not be set without listenerPath",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 5000}),
                "linux.seccomp.defaultErrnoRet: 5000 is above the largest errno (4095)",
            ),
            (
                json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
                "linux.seccomp.defaultAction: is required",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}),
                "linux.seccomp.syscalls[0].names: must name at least one syscall",
            ),
        ];
        for (v, want) in cases {
            let got = first_fatal(v);
            assert!(got.starts_with(want), "got {got:?}\nwant {want:?}");
        }
    }

    #[test]
    fn empty_profile_disables_seccomp() {
        let (c, probs) = check(&seccomp(json!({})), "");
        assert!(c.default.is_none() && probs.is_empty());
    }

    #[test]
    fn actions_and_flags() {
        let (c, probs) = check(
            &seccomp(
                json!({"defaultAction": "SCMP_ACT_KILL", "flags": [], "syscalls": [
                {"names": ["read", "pread64"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7}]}),
            ),
            "",
        );
        assert!(probs.is_empty(), "{probs:?}");
        assert_eq!(c.default, Some(Action::KillThread));
        assert_eq!(c.flags, Flags::default());
        assert_eq!(c.rules.len(), 3);
        assert_eq!(c.rules[1].name, "pread64");
        assert_eq!(c.rules[1].action, Action::Errno(1));
        assert_eq!(c.rules[2].action, Action::Trace(7));
        let (c, _) = check(&seccomp(json!({"defaultAction": "SCMP_ACT_ALLOW"})), "");
        assert!(c.flags.spec_allow && c.flags.spec_allow_implicit);
    }

    #[test]
    fn masked_eq_uses_runc_meaning() {
        // Docker's clone rule: value = mask 0x7E020000, valueTwo = datum 0.
        let a = SeccompArg {
            index: 0,
            value: 0x7E02_0000,
            value_two: Some(0),
            op: "SCMP_CMP_MASKED_EQ".into(),
        };
        let c = Cond::parse(&a).unwrap();
        assert!(c.matches(libc::CLONE_VM as u64 | libc::SIGCHLD as u64));
        assert!(!c.matches(libc::CLONE_NEWUSER as u64));
        assert_eq!(c.to_string(), "(arg0 & 0x7e020000) == 0x0");
    }

    #[test]
    fn repeated_index_means_or() {
        let (c, _) = check(
            &seccomp(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mmap"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 2, "value": 3, "op": "SCMP_CMP_EQ"}]}]})),
            "",
        );
        let r = &c.rules[0];
        assert_eq!(r.cond_groups().len(), 2);
        assert!(r.matches(&[8, 0, 0, 0, 0, 0]) && !r.matches(&[9, 0, 0, 0, 0, 0]));
        let r = &c.rules[1];
        assert_eq!(r.cond_groups().len(), 1);
        assert!(r.matches(&[0, 9, 3, 0, 0, 0]) && !r.matches(&[0, 9, 4, 0, 0, 0]));
    }

    fn docker_sample() -> DockerProfile {
        serde_json::from_value(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"name": "close", "action": "SCMP_ACT_ALLOW"},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
                {"names": ["mount", "bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_BPF"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["newer"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.1"}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap()
    }

    fn names(s: &spec::Seccomp) -> Vec<String> {
        s.syscalls.iter().flat_map(|s| s.names.clone()).collect()
    }

    #[test]
    fn docker_conversion_by_caps_arch_and_kernel() {
        let ctx = Context {
            arch: Some("SCMP_ARCH_X86_64".into()),
            kernel: Some((6, 1)),
            ..Default::default()
        };
        let s = resolve_docker(&docker_sample(), &ctx).unwrap();
        assert_eq!(
            s.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        assert_eq!(
            names(&s),
            ["read", "write", "close", "arch_prctl", "ptrace", "clone"]
        );
        assert_eq!(s.syscalls.last().unwrap().args[0].value, 0x7E02_0000);

        let admin = Context {
            caps: vec!["CAP_SYS_ADMIN".into(), "CAP_BPF".into()],
            arch: Some("SCMP_ARCH_AARCH64".into()),
            kernel: Some((4, 4)),
            ..Default::default()
        };
        let s = resolve_docker(&docker_sample(), &admin).unwrap();
        assert_eq!(s.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
        // bpf appears once even though two groups grant it; old kernel: no ptrace.
        assert_eq!(
            names(&s),
            ["read", "write", "close", "set_tls", "mount", "bpf"]
        );
    }

    #[test]
    fn docker_format_errors() {
        let mut d = docker_sample();
        d.architectures = vec!["SCMP_ARCH_X86_64".into()];
        assert!(resolve_docker(&d, &Context::default())
            .unwrap_err()
            .to_string()
            .contains("both architectures and archMap"));
        let mut d = docker_sample();
        d.syscalls[7].includes.as_mut().unwrap().min_kernel = Some("five".into());
        let e = resolve_docker(&d, &Context::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("syscalls[7].includes.minKernel"), "{e}");
    }

    #[test]
    fn detects_format() {
        assert!(is_docker_format(&json!({"archMap": []})));
        assert!(is_docker_format(&json!({"syscalls": [{"name": "read"}]})));
        assert!(!is_docker_format(
            &json!({"syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})
        ));
        assert_eq!(parse_kernel("6.18.0-rc1-amd64"), Some((6, 18)));
    }
}
