//! The ENOSYS stub (runc's algorithm, docs/seccomp.md) and berth's
//! fallback-safe denial table (docs/seccomp.md).
//!
//! Why: a profile written before a syscall existed cannot name it, so its
//! default action (usually EPERM) hits it. libc only falls back to an older
//! syscall on `ENOSYS`, so EPERM breaks programs that would have worked on an
//! older kernel. runc (PR #2750, runc#2151) prepends a small cBPF program that
//! returns ENOSYS for every syscall numbered above the highest one the profile
//! names. berth does the same, bit for bit in behaviour, and adds the table
//! below for the gap runc's stub leaves (an unnamed syscall *below* the
//! highest named one: Concourse 7.13-rc, clone3 = 435 unnamed, faccessat2 =
//! 439 named → clone3 got EPERM → `pthread_create` failed).

use super::bpf::*;
use super::Insn;
use libseccomp::ScmpArch;

/// `__X32_SYSCALL_BIT`: x32 calls arrive with `AUDIT_ARCH_X86_64` and this bit set.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// The stub's only verdict: `SECCOMP_RET_ERRNO | ENOSYS`.
pub const RET_ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

/// One architecture: its OCI/libseccomp name, the `AUDIT_ARCH_*` value the
/// kernel puts in `seccomp_data.arch`, and Docker's name for `includes.arches`.
#[derive(Debug, Clone, Copy)]
pub struct ArchInfo {
    pub scmp: ScmpArch,
    pub oci: &'static str,
    pub audit: u32,
    pub audit_name: &'static str,
    /// Docker's `arches` spelling (moby/profiles `nativeToSeccomp`).
    pub docker: &'static str,
}

