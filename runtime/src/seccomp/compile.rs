//! Profile → cBPF: libseccomp builds the rule program exactly as runc does
//! (same rule order, same merge precedence, the same verdict on every arch),
//! one program per arch chained for build speed (docs/performance.md); berth
//! exports it and prepends its ENOSYS stub.

use super::enosys::{self, ArchMax};
use super::profile::{check, libseccomp_version, Action, Checked, Rule};
use super::{bpf, Context, Insn, Program};
use crate::spec::{self, SpecError};
use libseccomp::{ScmpArch, ScmpFilterContext, ScmpSyscall};
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

/// Annotation that switches berth's ENOSYS extensions off: runc's exact verdicts.
pub const ENOSYS_ANNOTATION: &str = "run.berth.seccomp.enosys";

/// seccomp(2) filter flags.
pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// What docs/seccomp.md decided for clone3 in this container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clone3 {
    /// The profile does not allow clone3 (or does not name it).
    NotAllowed,
    /// Allowed, and init will set max_user_namespaces = 0 inside the container's userns.
    AllowedWithGuard,
    /// Allowed: the container has CAP_SYS_ADMIN (it may create namespaces anyway).
    AllowedSysAdmin,
    /// Host user namespace without CAP_SYS_ADMIN: the allow became ENOSYS, so
    /// glibc falls back to clone(2), whose flag rule applies.
    Enosys,
    /// Kept as the profile says: runc mode, or a permissive (denylist) default.
    AsProfile,
}

/// Everything compile learned, for `explain`, `lint` and `--disasm`.
#[derive(Debug, Clone)]
pub struct Built {
    pub checked: Checked,
    pub program: Program,
    /// Architectures in the filter (profile's plus native), in order.
    pub archs: Vec<ScmpArch>,
    pub maxima: Vec<ArchMax>,
    /// Fallback-safe syscalls given ENOSYS rules (names).
    pub fallback_safe: Vec<&'static str>,
    /// Rules skipped because their action equals the default (runc does too).
    pub redundant: Vec<usize>,
    pub clone3: Clone3,
    pub runc_mode: bool,
    pub default: Action,
}

/// True when the annotation asks for runc's exact verdicts.
pub fn runc_mode(ctx: &Context) -> Result<bool, SpecError> {
    match ctx.annotations.get(ENOSYS_ANNOTATION).map(String::as_str) {
        None | Some("berth") => Ok(false),
        Some("runc") => Ok(true),
        Some(other) => Err(SpecError::new(
            format!("annotations.{ENOSYS_ANNOTATION}"),
            format!("{other:?} is neither \"runc\" nor \"berth\""),
        )),
    }
}

fn has_sys_admin(ctx: &Context) -> bool {
    ctx.caps.iter().any(|c| c == "CAP_SYS_ADMIN")
}

/// Compile `p` for `ctx`. `prefix` names the profile in errors
/// (`"linux.seccomp."`). `Ok(None)`: seccomp disabled.
///
/// The steps: check every field → decide clone3 by context (A.4) → let
/// libseccomp build the rule program (runc's rule order and precedence, plus
/// fallback-safe ENOSYS rules, A.3) → prepend the ENOSYS stub (A.2) →
/// compute the seccomp(2) flags.
pub fn build(p: &spec::Seccomp, ctx: &Context, prefix: &str) -> Result<Option<Built>, SpecError> {
    let (mut checked, probs) = check(p, prefix);
    if let Some(e) = probs.into_iter().find(|p| p.fatal) {
        return Err(SpecError::new(e.field, e.msg));
    }
    let Some(default) = checked.default else {
        return Ok(None);
    };
    let runc = runc_mode(ctx)?;
    let clone3 = decide_clone3(&mut checked.rules, ctx, runc, default);
    let field = prefix.trim_end_matches('.');

    let RuleProgram {
        body,
        redundant,
        fallback_safe,
    } = libseccomp_program(&checked, default, runc, prefix)?;

    let mut archs = checked.archs.clone();
    let native = ScmpArch::native();
    if !archs.contains(&native) {
        // runc ccc500c42: the native arch always counts, even if unlisted.
        archs.push(native);
    }
    let maxima = if default.is_permissive() {
        Vec::new() // runc: no stub when unknown syscalls are allowed anyway
    } else {
        let names = p
            .syscalls
            .iter()
            .flat_map(|s| s.names.iter().map(String::as_str));
        enosys::find_maxima(&archs, names)
    };
    let mut insns = enosys::build_stub(&maxima);
    let stub_len = insns.len();
    insns.extend(body);
    if insns.len() > bpf::MAX_INSNS {
        return Err(SpecError::new(
            field,
            format!(
                "the compiled filter has {} instructions; the kernel allows {}",
                insns.len(),
                bpf::MAX_INSNS
            ),
        ));
    }

    let program = Program {
        insns,
        stub_len,
        flags: filter_flags(&checked),
        optional_flags: if checked.flags.spec_allow_implicit {
            FLAG_SPEC_ALLOW
        } else {
            0
        },
        notify: checked.notify,
        listener_path: p.listener_path.clone(),
        listener_metadata: p.listener_metadata.clone(),
        guard_user_namespaces: clone3 == Clone3::AllowedWithGuard,
        summary: String::new(),
    };
    let mut built = Built {
        checked,
        program,
        archs,
        maxima,
        fallback_safe,
        redundant,
        clone3,
        runc_mode: runc,
        default,
    };
    built.program.summary = summary(&built);
    Ok(Some(built))
}

