//! `berth seccomp explain`: what happens to one syscall, and which part of
//! the filter decided it. The verdict comes from running the compiled program
//! (stub + libseccomp bytes, exactly what the kernel gets) in berth's cBPF
//! interpreter; the attribution maps the returning instruction back to the
//! stub, a profile rule, fallback-safe denial, the default or the arch check.

use super::bpf::{self, SeccompData, Verdict};
use super::compile::{self, Built, Clone3};
use super::enosys::{self, arch_info, X32_SYSCALL_BIT};
use super::profile::Rule;
use super::{Context, Program};
use crate::spec;
use libseccomp::{ScmpArch, ScmpSyscall};

/// Which part of the filter produced the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    /// berth's/runc's ENOSYS stub: `nr > max` for this arch.
    Stub { max: u32 },
    /// berth's fallback-safe denial (docs/seccomp.md).
    FallbackSafe(&'static enosys::FallbackSafe),
    /// A profile rule: `syscalls[entry].names[name_index]`.
    Rule {
        entry: usize,
        name_index: usize,
        comment: Option<String>,
        /// The rule was rewritten by the clone3 context rule (A.4).
        clone3_rewritten: bool,
    },
    /// The default action (no rule matched).
    Default,
    /// The arch is not in the filter: libseccomp's BADARCH action (KILL_THREAD).
    BadArch,
}

/// The answer for one (arch, nr, args).
#[derive(Debug, Clone)]
pub struct Explanation {
    pub name: Option<String>,
    pub arch: ScmpArch,
    pub nr: u32,
    pub args: [u64; 6],
    pub ret: u32,
    pub verdict: Verdict,
    pub decided_by: DecidedBy,
    /// Instructions executed.
    pub steps: usize,
    /// Notes: rules that name the syscall but did not fire, and why.
    pub notes: Vec<String>,
}

/// The `seccomp_data` the kernel builds for (arch, nr, args).
pub fn data_for(arch: ScmpArch, nr: u32, args: [u64; 6]) -> SeccompData {
    SeccompData {
        nr,
        arch: arch_info(arch).audit,
        instruction_pointer: 0,
        args,
    }
}

/// Resolve a syscall given as a name or number for `arch` (x32 numbers carry
/// bit 30, as libseccomp numbers them and the kernel sees them).
pub fn resolve(arch: ScmpArch, syscall: &str) -> Result<u32, String> {
    if let Ok(n) = parse_u64(syscall) {
        let n = n as u32;
        return Ok(if arch == ScmpArch::X32 {
            n | X32_SYSCALL_BIT
        } else {
            n
        });
    }
    match ScmpSyscall::from_name_by_arch(syscall, arch) {
        Ok(s) if s.as_raw_syscall() >= 0 => Ok(s.as_raw_syscall() as u32),
        Ok(_) => Err(format!(
            "{syscall:?} has no number of its own on {} (multiplexed, e.g. via socketcall)",
            arch_info(arch).oci
        )),
        Err(_) => Err(format!("unknown syscall {syscall:?}")),
    }
}

/// Parse `42`, `0x2a` or `-1` (as u64).
pub fn parse_u64(s: &str) -> Result<u64, std::num::ParseIntError> {
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else if let Some(neg) = s.strip_prefix('-') {
        neg.parse::<u64>().map(|v| v.wrapping_neg())
    } else {
        s.parse()
    }
}

/// The name libseccomp gives `nr` on `arch`.
pub fn name_of(arch: ScmpArch, nr: u32) -> Option<String> {
    ScmpSyscall::from_raw_syscall(nr as i32)
        .get_name_by_arch(arch)
        .ok()
}