/// Every architecture the runtime-spec names. x32 has no AUDIT_ARCH of its
/// own: it shares x86_64's and is told apart by [`X32_SYSCALL_BIT`].
pub const ARCHES: &[ArchInfo] = &[
    arch(
        ScmpArch::X8664,
        "SCMP_ARCH_X86_64",
        0xC000_003E,
        "AUDIT_ARCH_X86_64",
        "amd64",
    ),
    arch(
        ScmpArch::X86,
        "SCMP_ARCH_X86",
        0x4000_0003,
        "AUDIT_ARCH_I386",
        "x86",
    ),
    arch(
        ScmpArch::X32,
        "SCMP_ARCH_X32",
        0xC000_003E,
        "AUDIT_ARCH_X86_64",
        "x32",
    ),
    arch(
        ScmpArch::Aarch64,
        "SCMP_ARCH_AARCH64",
        0xC000_00B7,
        "AUDIT_ARCH_AARCH64",
        "arm64",
    ),
    arch(
        ScmpArch::Arm,
        "SCMP_ARCH_ARM",
        0x4000_0028,
        "AUDIT_ARCH_ARM",
        "arm",
    ),
    arch(
        ScmpArch::Mips,
        "SCMP_ARCH_MIPS",
        0x0000_0008,
        "AUDIT_ARCH_MIPS",
        "mips",
    ),
    arch(
        ScmpArch::Mips64,
        "SCMP_ARCH_MIPS64",
        0x8000_0008,
        "AUDIT_ARCH_MIPS64",
        "mips64",
    ),
    arch(
        ScmpArch::Mips64N32,
        "SCMP_ARCH_MIPS64N32",
        0xA000_0008,
        "AUDIT_ARCH_MIPS64N32",
        "mips64n32",
    ),
    arch(
        ScmpArch::Mipsel,
        "SCMP_ARCH_MIPSEL",
        0x4000_0008,
        "AUDIT_ARCH_MIPSEL",
        "mipsle",
    ),
    arch(
        ScmpArch::Mipsel64,
        "SCMP_ARCH_MIPSEL64",
        0xC000_0008,
        "AUDIT_ARCH_MIPSEL64",
        "mipsel64",
    ),
    arch(
        ScmpArch::Mipsel64N32,
        "SCMP_ARCH_MIPSEL64N32",
        0xE000_0008,
        "AUDIT_ARCH_MIPSEL64N32",
        "mips3l64n32",
    ),
    arch(
        ScmpArch::Ppc,
        "SCMP_ARCH_PPC",
        0x0000_0014,
        "AUDIT_ARCH_PPC",
        "ppc",
    ),
    arch(
        ScmpArch::Ppc64,
        "SCMP_ARCH_PPC64",
        0x8000_0015,
        "AUDIT_ARCH_PPC64",
        "ppc64",
    ),
    arch(
        ScmpArch::Ppc64Le,
        "SCMP_ARCH_PPC64LE",
        0xC000_0015,
        "AUDIT_ARCH_PPC64LE",
        "ppc64le",
    ),
    arch(
        ScmpArch::S390,
        "SCMP_ARCH_S390",
        0x0000_0016,
        "AUDIT_ARCH_S390",
        "s390",
    ),
    arch(
        ScmpArch::S390X,
        "SCMP_ARCH_S390X",
        0x8000_0016,
        "AUDIT_ARCH_S390X",
        "s390x",
    ),
    arch(
        ScmpArch::Parisc,
        "SCMP_ARCH_PARISC",
        0x0000_000F,
        "AUDIT_ARCH_PARISC",
        "parisc",
    ),
    arch(
        ScmpArch::Parisc64,
        "SCMP_ARCH_PARISC64",
        0x8000_000F,
        "AUDIT_ARCH_PARISC64",
        "parisc64",
    ),
    arch(
        ScmpArch::Riscv64,
        "SCMP_ARCH_RISCV64",
        0xC000_00F3,
        "AUDIT_ARCH_RISCV64",
        "riscv64",
    ),
    arch(
        ScmpArch::Loongarch64,
        "SCMP_ARCH_LOONGARCH64",
        0xC000_0102,
        "AUDIT_ARCH_LOONGARCH64",
        "loong64",
    ),
    arch(
        ScmpArch::M68k,
        "SCMP_ARCH_M68K",
        0x0000_0004,
        "AUDIT_ARCH_M68K",
        "m68k",
    ),
    arch(
        ScmpArch::Sh,
        "SCMP_ARCH_SH",
        0x4000_002A,
        "AUDIT_ARCH_SHEL",
        "sh",
    ),
    arch(
        ScmpArch::Sheb,
        "SCMP_ARCH_SHEB",
        0x0000_002A,
        "AUDIT_ARCH_SH",
        "sheb",
    ),
];

const fn arch(
    scmp: ScmpArch,
    oci: &'static str,
    audit: u32,
    audit_name: &'static str,
    docker: &'static str,
) -> ArchInfo {
    ArchInfo {
        scmp,
        oci,
        audit,
        audit_name,
        docker,
    }
}

/// Look an architecture up by its OCI name (`SCMP_ARCH_X86_64`).
pub fn arch_by_name(oci: &str) -> Option<&'static ArchInfo> {
    ARCHES.iter().find(|a| a.oci == oci)
}

/// Look an architecture up by libseccomp token.
pub fn arch_info(scmp: ScmpArch) -> &'static ArchInfo {
    let scmp = if scmp == ScmpArch::Native {
        ScmpArch::native()
    } else {
        scmp
    };
    ARCHES
        .iter()
        .find(|a| a.scmp == scmp)
        .expect("every ScmpArch berth can resolve is in ARCHES")
}

/// One syscall that libc or a runtime probes and, on `ENOSYS` only, replaces
/// with an older one. Denying it with EPERM breaks the caller; ENOSYS does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackSafe {
    pub name: &'static str,
    /// First mainline kernel with the syscall.
    pub since: &'static str,
    /// Who probes it, and what they fall back to.
    pub probed_by: &'static str,
}