/// What libseccomp produced, and what went into it.
struct RuleProgram {
    body: Vec<Insn>,
    /// Indices of rules skipped as redundant (action == default).
    redundant: Vec<usize>,
    /// Fallback-safe syscalls given ERRNO(ENOSYS) rules.
    fallback_safe: Vec<&'static str>,
}

/// The rule program from libseccomp, exported.
///
/// With several arches, libseccomp builds one program per arch and berth
/// chains them (docs/performance.md): libseccomp 2.5's BPF generator is
/// quadratic in the size of the whole multi-arch tree, so Docker's profile on
/// x86_64+x86+x32 took ~20 ms in one context and takes a fraction of that as
/// three. Each per-arch program's bad-arch action is a sentinel `ret`, rewritten
/// to a jump to the next program (the last one keeps libseccomp's real
/// bad-arch action), so a syscall falls through the arch checks exactly as in
/// libseccomp's own multi-arch layout.
fn libseccomp_program(
    checked: &Checked,
    default: Action,
    runc: bool,
    prefix: &str,
) -> Result<RuleProgram, SpecError> {
    let native = ScmpArch::native();
    let mut arches = vec![native];
    for a in &checked.archs {
        if !arches.contains(a) {
            arches.push(*a);
        }
    }
    let sentinel_used = checked
        .rules
        .iter()
        .map(|r| r.action)
        .chain([default])
        .any(|a| matches!(a, Action::Trace(t) if t == CHAIN_SENTINEL_DATA));
    if arches.len() == 1 || sentinel_used {
        return arch_program(checked, default, runc, prefix, None);
    }
    let mut chained: Vec<Insn> = Vec::new();
    let mut first: Option<RuleProgram> = None;
    let last = arches.len() - 1;
    for (i, a) in arches.iter().enumerate() {
        let mut part = arch_program(checked, default, runc, prefix, Some((*a, native)))?;
        let base = chained.len();
        let next = base + part.body.len();
        for (pc, insn) in part.body.iter_mut().enumerate() {
            if insn.code == bpf::BPF_RET | bpf::BPF_K && insn.k == CHAIN_SENTINEL {
                *insn = if i == last {
                    Insn::stmt(bpf::BPF_RET | bpf::BPF_K, bpf::RET_KILL_THREAD)
                } else {
                    // ja: offset from the next instruction to the next program.
                    Insn::stmt(bpf::BPF_JMP | bpf::BPF_JA, (next - (base + pc) - 1) as u32)
                };
            }
        }
        chained.extend_from_slice(&part.body);
        if first.is_none() {
            part.body = Vec::new();
            first = Some(part);
        }
    }
    let mut out = first.expect("at least one arch");
    out.body = chained;
    Ok(out)
}

/// The `ret` value of the sentinel bad-arch action of a per-arch program:
/// SCMP_ACT_TRACE with data no profile uses (checked before chaining).
const CHAIN_SENTINEL_DATA: u16 = 0xbe27;
const CHAIN_SENTINEL: u32 = bpf::RET_TRACE | CHAIN_SENTINEL_DATA as u32;

