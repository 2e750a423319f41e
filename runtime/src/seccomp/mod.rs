//! Seccomp: OCI `linux.seccomp` → a cBPF program, compiled in the runtime
//! parent (libseccomp), with berth's ENOSYS stub prepended. The child only
//! loads the bytes ([`Program::load`]).
//!
//! See `profiles/README.md` and SECCOMP decisions in `docs/seccomp.md`.

pub mod cli;

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
}

/// A compiled filter, ready to load.
#[derive(Debug, Clone)]
pub struct Program {
    pub insns: Vec<Insn>,
    /// Flags for seccomp(SECCOMP_SET_MODE_FILTER, flags, …).
    pub flags: u32,
    /// Some NOTIFY rule exists: load with NEW_LISTENER and hand the fd to the agent.
    pub notify: bool,
    pub listener_path: Option<std::path::PathBuf>,
    pub listener_metadata: Option<String>,
    /// Init must set /proc/sys/user/max_user_namespaces to 0 inside the
    /// container's user namespace (SECCOMP.md A.4).
    pub guard_user_namespaces: bool,
    /// One line for `berth plan`.
    pub summary: String,
}

/// Compile errors name the profile field: `linux.seccomp.syscalls[3].action: …`.
pub type Error = crate::spec::SpecError;

/// Compile `linux.seccomp` for a container. `Ok(None)` means no filter
/// (runc: empty defaultAction and no syscalls disables seccomp).
pub fn compile(_profile: &spec::Seccomp, _ctx: &Context) -> Result<Option<Program>, Error> {
    todo!("seccomp helper")
}

impl Program {
    /// Load the filter into the calling thread. Must not allocate.
    /// Returns the listener fd when `notify` is set.
    pub fn load(&self) -> std::io::Result<Option<RawFd>> {
        todo!("seccomp helper")
    }
}

/// berth's default profile (profiles/default.json).
pub fn default_profile() -> spec::Seccomp {
    spec::Seccomp::default()
}