/// docs/seccomp.md: a syscall here that the profile does not name at all gets
/// ENOSYS (not the default errno) whenever the default action denies.
#[rustfmt::skip]
pub const FALLBACK_SAFE: &[FallbackSafe] = &[
    fb("clone3", "5.3", "glibc >= 2.34 pthread_create/posix_spawn (__clone_internal) -> clone; runc >= 1.3"),
    fb("close_range", "5.9", "glibc >= 2.34 closefrom, CPython os.closerange, runc/systemd fd cleanup -> close loop"),
    fb("openat2", "5.6", "runc >= 1.2 and crun (RESOLVE_IN_ROOT path safety), systemd chase() -> openat walk"),
    fb("faccessat2", "5.8", "glibc >= 2.33 faccessat with flags -> fstatat emulation (runc#2151)"),
    fb("epoll_pwait2", "5.11", "systemd sd-event >= 248, libuv -> epoll_pwait with ms timeout"),
    fb("fchmodat2", "6.6", "glibc >= 2.39 fchmodat(AT_SYMLINK_NOFOLLOW) -> O_PATH + /proc/self/fd"),
    fb("statx", "4.11", "Rust std and rustix stat, glibc 32-bit stat (time64) -> fstatat (concourse#7471)"),
    fb("pidfd_open", "5.3", "Go >= 1.23 os/exec, systemd, CPython os.pidfd_open users -> plain pid"),
    fb("pidfd_getfd", "5.6", "runc seccomp-notify fd hand-off, systemd -> SCM_RIGHTS over a socket"),
    fb("pidfd_send_signal", "5.1", "Go >= 1.23 os.Process.Signal, systemd -> kill(2)"),
    fb("copy_file_range", "4.5", "coreutils cp, Go io.Copy on *os.File, Rust std fs::copy -> read/write"),
    fb("preadv2", "4.6", "glibc preadv2 with flags == 0 -> preadv, CPython os.preadv"),
    fb("pwritev2", "4.6", "glibc pwritev2 with flags == 0 -> pwritev, CPython os.pwritev"),
    fb("futex_waitv", "5.16", "Wine/Proton fsync -> eventfd-based esync"),
    fb("cachestat", "6.5", "page-cache residency probes -> mincore(2)"),
    fb("mseal", "6.10", "memory sealing in ld.so/browsers -> no sealing (unknown to libseccomp 2.5.4)"),
    fb("mount_setattr", "5.12", "util-linux mount, systemd, runc/crun idmapped mounts -> plain mount"),
    fb("landlock_create_ruleset", "5.13", "Landlock best-effort sandboxes (rust-landlock, go-landlock) -> run unsandboxed"),
    fb("landlock_add_rule", "5.13", "Landlock best-effort sandboxes -> run unsandboxed"),
    fb("landlock_restrict_self", "5.13", "Landlock best-effort sandboxes -> run unsandboxed"),
    fb("memfd_secret", "5.14", "secret-memory allocators -> mlock'd anonymous memory"),
    fb("process_madvise", "5.10", "userspace memory managers (Android lmkd, systemd-oomd) -> madvise on self / none"),
    fb("set_mempolicy_home_node", "5.17", "libnuma/numactl -> set_mempolicy/mbind"),
    fb("listmount", "6.8", "util-linux >= 2.40 libmount -> /proc/self/mountinfo (unknown to libseccomp 2.5.4)"),
    fb("statmount", "6.8", "util-linux >= 2.40 libmount -> /proc/self/mountinfo (unknown to libseccomp 2.5.4)"),
    fb("rseq", "4.18", "glibc >= 2.35 registers rseq at thread start; ENOSYS means 'no rseq'"),
    fb("getrandom", "3.17", "glibc, OpenSSL, Go, Rust getrandom crate -> /dev/urandom"),
];

const fn fb(name: &'static str, since: &'static str, probed_by: &'static str) -> FallbackSafe {
    FallbackSafe {
        name,
        since,
        probed_by,
    }
}