/// One libseccomp context: every arch of the profile (`only` = None), or
/// just `only.0` (`only.1` is the native arch, removed when it is not the one),
/// with the chaining sentinel as its bad-arch action.
fn arch_program(
    checked: &Checked,
    default: Action,
    runc: bool,
    prefix: &str,
    only: Option<(ScmpArch, ScmpArch)>,
) -> Result<RuleProgram, SpecError> {
    let field = prefix.trim_end_matches('.');
    let lib = |what: &str, e: libseccomp::error::SeccompError| {
        SpecError::new(field, format!("libseccomp: {what}: {e}"))
    };
    let mut f = ScmpFilterContext::new(default.to_scmp()).map_err(|e| lib("init", e))?;
    let arch_err = |i: usize, e: libseccomp::error::SeccompError| {
        SpecError::new(
            format!("{prefix}architectures[{i}]"),
            format!(
                "libseccomp {} cannot filter this architecture: {e}",
                libseccomp_version()
            ),
        )
    };
    match only {
        None => {
            for (i, a) in checked.archs.iter().enumerate() {
                f.add_arch(*a).map_err(|e| arch_err(i, e))?;
            }
        }
        Some((arch, native)) => {
            if arch != native {
                let i = checked.archs.iter().position(|a| *a == arch).unwrap_or(0);
                f.add_arch(arch).map_err(|e| arch_err(i, e))?;
                f.remove_arch(native)
                    .map_err(|e| lib("remove the native arch", e))?;
            }
            f.set_act_badarch(libseccomp::ScmpAction::Trace(CHAIN_SENTINEL_DATA))
                .map_err(|e| lib("bad-arch action", e))?;
        }
    }
    if checked.rules.iter().filter(|r| r.action != default).count() > 32 {
        // runc: binary-tree layout only above 32 rules (libseccomp ≤ 2.5.4
        // misbehaves with optimize=2 and no rules).
        f.set_ctl_optimize(2).map_err(|e| lib("optimize", e))?;
    }
    let mut redundant = Vec::new();
    for (i, r) in checked.rules.iter().enumerate() {
        if r.action == default {
            // runc matchCall: libseccomp would refuse it with EACCES
            // (containerd#6203: old runc, clone3 ERRNO(38) degraded to EPERM).
            redundant.push(i);
            continue;
        }
        add_rule(&mut f, r, prefix)
            .map_err(|e| conflict(&checked.rules[..i], default, r, prefix).unwrap_or(e))?;
    }
    let fallback_safe = if runc || !denies(default) {
        Vec::new()
    } else {
        add_fallback_safe(&mut f, &checked.rules, prefix)?
    };
    let body = export(&f).map_err(|e| SpecError::new(field, e))?;
    Ok(RuleProgram {
        body,
        redundant,
        fallback_safe,
    })
}

/// seccomp(2) flags from `flags` (docs/seccomp.md): LOG and SPEC_ALLOW
/// pass through, TSYNC is dropped (init is single-threaded; TSYNC with
/// NEW_LISTENER would be EINVAL), NEW_LISTENER iff a rule notifies, and
/// WAIT_KILLABLE_RECV only with it (check() refused it otherwise).
fn filter_flags(checked: &Checked) -> u32 {
    let fl = checked.flags;
    let mut flags = 0;
    if fl.log {
        flags |= FLAG_LOG;
    }
    if fl.spec_allow {
        flags |= FLAG_SPEC_ALLOW;
    }
    if checked.notify {
        flags |= FLAG_NEW_LISTENER;
        if fl.wait_killable_recv {
            flags |= FLAG_WAIT_KILLABLE_RECV;
        }
    }
    flags
}

/// A default that refuses the call (so an ENOSYS instead changes the outcome).
fn denies(default: Action) -> bool {
    match default {
        Action::Errno(e) => e as i32 != libc::ENOSYS,
        Action::KillThread | Action::KillProcess | Action::Trap => true,
        Action::Allow | Action::Log | Action::Trace(_) | Action::Notify => false,
    }
}

/// docs/seccomp.md: clone3's flags live in memory seccomp cannot read, so an
/// allowed clone3 bypasses the `clone` flag rule. Decide by context.
fn decide_clone3(rules: &mut [Rule], ctx: &Context, runc: bool, default: Action) -> Clone3 {
    if default.is_permissive() {
        // A denylist profile: nothing here is meant to confine namespaces.
        return Clone3::AsProfile;
    }
    let allows = |r: &Rule| {
        r.name == "clone3" && matches!(r.action, Action::Allow | Action::Log) && r.conds.is_empty()
    };
    if !rules.iter().any(allows) {
        return Clone3::NotAllowed;
    }
    if has_sys_admin(ctx) {
        return Clone3::AllowedSysAdmin;
    }
    // Before the runc check on purpose: the annotation asks for runc's
    // verdicts, and clone3 is allowed either way; the guard is not a
    // verdict but protects the host, so it stays on (docs/seccomp.md).
    if ctx.own_userns {
        return Clone3::AllowedWithGuard;
    }
    if runc {
        return Clone3::AsProfile;
    }
    for r in rules.iter_mut().filter(|r| allows(r)) {
        r.action = Action::Errno(libc::ENOSYS as u16);
    }
    Clone3::Enosys
}

