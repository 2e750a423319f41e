//! Seccomp: OCI `linux.seccomp` → a cBPF program, compiled in the runtime
//! parent (libseccomp), with berth's ENOSYS stub prepended. The child only
//! loads the bytes ([`Program::load`]).
//!
//! Map of the module:
//! - [`profile`]: checking the OCI object field by field; Docker-format profiles.
//! - [`mod@compile`]: libseccomp → cBPF, the clone3 decision (docs/seccomp.md),
//!   fallback-safe denial (A.3), flags.
//! - [`enosys`]: the ENOSYS stub (runc's algorithm) and the fallback-safe table.
//! - [`bpf`]: instructions, disassembler, interpreter.
//! - [`cache`]: compiled programs by profile hash (libseccomp takes ~20 ms).
//! - [`notify`]: handing the listener fd to the agent at `listenerPath`.
//! - [`explain`], [`lint`], [`cli`]: the `berth seccomp …` tools.
//!
//! For the runtime: [`compile()`] in the parent before clone (set
//! [`Context::cache_dir`]); in init, [`guard_user_namespaces`] when
//! [`Program::guard_user_namespaces`] is set, then [`Program::load`].
//!
//! The why of every decision is in `docs/seccomp.md`; the default profile's
//! rule groups are explained in `profiles/README.md`.

pub mod bpf;
pub mod cache;
pub mod cli;
pub mod compile;
pub mod enosys;
pub mod explain;
pub mod lint;
pub mod notify;
pub mod profile;

pub use compile::{Clone3, ENOSYS_ANNOTATION};
pub use profile::load_profile;

use crate::spec;
use std::collections::BTreeMap;
use std::os::fd::RawFd;

/// One classic-BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// What the container looks like, as far as the filter cares.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The container's bounding capability set (`CAP_SYS_ADMIN`, …).
    pub caps: Vec<String>,
    /// True when the container gets its own (new) user namespace.
    pub own_userns: bool,
    /// The bundle's annotations (`run.berth.seccomp.enosys: "runc"`).
    pub annotations: BTreeMap<String, String>,
    /// Architecture for Docker `includes.arches`/`archMap` (OCI name,
    /// e.g. `SCMP_ARCH_X86_64`); `None` = the host's.
    pub arch: Option<String>,
    /// Kernel "major.minor" for Docker `minKernel`; `None` = the running one.
    pub kernel: Option<(u32, u32)>,
    /// Where to cache compiled programs by profile hash (e.g.
    /// `<root>/seccomp-cache`); `None` = always compile. See [`cache`].
    pub cache_dir: Option<std::path::PathBuf>,
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone)]
pub struct Program {
    /// berth's ENOSYS stub followed by libseccomp's program.
    pub insns: Vec<Insn>,
    /// How many of `insns` are the stub (0: no stub).
    pub stub_len: usize,
    /// Flags for seccomp(SECCOMP_SET_MODE_FILTER, flags, …).
    pub flags: u32,
    /// Flags berth set on its own (SPEC_ALLOW for an absent `flags`, as
    /// runc): dropped if the kernel rejects them with EINVAL.
    pub optional_flags: u32,
    /// Some NOTIFY rule exists: load with NEW_LISTENER and hand the fd to the agent.
    pub notify: bool,
    pub listener_path: Option<std::path::PathBuf>,
    pub listener_metadata: Option<String>,
    /// Init must set /proc/sys/user/max_user_namespaces to 0 inside the
    /// container's user namespace (docs/seccomp.md).
    pub guard_user_namespaces: bool,
    /// One line for `berth plan`.
    pub summary: String,
}

