//! `berth seccomp compile | explain | lint | convert`: the tools that let a
//! learner look inside a profile. Every command takes the container context
//! that changes the result (capabilities, user namespace, runc mode).

use super::compile::{self, Built};
use super::enosys::{self, arch_by_name, X32_SYSCALL_BIT};
use super::explain::{explain_profile, name_of, parse_u64};
use super::{bpf, lint, profile, Context};
use anyhow::{anyhow, bail, Context as _};
use libseccomp::ScmpArch;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The container a profile is evaluated for.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CtxArgs {
    /// A capability in the container's bounding set (repeatable), e.g. CAP_SYS_ADMIN.
    #[arg(long = "cap", value_name = "CAP")]
    pub caps: Vec<String>,
    /// The container gets its own user namespace.
    #[arg(long)]
    pub userns: bool,
    /// runc's exact verdicts (annotation run.berth.seccomp.enosys=runc).
    #[arg(long)]
    pub runc: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum SeccompCmd {
    /// Compile a profile (OCI or Docker format) to the cBPF berth loads.
    Compile {
        profile: PathBuf,
        /// Architecture the profile is resolved for (Docker archMap/includes), e.g. SCMP_ARCH_X86_64.
        #[arg(long)]
        arch: Option<String>,
        /// Print the annotated disassembly.
        #[arg(long, conflicts_with = "out")]
        disasm: bool,
        /// Write the raw program (struct sock_filter[]) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        ctx: CtxArgs,
    },
    /// Say what the filter does with one syscall, and which part decided it.
    Explain {
        profile: PathBuf,
        /// A syscall name (clone3) or number (435, 0x1b3).
        syscall: String,
        /// Up to six argument values (decimal, 0x hex, or negative).
        args: Vec<String>,
        /// ABI of the call: SCMP_ARCH_X86_64 (default: native), SCMP_ARCH_X86, SCMP_ARCH_X32, …
        #[arg(long)]
        arch: Option<String>,
        /// One JSON object instead of text (action, errno, decided_by, runc_ret …).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ctx: CtxArgs,
    },
    /// Warn about a profile (never fatal: exit 0 unless it cannot be read).
    Lint {
        profile: PathBuf,
        #[command(flatten)]
        ctx: CtxArgs,
    },
    /// Convert a Docker-format profile to an OCI linux.seccomp object for one container.
    Convert {
        /// Input format (only "docker").
        #[arg(long, default_value = "docker")]
        from: String,
        input: PathBuf,
        /// Output file ("-" for stdout).
        output: PathBuf,
        /// Architecture to resolve archMap/includes for (default: native).
        #[arg(long)]
        arch: Option<String>,
        #[command(flatten)]
        ctx: CtxArgs,
    },
}

fn context(c: &CtxArgs, arch: Option<&str>) -> anyhow::Result<Context> {
    let mut ctx = Context {
        caps: c.caps.iter().map(|s| normalize_cap(s)).collect(),
        own_userns: c.userns,
        ..Default::default()
    };
    if c.runc {
        ctx.annotations
            .insert(compile::ENOSYS_ANNOTATION.into(), "runc".into());
    }
    if let Some(a) = arch {
        let info = arch_by_name(&normalize_arch(a))
            .ok_or_else(|| anyhow!("--arch: unknown architecture {a:?}"))?;
        ctx.arch = Some(info.oci.to_string());
    }
    Ok(ctx)
}

fn normalize_cap(s: &str) -> String {
    let up = s.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn normalize_arch(s: &str) -> String {
    let up = s.to_ascii_uppercase();
    if up.starts_with("SCMP_ARCH_") {
        return up;
    }
    // Accept Docker/Go spellings too (amd64, x86, arm64 …).
    enosys::ARCHES
        .iter()
        .find(|a| a.docker == s)
        .map(|a| a.oci.to_string())
        .unwrap_or_else(|| format!("SCMP_ARCH_{up}"))
}

fn build(path: &Path, ctx: &Context) -> anyhow::Result<Built> {
    let p = profile::load_profile(path, ctx)?;
    compile::build(&p, ctx, "")
        .map_err(|e| anyhow!("{}: {}: {}", path.display(), e.field, e.msg))?
        .ok_or_else(|| {
            anyhow!(
                "{}: the profile disables seccomp (no defaultAction, no syscalls)",
                path.display()
            )
        })
}

/// Run one `berth seccomp` command; returns the exit code.
pub fn run(cmd: SeccompCmd) -> anyhow::Result<i32> {
    let mut stdout = std::io::stdout().lock();
    match cmd {
        SeccompCmd::Compile {
            profile,
            arch,
            disasm,
            out,
            ctx,
        } => {
            let ctx = context(&ctx, arch.as_deref())?;
            let b = build(&profile, &ctx)?;
            if let Some(o) = out {
                std::fs::write(&o, b.program.to_bytes())
                    .with_context(|| format!("writing {}", o.display()))?;
            }
            writeln!(stdout, "{}", b.program.summary)?;
            if disasm {
                write!(stdout, "{}", disassemble(&b))?;
            }
            Ok(0)
        }
        SeccompCmd::Explain {
            profile,
            syscall,
            args,
            arch,
            json,
            ctx,
        } => {
            let c = context(&ctx, None)?;
            let p = profile::load_profile(&profile, &c)?;
            let abi = match &arch {
                None => ScmpArch::native(),
                Some(a) => {
                    arch_by_name(&normalize_arch(a))
                        .ok_or_else(|| anyhow!("--arch: unknown architecture {a:?}"))?
                        .scmp
                }
            };
            if args.len() > 6 {
                bail!("a syscall has at most 6 arguments, got {}", args.len());
            }
            let mut a = [0u64; 6];
            for (i, s) in args.iter().enumerate() {
                a[i] = parse_u64(s).map_err(|e| anyhow!("argument {i} {s:?}: {e}"))?;
            }
            let text = explain_profile(&p, &c, abi, &syscall, a, json)
                .map_err(|e| anyhow!("{}: {e}", profile.display()))?;
            write!(stdout, "{text}")?;
            Ok(0)
        }
        SeccompCmd::Lint { profile, ctx } => {
            let c = context(&ctx, None)?;
            let p = profile::load_profile(&profile, &c)?;
            let mut warnings = lint::lint(&p, &c);
            // A Docker-format profile: duplicates are found in the source
            // (resolving merges them away), with the source's field paths.
            let text = std::fs::read_to_string(&profile)?;
            let v: serde_json::Value = serde_json::from_str(&text)?;
            if profile::is_docker_format(&v) {
                let d: profile::DockerProfile = serde_json::from_value(v)?;
                let mut dups = lint::docker_duplicates(&d);
                // Both kinds of message start with the quoted name.
                let name = |m: &str| m.split(' ').next().unwrap_or_default().to_string();
                warnings.retain(|w| {
                    w.code != "duplicate" || !dups.iter().any(|d| name(&d.msg) == name(&w.msg))
                });
                dups.append(&mut warnings);
                warnings = dups;
            }
            for w in &warnings {
                writeln!(stdout, "{}: {w}", profile.display())?;
            }
            if warnings.is_empty() {
                writeln!(stdout, "{}: no warnings", profile.display())?;
            }
            Ok(0)
        }
        SeccompCmd::Convert {
            from,
            input,
            output,
            arch,
            ctx,
        } => {
            if from != "docker" {
                bail!("--from: only \"docker\" is supported, got {from:?}");
            }
            let c = context(&ctx, arch.as_deref())?;
            let p = profile::load_profile(&input, &c)?;
            let json = serde_json::to_string_pretty(&p)? + "\n";
            if output.as_os_str() == "-" {
                stdout.write_all(json.as_bytes())?;
            } else {
                std::fs::write(&output, json)
                    .with_context(|| format!("writing {}", output.display()))?;
            }
            Ok(0)
        }
    }
}

/// The annotated disassembly of a built filter: syscall names per arch, the
/// profile rule (or berth feature) each syscall comparison came from.
pub fn disassemble(b: &Built) -> String {
    let syscall_name = |audit: u32, nr: u32| {
        let arch = if audit == 0xC000_003E && nr & X32_SYSCALL_BIT != 0 {
            ScmpArch::X32
        } else {
            enosys::ARCHES.iter().find(|a| a.audit == audit)?.scmp
        };
        name_of(arch, nr)
    };
    let annotate = |audit: u32, nr: u32| {
        let name = syscall_name(audit, nr)?;
        let mut from: Vec<String> = b
            .checked
            .rules
            .iter()
            .enumerate()
            .filter(|(i, r)| r.name == name && !b.redundant.contains(i))
            .map(|(_, r)| format!("syscalls[{}] {}", r.entry, r.action))
            .collect();
        from.dedup();
        if b.fallback_safe.contains(&name.as_str()) {
            from.push("berth fallback-safe ENOSYS".into());
        }
        (!from.is_empty()).then(|| from.join(", "))
    };
    let section = |pc: usize| {
        if pc == 0 && b.program.stub_len > 0 {
            Some("berth ENOSYS stub (runc's algorithm): per arch, nr > highest named → ERRNO(ENOSYS); else jump to the program".to_string())
        } else if pc == b.program.stub_len {
            Some(format!(
                "libseccomp program, one per arch (a bad arch jumps to the next arch's; after the last → KILL_THREAD): arch check, then rules; default {}",
                b.default
            ))
        } else {
            None
        }
    };
    bpf::disassemble(&b.program.insns, &syscall_name, &annotate, &section)
}
