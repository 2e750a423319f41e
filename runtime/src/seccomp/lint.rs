//! `berth seccomp lint`: warnings about a profile. Never fatal: a container
//! still runs with a profile that has warnings (only `create`'s own checks
//! stop it). Each warning names the field and says what will happen.

use super::compile::{self, Clone3};
use super::enosys::{self, find_maxima};
use super::profile::{check, Action, ProblemKind, Rule};
use super::Context;
use crate::spec;
use libseccomp::{ScmpArch, ScmpSyscall};

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Field path inside the profile (`syscalls[3].names[1]`), or "" for the whole profile.
    pub field: String,
    /// Short stable identifier, for tests and grepping.
    pub code: &'static str,
    pub msg: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "warning[{}]: {}", self.code, self.msg)
        } else {
            write!(f, "warning[{}]: {}: {}", self.code, self.field, self.msg)
        }
    }
}

fn w(field: impl Into<String>, code: &'static str, msg: impl Into<String>) -> Warning {
    Warning {
        field: field.into(),
        code,
        msg: msg.into(),
    }
}

/// Lint a (resolved, OCI-form) profile for the container described by `ctx`.
pub fn lint(p: &spec::Seccomp, ctx: &Context) -> Vec<Warning> {
    let (checked, probs) = check(p, "");
    let mut out: Vec<Warning> = probs
        .into_iter()
        .map(|pr| {
            let code = match pr.kind {
                ProblemKind::UnknownSyscall => "unknown-syscall",
                ProblemKind::ErrnoOnAction => "errno-on-action",
                ProblemKind::Notify => "notify",
                ProblemKind::Invalid => "invalid",
            };
            let mut msg = pr.msg;
            if code == "unknown-syscall" && pr.fatal {
                msg += &format!(
                    " (libseccomp {} does not know it; runc and youki skip it silently, berth refuses \
                     to create the container)",
                    super::profile::libseccomp_version()
                );
            }
            w(pr.field, code, msg)
        })
        .collect();
    let Some(default) = checked.default else {
        if out.is_empty() {
            out.push(w(
                "",
                "disabled",
                "no defaultAction and no syscalls: seccomp is disabled for this container (as runc)",
            ));
        }
        return out;
    };
    let rules = &checked.rules;
    duplicates(rules, &mut out);
    for r in rules {
        if r.action == default {
            out.push(w(
                r.field(""),
                "same-as-default",
                format!(
                    "{:?} gets {}, which is the default action: the rule is skipped (libseccomp would refuse it)",
                    r.name, r.action
                ),
            ));
        }
        if let Some(f) = enosys::fallback_safe(&r.name) {
            let bad = match r.action {
                Action::Errno(e) => e as i32 != libc::ENOSYS,
                Action::KillThread | Action::KillProcess | Action::Trap => true,
                _ => false,
            };
            if bad && r.conds.is_empty() {
                out.push(w(
                    r.field(""),
                    "fallback-sensitive",
                    format!(
                        "{:?} is denied with {}, but callers only fall back on ENOSYS ({}); use errnoRet 38",
                        r.name, r.action, f.probed_by
                    ),
                ));
            }
        }
    }
    runc_gap(p, rules, default, &mut out);
    if p.listener_path.is_some() && !checked.notify {
        out.push(w(
            "listenerPath",
            "notify",
            "set, but no rule uses SCMP_ACT_NOTIFY: it is ignored (as runc)",
        ));
    }
    if let Ok(Some(b)) = compile::build(p, ctx, "") {
        if b.clone3 == Clone3::Enosys || b.clone3 == Clone3::AsProfile && !default.is_permissive() {
            let i = rules
                .iter()
                .find(|r| r.name == "clone3")
                .map(|r| r.field(""))
                .unwrap_or_default();
            out.push(w(
                i,
                "clone3-unguarded",
                "clone3 is allowed for a container with neither its own user namespace nor \
                 CAP_SYS_ADMIN: seccomp cannot see clone3's flags, so it could create namespaces the \
                 clone rule forbids. berth answers ENOSYS here (glibc falls back to clone); runc would allow it",
            ));
        }
    }
    out
}