/// libseccomp refuses a rule whose syscall and argument conditions equal an
/// earlier rule's but whose action differs (EEXIST, "Failure regarding the
/// existence of argument"). Name the earlier rule instead.
fn conflict(earlier: &[Rule], default: Action, r: &Rule, prefix: &str) -> Option<SpecError> {
    let groups = r.cond_groups();
    let first = earlier.iter().find(|o| {
        o.name == r.name
            && o.action != default
            && o.action != r.action
            && o.cond_groups().iter().any(|g| groups.contains(g))
    })?;
    let conds = if r.conds.is_empty() {
        "no argument conditions".to_string()
    } else {
        let c: Vec<String> = r.conds.iter().map(|c| c.to_string()).collect();
        format!("the same argument conditions ({})", c.join(", "))
    };
    Some(SpecError::new(
        r.field(prefix),
        format!(
            "{} for {:?} conflicts with the earlier rule {} ({} for {:?}): same syscall, {conds}, \
             different actions; remove or change one of them",
            r.action,
            r.name,
            first.field(prefix),
            first.action,
            first.name
        ),
    ))
}

fn add_rule(f: &mut ScmpFilterContext, r: &Rule, prefix: &str) -> Result<(), SpecError> {
    let nr = ScmpSyscall::from_raw_syscall(r.nr.expect("check() rejects unknown names"));
    let action = r.action.to_scmp();
    let err = |e: libseccomp::error::SeccompError| {
        SpecError::new(
            r.field(prefix),
            format!("adding {} rule for {:?}: {e}", r.action, r.name),
        )
    };
    if r.conds.is_empty() {
        return f.add_rule(action, nr).map(|_| ()).map_err(err);
    }
    for group in r.cond_groups() {
        let cmps: Vec<_> = group.iter().map(|c| c.to_scmp()).collect();
        f.add_rule_conditional(action, nr, &cmps).map_err(err)?;
    }
    Ok(())
}

/// docs/seccomp.md: every table syscall the profile never names gets ENOSYS,
/// so the caller's fallback runs instead of failing on the default errno.
fn add_fallback_safe(
    f: &mut ScmpFilterContext,
    rules: &[Rule],
    prefix: &str,
) -> Result<Vec<&'static str>, SpecError> {
    let mut added = Vec::new();
    for e in enosys::FALLBACK_SAFE {
        if rules.iter().any(|r| r.name == e.name) {
            continue;
        }
        // Unknown to this libseccomp (mseal, listmount… on 2.5.4): numbered
        // above every known syscall, so the stub already returns ENOSYS.
        let Ok(nr) = ScmpSyscall::from_name(e.name) else {
            continue;
        };
        f.add_rule(libseccomp::ScmpAction::Errno(libc::ENOSYS), nr)
            .map_err(|err| {
                SpecError::new(
                    prefix.trim_end_matches('.'),
                    format!("adding fallback-safe ENOSYS rule for {:?}: {err}", e.name),
                )
            })?;
        added.push(e.name);
    }
    Ok(added)
}

/// `seccomp_export_bpf` into a memfd and read it back. (libseccomp 2.5.4
/// has no `seccomp_export_bpf_mem`; that arrived in 2.6.)
fn export(f: &ScmpFilterContext) -> Result<Vec<Insn>, String> {
    // SAFETY: memfd_create with a NUL-terminated name and valid flags; the
    // returned fd is owned by us from here on.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "memfd_create for the BPF export: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.export_bpf(&file)
        .map_err(|e| format!("libseccomp: exporting BPF: {e}"))?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| format!("reading the exported BPF back: {e}"))?;
    bpf::parse(&bytes)
}