/// Explain (arch, nr, args) against a built filter.
pub fn explain(b: &Built, arch: ScmpArch, nr: u32, args: [u64; 6]) -> Result<Explanation, String> {
    let prog: &Program = &b.program;
    let run = bpf::run(&prog.insns, &data_for(arch, nr, args))?;
    let verdict = Verdict::from_ret(run.ret);
    let name = name_of(arch, nr);
    let mut notes = Vec::new();
    let named: Vec<(usize, &Rule)> = match &name {
        Some(n) => b
            .checked
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| &r.name == n)
            .collect(),
        None => Vec::new(),
    };
    // x32 shares AUDIT_ARCH_X86_64 with x86_64; bit 30 says which ABI it is.
    let abi = if arch_info(arch).audit == 0xC000_003E {
        if nr & X32_SYSCALL_BIT != 0 {
            ScmpArch::X32
        } else {
            ScmpArch::X8664
        }
    } else {
        arch
    };
    let in_filter = b
        .archs
        .iter()
        .any(|a| arch_info(*a).oci == arch_info(abi).oci);
    let decided_by = if run.ret_pc < prog.stub_len {
        let max = b
            .maxima
            .iter()
            .find(|m| arch_info(m.arch).oci == arch_info(abi).oci)
            .map(|m| m.max)
            .unwrap_or(0);
        DecidedBy::Stub { max }
    } else if !in_filter {
        DecidedBy::BadArch
    } else if let Some((_, r)) = named
        .iter()
        .find(|(i, r)| !b.redundant.contains(i) && r.action.ret() == run.ret && r.matches(&args))
    {
        DecidedBy::Rule {
            entry: r.entry,
            name_index: r.name_index,
            comment: r.comment.clone(),
            clone3_rewritten: r.name == "clone3" && b.clone3 == Clone3::Enosys,
        }
    } else if let Some(f) = name
        .as_deref()
        .filter(|n| b.fallback_safe.contains(n) && run.ret == enosys::RET_ENOSYS)
        .and_then(enosys::fallback_safe)
    {
        DecidedBy::FallbackSafe(f)
    } else {
        DecidedBy::Default
    };
    for (i, r) in &named {
        let field = r.field("");
        if b.redundant.contains(i) {
            notes.push(format!(
                "{field} ({}) equals the default action: skipped, as runc does",
                r.action
            ));
        } else if !r.matches(&args) {
            let conds: Vec<String> = r.conds.iter().map(|c| c.to_string()).collect();
            notes.push(format!(
                "{field} ({}) did not match: needs {}",
                r.action,
                conds.join(if r.cond_groups().len() > 1 {
                    " OR "
                } else {
                    " AND "
                })
            ));
        }
    }
    Ok(Explanation {
        name,
        arch,
        nr,
        args,
        ret: run.ret,
        verdict,
        decided_by,
        steps: run.trace.len(),
        notes,
    })
}

impl Explanation {
    /// Human-readable report.
    pub fn render(&self, b: &Built) -> String {
        let arch = arch_info(self.arch).oci.trim_start_matches("SCMP_ARCH_");
        let shown_nr = self.nr & !X32_SYSCALL_BIT;
        let args: Vec<String> = self.args.iter().map(|a| format!("{a:#x}")).collect();
        let mut s = format!(
            "syscall:    {} ({arch} nr {shown_nr}{}) args [{}]\n",
            self.name.as_deref().unwrap_or("<no name in libseccomp>"),
            if self.nr & X32_SYSCALL_BIT != 0 {
                " | x32 bit"
            } else {
                ""
            },
            args.join(", ")
        );
        s += &format!("verdict:    {}\n", self.verdict);
        let why = match &self.decided_by {
            DecidedBy::Stub { max } => format!(
                "the ENOSYS stub: {shown_nr} is above {}, the highest syscall this profile names on {arch} \
                 (runc's algorithm), so the caller sees ENOSYS and can fall back",
                max & !X32_SYSCALL_BIT
            ),
            DecidedBy::FallbackSafe(f) => format!(
                "berth's fallback-safe denial: {} (Linux {}) is not named by the profile and the default \
                 denies, so it gets ENOSYS instead of {}. Probed by: {}",
                f.name, f.since, b.default, f.probed_by
            ),
            DecidedBy::Rule {
                entry,
                name_index,
                comment,
                clone3_rewritten,
            } => {
                let mut t = format!("rule syscalls[{entry}].names[{name_index}]");
                if let Some(c) = comment {
                    t += &format!(" — {c}");
                }
                if *clone3_rewritten {
                    t += "\n            (the profile allows clone3, but this container shares the host user \
                          namespace and lacks CAP_SYS_ADMIN: berth turned the allow into ENOSYS so glibc falls \
                          back to clone(2), whose flag rule applies — docs/seccomp.md)";
                }
                t
            }
            DecidedBy::Default => format!("the default action {} (no rule fired)", b.default),
            DecidedBy::BadArch => {
                "the architecture check: this ABI is not in the filter, libseccomp's bad-arch action \
                 (KILL_THREAD) applies"
                    .to_string()
            }
        };
        s += &format!("decided by: {why}\n");
        for n in &self.notes {
            s += &format!("note:       {n}\n");
        }
        s += &format!(
            "path:       {} BPF instructions executed (stub: {}, program: {})\n",
            self.steps,
            b.program.stub_len,
            b.program.insns.len()
        );
        s
    }
}