/// Syscalls container init may make after it loaded the filter and before
/// the program runs (caps, user switch, cwd, fd cleanup, the sync socket,
/// exec.fifo, signal reset, execve). A profile that kills one of them kills
/// init before it can say anything; [`Program::kills_init_needs`] names them.
pub const INIT_SYSCALLS: &[(&str, libc::c_long)] = &[
    ("execve", libc::SYS_execve),
    ("prctl", libc::SYS_prctl),
    ("capset", libc::SYS_capset),
    ("capget", libc::SYS_capget),
    ("setgroups", libc::SYS_setgroups),
    ("setresuid", libc::SYS_setresuid),
    ("setresgid", libc::SYS_setresgid),
    ("umask", libc::SYS_umask),
    ("chdir", libc::SYS_chdir),
    ("getcwd", libc::SYS_getcwd),
    ("access", libc::SYS_access),
    ("faccessat", libc::SYS_faccessat),
    ("newfstatat", libc::SYS_newfstatat),
    ("statx", libc::SYS_statx),
    ("openat", libc::SYS_openat),
    ("close", libc::SYS_close),
    ("close_range", libc::SYS_close_range),
    ("fcntl", libc::SYS_fcntl),
    ("getdents64", libc::SYS_getdents64),
    ("read", libc::SYS_read),
    ("write", libc::SYS_write),
    ("rt_sigaction", libc::SYS_rt_sigaction),
    ("rt_sigprocmask", libc::SYS_rt_sigprocmask),
    ("exit_group", libc::SYS_exit_group),
];

impl Program {
    /// What the filter answers for a native-ABI call (berth's cBPF
    /// interpreter on the loaded bytes: the kernel's answer).
    pub fn verdict(&self, nr: libc::c_long, args: [u64; 6]) -> bpf::Verdict {
        let native = enosys::arch_info(libseccomp::ScmpArch::native()).audit;
        let data = bpf::SeccompData {
            nr: nr as u32,
            arch: native,
            instruction_pointer: 0,
            args,
        };
        match bpf::run(&self.insns, &data) {
            Ok(r) => bpf::Verdict::from_ret(r.ret),
            Err(_) => bpf::Verdict::KillProcess,
        }
    }

    /// The [`INIT_SYSCALLS`] this filter kills or traps (with zero
    /// arguments), as `name (SCMP_ACT_…)`.
    pub fn kills_init_needs(&self) -> Vec<String> {
        INIT_SYSCALLS
            .iter()
            .filter_map(|(name, nr)| {
                let v = self.verdict(*nr, [0; 6]);
                matches!(
                    v,
                    bpf::Verdict::KillThread | bpf::Verdict::KillProcess | bpf::Verdict::Trap(_)
                )
                .then(|| format!("{name} ({})", action_name(v)))
            })
            .collect()
    }
}

/// The profile action that produces a verdict, in the profile's spelling.
pub fn action_name(v: bpf::Verdict) -> String {
    match v {
        bpf::Verdict::KillProcess => "SCMP_ACT_KILL_PROCESS".into(),
        bpf::Verdict::KillThread => "SCMP_ACT_KILL".into(),
        bpf::Verdict::Trap(_) => "SCMP_ACT_TRAP".into(),
        bpf::Verdict::Errno(e) => format!("SCMP_ACT_ERRNO, {}", bpf::errno_name(e as i32)),
        bpf::Verdict::Notify => "SCMP_ACT_NOTIFY".into(),
        bpf::Verdict::Trace(_) => "SCMP_ACT_TRACE".into(),
        bpf::Verdict::Log => "SCMP_ACT_LOG".into(),
        bpf::Verdict::Allow => "SCMP_ACT_ALLOW".into(),
    }
}

/// Compile errors name the profile field: `linux.seccomp.syscalls[3].action: …`.
pub type Error = crate::spec::SpecError;

/// Compile `linux.seccomp` for a container. `Ok(None)` means no filter
/// (runc: empty defaultAction and no syscalls disables seccomp).
/// Uses the cache in `ctx.cache_dir` when set.
pub fn compile(profile: &spec::Seccomp, ctx: &Context) -> Result<Option<Program>, Error> {
    match &ctx.cache_dir {
        Some(dir) => cache::compile_cached(profile, ctx, dir),
        None => Ok(compile::build(profile, ctx, "linux.seccomp.")?.map(|b| b.program)),
    }
}