/// Look a syscall up in [`FALLBACK_SAFE`].
pub fn fallback_safe(name: &str) -> Option<&'static FallbackSafe> {
    FALLBACK_SAFE.iter().find(|f| f.name == name)
}

/// The highest syscall number a profile names, for one architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchMax {
    pub arch: ScmpArch,
    /// As libseccomp numbers it: x32 numbers include [`X32_SYSCALL_BIT`].
    pub max: u32,
}

/// runc's `findLastSyscalls`: for each arch, the largest number any name in
/// the profile resolves to (any action, redundant rules included). Unknown
/// names and negative pseudo-numbers (multiplexed calls like i386 `socket`)
/// never count. An arch where nothing resolves gets no entry, so no section.
pub fn find_maxima<'a>(
    archs: &[ScmpArch],
    names: impl Iterator<Item = &'a str> + Clone,
) -> Vec<ArchMax> {
    let mut out = Vec::new();
    for &arch in archs {
        let mut max = 0i32;
        for name in names.clone() {
            if let Ok(sc) = libseccomp::ScmpSyscall::from_name_by_arch(name, arch) {
                max = max.max(sc.as_raw_syscall());
            }
        }
        if max > 0 {
            out.push(ArchMax {
                arch,
                max: max as u32,
            });
        }
    }
    out
}

/// One section of the stub: all arches that share an AUDIT_ARCH value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// One max; `setup0` adds s390's "nr 0 is always ENOSYS" check.
    Generic { audit: u32, max: u32, setup0: bool },
    /// AUDIT_ARCH_X86_64, carrying native and/or x32 maxima.
    X86 {
        native: Option<u32>,
        x32: Option<u32>,
    },
}

impl Section {
    fn audit(&self) -> u32 {
        match self {
            Section::Generic { audit, .. } => *audit,
            Section::X86 { .. } => 0xC000_003E,
        }
    }
    fn len(&self) -> usize {
        match self {
            Section::Generic { setup0, .. } => 4 + if *setup0 { 2 } else { 0 },
            Section::X86 {
                native: Some(_),
                x32: Some(_),
            } => 8,
            Section::X86 { .. } => 6,
        }
    }
}

fn sections(maxima: &[ArchMax]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for m in maxima {
        let info = arch_info(m.arch);
        if info.audit == 0xC000_003E {
            let idx = out.iter().position(|s| matches!(s, Section::X86 { .. }));
            let idx = idx.unwrap_or_else(|| {
                out.push(Section::X86 {
                    native: None,
                    x32: None,
                });
                out.len() - 1
            });
            if let Section::X86 { native, x32 } = &mut out[idx] {
                if m.arch == ScmpArch::X32 {
                    *x32 = Some(m.max)
                } else {
                    *native = Some(m.max)
                }
            }
        } else if !out.iter().any(|s| s.audit() == info.audit) {
            out.push(Section::Generic {
                audit: info.audit,
                max: m.max,
                setup0: matches!(m.arch, ScmpArch::S390 | ScmpArch::S390X),
            });
        }
    }
    out
}

const LD_ARCH: Insn = Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 4);
const LD_NR: Insn = Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 0);
const RET_NOSYS: Insn = Insn::stmt(BPF_RET | BPF_K, RET_ENOSYS);

fn jeq(k: u32, jt: u8, jf: u8) -> Insn {
    Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, k, jt, jf)
}
fn jgt(k: u32, jt: u8, jf: u8) -> Insn {
    Insn::jump(BPF_JMP | BPF_JGT | BPF_K, k, jt, jf)
}
fn jset(k: u32, jt: u8, jf: u8) -> Insn {
    Insn::jump(BPF_JMP | BPF_JSET | BPF_K, k, jt, jf)
}
/// `ja` from `pc` to `target` (offsets count from the next instruction).
fn ja(pc: usize, target: usize) -> Insn {
    Insn::stmt(BPF_JMP | BPF_JA, (target - pc - 1) as u32)
}