/// Compile `p` for `ctx` and explain `syscall` (name or number) on `arch`;
/// also report runc's verdict when it differs. `json`: one machine-readable
/// object instead of text (for tests that compare with the kernel).
pub fn explain_profile(
    p: &spec::Seccomp,
    ctx: &Context,
    arch: ScmpArch,
    syscall: &str,
    args: [u64; 6],
    json: bool,
) -> Result<String, String> {
    let built = compile::build(p, ctx, "")
        .map_err(|e| format!("{}: {}", e.field, e.msg))?
        .ok_or(
            "the profile disables seccomp (no defaultAction, no syscalls): everything is allowed",
        )?;
    let nr = resolve(arch, syscall)?;
    let ex = explain(&built, arch, nr, args)?;
    let runc = if built.runc_mode {
        None
    } else {
        let mut rctx = ctx.clone();
        rctx.annotations
            .insert(compile::ENOSYS_ANNOTATION.into(), "runc".into());
        compile::build(p, &rctx, "")
            .ok()
            .flatten()
            .and_then(|rb| explain(&rb, arch, nr, args).ok())
    };
    // The user-namespace guard is not a verdict: it stays on with the runc
    // annotation too (it protects the host; runc's verdict for clone3 is
    // the same allow). Say when it applies.
    let guard = built.program.guard_user_namespaces;
    if json {
        let mut v = ex.to_json(runc.as_ref());
        v["userns_guard"] = guard.into();
        return Ok(v.to_string() + "\n");
    }
    let mut out = ex.render(&built);
    if guard && ex.name.as_deref() == Some("clone3") {
        out += "guard:      user-namespace guard on: init sets max_user_namespaces=0 inside the \
                container's user namespace, so clone3(CLONE_NEWUSER) fails with ENOSPC \
                (kept with the runc annotation: it protects the host)\n";
    }
    if let Some(rx) = runc.filter(|rx| rx.ret != ex.ret) {
        out += &format!(
            "runc:       {} (with annotation {}: \"runc\")\n",
            rx.verdict,
            compile::ENOSYS_ANNOTATION
        );
    }
    Ok(out)
}

impl Explanation {
    /// `{"syscall","arch","nr","args","ret","action","errno","decided_by","runc_ret"}`:
    /// `errno` is set for ERRNO verdicts; `decided_by` is one of `rule`,
    /// `stub`, `fallback-safe`, `default`, `bad-arch`.
    pub fn to_json(&self, runc: Option<&Explanation>) -> serde_json::Value {
        let (action, errno) = match self.verdict {
            Verdict::KillProcess => ("kill_process", None),
            Verdict::KillThread => ("kill_thread", None),
            Verdict::Trap(_) => ("trap", None),
            Verdict::Errno(e) => ("errno", Some(e)),
            Verdict::Notify => ("notify", None),
            Verdict::Trace(_) => ("trace", None),
            Verdict::Log => ("log", None),
            Verdict::Allow => ("allow", None),
        };
        let decided_by = match &self.decided_by {
            DecidedBy::Stub { .. } => "stub".to_string(),
            DecidedBy::FallbackSafe(_) => "fallback-safe".to_string(),
            DecidedBy::Rule {
                entry, name_index, ..
            } => format!("rule syscalls[{entry}].names[{name_index}]"),
            DecidedBy::Default => "default".to_string(),
            DecidedBy::BadArch => "bad-arch".to_string(),
        };
        serde_json::json!({
            "syscall": self.name,
            "arch": arch_info(self.arch).oci,
            "nr": self.nr,
            "args": self.args,
            "ret": self.ret,
            "action": action,
            "errno": errno,
            "decided_by": decided_by,
            "runc_ret": runc.map(|r| r.ret),
        })
    }
}