/// What `create` (and `exec`) log as warnings about a profile, in runc's log
/// format: names skipped because the installed libseccomp is too old for
/// them, and an empty profile (`linux.seccomp: {}`), which disables seccomp
/// as in runc. `seccomp lint` reports these and more; these are the ones that
/// change what the container gets without failing it.
pub fn create_warnings(p: &spec::Seccomp) -> Vec<String> {
    if p.default_action.is_empty() && p.syscalls.is_empty() {
        return vec![
            "linux.seccomp: no defaultAction and no syscalls: seccomp is disabled for this \
             container (as runc does)"
                .into(),
        ];
    }
    let (_, probs) = profile::check(p, "linux.seccomp.");
    probs
        .into_iter()
        .filter(|p| !p.fatal)
        .map(|p| format!("{}: {}", p.field, p.msg))
        .collect()
}

/// berth's default profile (`profiles/default.json`, Docker format) as
/// written into config.json by `berth spec --seccomp default`: resolved for runc's default
/// capability set on this host. Containers with other capabilities should
/// use [`default_profile_for`].
pub fn default_profile() -> spec::Seccomp {
    default_profile_for(&Context {
        caps: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
}

/// The default profile, with its capability/arch/kernel conditions resolved for `ctx`.
pub fn default_profile_for(ctx: &Context) -> spec::Seccomp {
    profile::parse_profile(DEFAULT_PROFILE_JSON, ctx)
        .expect("profiles/default.json is valid (checked by tests)")
}

/// The text of `profiles/default.json`.
pub const DEFAULT_PROFILE_JSON: &str = include_str!("../../../profiles/default.json");

impl Program {
    /// Load the filter into the calling thread. Must not allocate: between
    /// here and the hand-off of the listener fd, a NOTIFY rule on mmap/brk
    /// could deadlock us. Returns the listener fd when `notify` is set.
    ///
    /// Like runc: `prctl(PR_SET_SECCOMP)` when there are no flags, else
    /// `seccomp(SECCOMP_SET_MODE_FILTER, flags)`. Without no_new_privs the
    /// caller needs CAP_SYS_ADMIN (else EACCES).
    pub fn load(&self) -> std::io::Result<Option<RawFd>> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as libc::c_ushort,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        let mut flags = self.flags;
        loop {
            let ret = if flags == 0 {
                // SAFETY: prog points at `len` valid sock_filter-layout
                // instructions (Insn is repr(C) with the same fields) that
                // outlive the call; the kernel copies them.
                unsafe {
                    libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        &prog as *const libc::sock_fprog,
                        0,
                        0,
                    ) as libc::c_long
                }
            } else {
                // SAFETY: as above; seccomp(2) takes (op, flags, uargs).
                unsafe {
                    libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        flags as libc::c_ulong,
                        &prog as *const libc::sock_fprog,
                    )
                }
            };
            if ret >= 0 {
                return Ok(self.notify.then_some(ret as RawFd));
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) && flags & self.optional_flags != 0 {
                // An older kernel without SPEC_ALLOW: runc only sets it "if supported".
                flags &= !self.optional_flags;
                continue;
            }
            if err.raw_os_error() == Some(libc::EINVAL)
                && flags & compile::FLAG_WAIT_KILLABLE_RECV != 0
            {
                // Asked for by the profile, so not optional: say why it failed.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "linux.seccomp.flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs Linux >= 5.19 (this kernel refuses it: EINVAL)",
                ));
            }
            return Err(err);
        }
    }

    /// The program as the kernel reads it (host-endian `struct sock_filter`s).
    pub fn to_bytes(&self) -> Vec<u8> {
        bpf::to_bytes(&self.insns)
    }
}

/// docs/seccomp.md: with clone3 allowed, seccomp cannot stop
/// `clone3(CLONE_NEWUSER)`. Init calls this inside the container's own user
/// namespace, while it still has CAP_SYS_RESOURCE there (before dropping
/// capabilities), when [`Program::guard_user_namespaces`] is set: nested
/// user namespaces then fail with ENOSPC; the host's limit is untouched
/// (the sysctl is per user namespace). Allocation-free, for init.
pub fn guard_user_namespaces() -> std::io::Result<()> {
    const PATH: &std::ffi::CStr = c"/proc/sys/user/max_user_namespaces";
    // SAFETY: open with a NUL-terminated path; the fd is closed below.
    let fd = unsafe { libc::open(PATH.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: writing 2 bytes from a static buffer to our fd.
    let n = unsafe { libc::write(fd, b"0\n".as_ptr().cast(), 2) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
    if n == 2 {
        Ok(())
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests;