/// Build the stub for `maxima`. The program it guards (`P`) starts right
/// after the returned instructions. Only `ja` crosses long distances, so no
/// 8-bit jump offset can overflow (docs/seccomp.md).
///
/// The stub never returns ALLOW: it returns ENOSYS for `nr > max[arch]` and
/// otherwise jumps into `P`, which decides exactly as it would alone.
pub fn build_stub(maxima: &[ArchMax]) -> Vec<Insn> {
    let secs = sections(maxima);
    if secs.is_empty() {
        return Vec::new();
    }
    let header = 1 + 2 * secs.len() + 1;
    let mut starts = Vec::with_capacity(secs.len());
    let mut at = header;
    for s in &secs {
        starts.push(at);
        at += s.len();
    }
    let p = at; // first instruction of the libseccomp program
    let mut out = vec![LD_ARCH];
    for (s, &start) in secs.iter().zip(&starts) {
        out.push(jeq(s.audit(), 0, 1));
        out.push(ja(out.len(), start));
    }
    out.push(ja(out.len(), p)); // an arch not in the set: P applies BADARCH
    for s in &secs {
        out.push(LD_NR);
        match *s {
            Section::Generic { max, setup0, .. } => {
                if setup0 {
                    // s390: unknown large syscalls are multiplexed through setup(2) = 0.
                    out.push(jeq(0, 0, 1));
                    out.push(RET_NOSYS);
                }
                out.extend([jgt(max, 0, 1), RET_NOSYS]);
                out.push(ja(out.len(), p));
            }
            Section::X86 {
                native: Some(n),
                x32: None,
            } => {
                // x32 call on a filter without x32: P's x86_64 section kills it as bad arch.
                out.push(jset(X32_SYSCALL_BIT, 0, 1));
                out.push(ja(out.len(), p));
                out.extend([jgt(n, 0, 1), RET_NOSYS]);
                out.push(ja(out.len(), p));
            }
            Section::X86 {
                native: Some(n),
                x32: Some(x),
            } => {
                out.push(jset(X32_SYSCALL_BIT, 3, 0));
                out.extend([jgt(n, 0, 1), RET_NOSYS]);
                out.push(ja(out.len(), p));
                // x32 part: libseccomp's x32 numbers already carry the bit.
                out.extend([jgt(x, 0, 1), RET_NOSYS]);
                out.push(ja(out.len(), p));
            }
            Section::X86 {
                native: None,
                x32: Some(x),
            } => {
                out.push(jset(X32_SYSCALL_BIT, 1, 0));
                out.push(ja(out.len(), p));
                out.extend([jgt(x, 0, 1), RET_NOSYS]);
                out.push(ja(out.len(), p));
            }
            Section::X86 {
                native: None,
                x32: None,
            } => unreachable!("sections() only creates X86 with a max"),
        }
    }
    debug_assert_eq!(out.len(), p);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86_64: u32 = 0xC000_003E;
    const I386: u32 = 0x4000_0003;
    const AARCH64: u32 = 0xC000_00B7;
    const S390X: u32 = 0x8000_0016;
    const RET_KILL: u32 = RET_KILL_THREAD;

    /// A synthetic "libseccomp program" P: for each arch in `archs`, the
    /// listed numbers get `action`, other numbers the default; foreign arches
    /// are killed (BADARCH). Mirrors what libseccomp emits.
    fn synthetic_p(archs: &[(u32, Vec<u32>)], action: u32, default: u32) -> Vec<Insn> {
        let mut p = vec![LD_ARCH];
        for (audit, nrs) in archs {
            // jeq audit, 0, skip-section
            let body = 1 + 2 * nrs.len() + 1;
            p.push(jeq(*audit, 0, body as u8));
            p.push(LD_NR);
            for nr in nrs {
                p.push(jeq(*nr, 0, 1));
                p.push(Insn::stmt(BPF_RET | BPF_K, action));
            }
            p.push(Insn::stmt(BPF_RET | BPF_K, default));
        }
        p.push(Insn::stmt(BPF_RET | BPF_K, RET_KILL));
        p
    }

    fn verdict(prog: &[Insn], arch: u32, nr: u32) -> u32 {
        run(
            prog,
            &SeccompData {
                nr,
                arch,
                ..Default::default()
            },
        )
        .unwrap()
        .ret
    }

    fn am(arch: ScmpArch, max: u32) -> ArchMax {
        ArchMax { arch, max }
    }

    /// runc's `TestEnosysStub_SingleArch/MultiArch` matrix: every subset of
    /// arches × default actions × explicit syscall windows, probing the named
    /// numbers, the boundaries and far-future numbers (+1000, +7331).
    #[test]
    fn stub_matrix() {
        let all: [(ScmpArch, u32); 4] = [
            (ScmpArch::X8664, X86_64),
            (ScmpArch::X86, I386),
            (ScmpArch::Aarch64, AARCH64),
            (ScmpArch::S390X, S390X),
        ];
        let windows: [&[u32]; 3] = [&[1, 2, 3], &[39, 200, 435], &[0, 60, 439]];
        let defaults = [RET_ERRNO | 1, RET_KILL, RET_KILL_PROCESS, RET_TRAP];
        let action = RET_ALLOW;
        for mask in 1u32..(1 << all.len()) {
            let chosen: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, a)| *a)
                .collect();
            for window in windows {
                for &default in &defaults {
                    let max = *window.iter().max().unwrap();
                    let p_archs: Vec<(u32, Vec<u32>)> = chosen
                        .iter()
                        .map(|(_, au)| (*au, window.to_vec()))
                        .collect();
                    let p = synthetic_p(&p_archs, action, default);
                    let maxima: Vec<ArchMax> = chosen.iter().map(|(s, _)| am(*s, max)).collect();
                    let stub = build_stub(&maxima);
                    let full: Vec<Insn> = stub.iter().chain(p.iter()).copied().collect();
                    assert!(full.len() <= MAX_INSNS);
                    for &(s, audit) in &all {
                        let in_set = chosen.iter().any(|(c, _)| *c == s);
                        let mut probes: Vec<u32> = window.to_vec();
                        probes.extend([max - 1, max, max + 1, max + 1000, max + 7331, 4, 1000]);
                        for nr in probes {
                            let got = verdict(&full, audit, nr);
                            let alone = verdict(&p, audit, nr);
                            if !in_set {
                                assert_eq!(got, alone, "foreign arch {audit:#x} nr {nr}");
                                assert_eq!(got, RET_KILL);
                            } else if s == ScmpArch::S390X && nr == 0 {
                                assert_eq!(got, RET_ENOSYS, "s390x setup(2)");
                            } else if nr > max {
                                assert_eq!(got, RET_ENOSYS, "{audit:#x} nr {nr} > {max}");
                            } else {
                                assert_eq!(got, alone, "{audit:#x} nr {nr} <= {max}");
                                if window.contains(&nr) {
                                    assert_eq!(got, RET_ALLOW);
                                } else {
                                    assert_eq!(got, default);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// x86_64 and x32 share AUDIT_ARCH_X86_64; bit 30 tells them apart.
    #[test]
    fn x32_bit_all_three_combinations() {
        let b = X32_SYSCALL_BIT;
        let p_both = synthetic_p(
            &[(X86_64, vec![0, 439, b, b | 0x221])],
            RET_ALLOW,
            RET_ERRNO | 1,
        );
        // x86_64 and x32 both in the set.
        let stub = build_stub(&[am(ScmpArch::X8664, 439), am(ScmpArch::X32, b | 0x221)]);
        assert_eq!(stub.len(), 1 + 2 + 1 + 8);
        let full: Vec<Insn> = stub.iter().chain(&p_both).copied().collect();
        assert_eq!(verdict(&full, X86_64, 439), RET_ALLOW);
        assert_eq!(verdict(&full, X86_64, 440), RET_ENOSYS);
        assert_eq!(verdict(&full, X86_64, 400), RET_ERRNO | 1, "hole below max");
        assert_eq!(verdict(&full, X86_64, b), RET_ALLOW, "x32 read");
        assert_eq!(verdict(&full, X86_64, b | 0x221), RET_ALLOW);
        assert_eq!(verdict(&full, X86_64, b | 0x222), RET_ENOSYS);
        // Known limitation (docs/seccomp.md): x32 holes below the inflated max.
        assert_eq!(verdict(&full, X86_64, b | 440), RET_ERRNO | 1);
        assert_eq!(verdict(&full, X86_64, b | (1000 + 0x221)), RET_ENOSYS);

        // x86_64 only: x32 numbers must reach P untouched (P kills them).
        let p64 = synthetic_p(&[(X86_64, vec![0, 439])], RET_ALLOW, RET_ERRNO | 1);
        let stub = build_stub(&[am(ScmpArch::X8664, 439)]);
        assert_eq!(stub.len(), 1 + 2 + 1 + 6);
        let full: Vec<Insn> = stub.iter().chain(&p64).copied().collect();
        for nr in [b, b | 1, b | 439, b | 440, b | 5000] {
            assert_eq!(verdict(&full, X86_64, nr), verdict(&p64, X86_64, nr));
        }
        assert_eq!(verdict(&full, X86_64, 1439), RET_ENOSYS);

        // x32 only (not possible on an x86_64 host, where native is always added).
        let stub = build_stub(&[am(ScmpArch::X32, b | 0x221)]);
        let full: Vec<Insn> = stub.iter().chain(&p_both).copied().collect();
        assert_eq!(verdict(&full, X86_64, 5000), verdict(&p_both, X86_64, 5000));
        assert_eq!(verdict(&full, X86_64, b | 0x222), RET_ENOSYS);
        assert_eq!(verdict(&full, X86_64, b), RET_ALLOW);
    }

    #[test]
    fn no_maxima_no_stub() {
        assert!(build_stub(&[]).is_empty());
    }

    #[test]
    fn stub_never_allows() {
        let stub = build_stub(&[
            am(ScmpArch::X8664, 456),
            am(ScmpArch::X86, 456),
            am(ScmpArch::X32, X32_SYSCALL_BIT | 0x223),
            am(ScmpArch::S390X, 400),
        ]);
        for i in &stub {
            if i.code & 0x07 == BPF_RET {
                assert_eq!(i.k, RET_ENOSYS);
            }
        }
    }

    #[test]
    fn maxima_from_libseccomp_tables() {
        // The old Concourse profile's extremes: faccessat2 is 439 on x86_64 and i386.
        let names = ["read", "faccessat2", "socket", "not_a_syscall"];
        let m = find_maxima(
            &[ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32],
            names.iter().copied(),
        );
        assert_eq!(
            m,
            vec![
                am(ScmpArch::X8664, 439),
                am(ScmpArch::X86, 439),
                am(ScmpArch::X32, X32_SYSCALL_BIT | 439),
            ]
        );
        // i386 `socket` alone is a negative pseudo-number (socketcall) on old tables:
        // only positive numbers count, and nothing else resolves → no entry.
        let m = find_maxima(&[ScmpArch::X86], ["not_a_syscall"].iter().copied());
        assert!(m.is_empty());
    }

    #[test]
    fn arch_table_is_consistent() {
        for a in ARCHES {
            assert_eq!(arch_by_name(a.oci).unwrap().audit, a.audit);
        }
        assert_eq!(arch_info(ScmpArch::Native).oci, "SCMP_ARCH_X86_64");
        for f in FALLBACK_SAFE {
            assert_eq!(
                FALLBACK_SAFE.iter().filter(|g| g.name == f.name).count(),
                1,
                "{} twice",
                f.name
            );
        }
    }
}