/// Duplicate names: identical entries (Concourse's double `utimes`: harmless
/// but noise) and conflicting unconditional ones (libseccomp keeps the first).
fn duplicates(rules: &[Rule], out: &mut Vec<Warning>) {
    for (i, r) in rules.iter().enumerate() {
        let Some(first) = rules[..i].iter().find(|o| o.name == r.name) else {
            continue;
        };
        if first.action == r.action && first.conds == r.conds {
            out.push(w(
                r.field(""),
                "duplicate",
                format!(
                    "{:?} is already listed in {} with the same action",
                    r.name,
                    first.field("")
                ),
            ));
        } else if first.conds.is_empty() && r.conds.is_empty() {
            out.push(w(
                r.field(""),
                "duplicate",
                format!(
                    "{:?} already has an unconditional rule in {} ({}); libseccomp keeps the first, so {} is ignored",
                    r.name,
                    first.field(""),
                    first.action,
                    r.action
                ),
            ));
        }
    }
}

/// Duplicate names in a Docker-format profile, found in the source: the
/// resolved profile cannot show them, because resolving merges identical
/// rules (so Concourse's double `utimes` would pass unnoticed). Two entries
/// only count as duplicates when their `includes`/`excludes` are the same —
/// entries that differ there are variants for different containers (Docker's
/// `bpf` for CAP_SYS_ADMIN and for CAP_BPF), not repeats.
pub fn docker_duplicates(d: &super::profile::DockerProfile) -> Vec<Warning> {
    struct Seen<'a> {
        field: String,
        entry: &'a super::profile::DockerSyscall,
        filters: String,
    }
    let filters = |s: &super::profile::DockerSyscall| {
        serde_json::to_string(&(&s.includes, &s.excludes)).unwrap_or_default()
    };
    let mut seen: Vec<(String, Seen)> = Vec::new();
    let mut out = Vec::new();
    for (i, e) in d.syscalls.iter().enumerate() {
        let names: Vec<(String, &String)> = match &e.name {
            Some(n) => vec![(format!("syscalls[{i}].name"), n)],
            None => e
                .names
                .iter()
                .enumerate()
                .map(|(k, n)| (format!("syscalls[{i}].names[{k}]"), n))
                .collect(),
        };
        let f = filters(e);
        for (field, name) in names {
            let first = seen
                .iter()
                .find(|(n, s)| n == name && s.filters == f)
                .map(|(_, s)| s);
            if let Some(first) = first {
                let same_args = first.entry.args.clone().unwrap_or_default()
                    == e.args.clone().unwrap_or_default();
                let same_action =
                    first.entry.action == e.action && first.entry.errno_ret == e.errno_ret;
                if same_args && same_action {
                    out.push(w(
                        field.clone(),
                        "duplicate",
                        format!(
                            "{name:?} is already listed in {} with the same action",
                            first.field
                        ),
                    ));
                } else if same_args {
                    out.push(w(
                        field.clone(),
                        "duplicate",
                        format!(
                            "{name:?} already has a rule with the same conditions in {} ({}); this \
                             one ({}) conflicts with it",
                            first.field, first.entry.action, e.action
                        ),
                    ));
                }
                continue;
            }
            seen.push((
                name.clone(),
                Seen {
                    field,
                    entry: e,
                    filters: f.clone(),
                },
            ));
        }
    }
    out
}

/// Fallback-sensitive syscalls the profile leaves unnamed *below* its
/// highest named number: runc's stub misses them (the Concourse 7.13-rc
/// incident). berth covers them; say so.
fn runc_gap(p: &spec::Seccomp, rules: &[Rule], default: Action, out: &mut Vec<Warning>) {
    let denies = match default {
        Action::Errno(e) => e as i32 != libc::ENOSYS,
        Action::KillThread | Action::KillProcess | Action::Trap => true,
        _ => false,
    };
    if !denies {
        return;
    }
    let native = ScmpArch::native();
    let Some(max) = find_maxima(
        &[native],
        p.syscalls
            .iter()
            .flat_map(|s| s.names.iter().map(String::as_str)),
    )
    .first()
    .map(|m| m.max) else {
        return;
    };
    for f in enosys::FALLBACK_SAFE {
        if rules.iter().any(|r| r.name == f.name) {
            continue;
        }
        let Ok(sc) = ScmpSyscall::from_name(f.name) else {
            continue;
        };
        let nr = sc.as_raw_syscall();
        if nr > 0 && (nr as u32) < max {
            out.push(w(
                "",
                "runc-enosys-gap",
                format!(
                    "{} ({nr}) is not named but lies below the highest named syscall ({max}): runc would \
                     answer {default}, breaking callers that fall back only on ENOSYS ({}). berth answers \
                     ENOSYS (fallback-safe denial); name it explicitly to be portable",
                    f.name, f.probed_by
                ),
            ));
        }
    }
}