/// One line for `berth plan`.
fn summary(b: &Built) -> String {
    let arches: Vec<&str> = b
        .archs
        .iter()
        .map(|a| enosys::arch_info(*a).oci.trim_start_matches("SCMP_ARCH_"))
        .collect();
    let maxima: Vec<String> = b
        .maxima
        .iter()
        .map(|m| {
            format!(
                "{}>{}",
                enosys::arch_info(m.arch)
                    .oci
                    .trim_start_matches("SCMP_ARCH_"),
                m.max & !enosys::X32_SYSCALL_BIT
            )
        })
        .collect();
    let mut s = format!(
        "seccomp: default {}, arches {}, {} rules ({} redundant), {} BPF insns",
        b.default,
        arches.join("/"),
        b.checked.rules.len(),
        b.redundant.len(),
        b.program.insns.len()
    );
    if maxima.is_empty() {
        s.push_str("; no ENOSYS stub (permissive default)");
    } else {
        s.push_str(&format!("; ENOSYS stub {}", maxima.join(" ")));
    }
    if b.runc_mode {
        s.push_str("; runc mode (annotation)");
    } else if !b.fallback_safe.is_empty() {
        s.push_str(&format!(
            "; fallback-safe ENOSYS: {}",
            b.fallback_safe.len()
        ));
    }
    s.push_str(match b.clone3 {
        Clone3::NotAllowed => "; clone3 not allowed",
        Clone3::AllowedWithGuard => "; clone3 allowed (userns guard: max_user_namespaces=0)",
        Clone3::AllowedSysAdmin => "; clone3 allowed (CAP_SYS_ADMIN)",
        Clone3::Enosys => "; clone3 -> ENOSYS (host userns, no CAP_SYS_ADMIN)",
        Clone3::AsProfile => "; clone3 as the profile says (runc mode or permissive default)",
    });
    let mut fl = Vec::new();
    for (bit, name) in [
        (FLAG_LOG, "LOG"),
        (FLAG_SPEC_ALLOW, "SPEC_ALLOW"),
        (FLAG_NEW_LISTENER, "NEW_LISTENER"),
        (FLAG_WAIT_KILLABLE_RECV, "WAIT_KILLABLE_RECV"),
    ] {
        if b.program.flags & bit != 0 {
            fl.push(name);
        }
    }
    if !fl.is_empty() {
        s.push_str(&format!("; flags {}", fl.join("|")));
    }
    s
}

#[cfg(test)]
mod chain_tests {
    use super::*;

    /// The chained per-arch programs give every (arch, nr, args) the verdict
    /// of libseccomp's own one-context multi-arch program.
    #[test]
    fn chained_programs_match_one_context() {
        let names = [
            "read",
            "write",
            "openat",
            "close",
            "exit_group",
            "getppid",
            "futex",
            "mmap",
            "socket",
            "connect",
            "sendto",
            "recvfrom",
            "bind",
            "listen",
            "accept4",
            "socketpair",
            "getsockopt",
            "setsockopt",
            "shmget",
            "shmat",
            "semop",
            "msgsnd",
            "clone",
            "execve",
            "wait4",
            "kill",
            "uname",
            "fcntl",
            "flock",
            "fsync",
            "getdents64",
            "getcwd",
            "chdir",
            "rename",
            "mkdir",
            "rmdir",
            "unlink",
            "readlink",
            "chmod",
        ];
        let p: spec::Seccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": names.to_vec(), "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }))
        .unwrap();
        let (checked, probs) = check(&p, "");
        assert!(probs.iter().all(|p| !p.fatal));
        let default = checked.default.unwrap();
        let chained = libseccomp_program(&checked, default, false, "")
            .unwrap()
            .body;
        let single = arch_program(&checked, default, false, "", None)
            .unwrap()
            .body;
        assert_ne!(chained, single, "three arches must take the chained path");
        let arches = [0xc000_003e_u32, 0x4000_0003, 0x4000_0028, 0xc000_00b7];
        let mut compared = 0;
        for arch in arches {
            for base in [0u32, 0x4000_0000] {
                for nr in 0..600 {
                    for arg0 in [0u64, 8, 0xffff_ffff, 3] {
                        let data = bpf::SeccompData {
                            nr: base | nr,
                            arch,
                            args: [arg0, 0, 0, 0, 0, 0],
                            ..Default::default()
                        };
                        let a = bpf::run(&chained, &data).unwrap().ret;
                        let b = bpf::run(&single, &data).unwrap().ret;
                        assert_eq!(a, b, "arch {arch:#x} nr {:#x} arg0 {arg0:#x}", base | nr);
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 4 * 2 * 600 * 4);
        // Exactly one bad-arch verdict is left, and no sentinel.
        assert!(!chained
            .iter()
            .any(|i| i.code == bpf::BPF_RET | bpf::BPF_K && i.k == CHAIN_SENTINEL));
    }
}
