//! Classic BPF as seccomp uses it: instruction encoding, a disassembler that
//! names syscalls and architectures, and an interpreter that runs a program
//! against a `struct seccomp_data` exactly as the kernel would.
//!
//! The interpreter is how berth *tests* its filters (runc does the same with
//! `golang.org/x/net/bpf` in `patchbpf/enosys_linux_test.go`) and how
//! `berth seccomp explain` answers "what happens to this syscall": it runs the
//! very bytes the kernel gets, not a model of the profile.

use super::Insn;
use std::fmt::Write as _;

// Instruction classes (linux/bpf_common.h).
pub const BPF_LD: u16 = 0x00;
pub const BPF_LDX: u16 = 0x01;
pub const BPF_ST: u16 = 0x02;
pub const BPF_STX: u16 = 0x03;
pub const BPF_ALU: u16 = 0x04;
pub const BPF_JMP: u16 = 0x05;
pub const BPF_RET: u16 = 0x06;
pub const BPF_MISC: u16 = 0x07;
// Load sizes and modes.
pub const BPF_W: u16 = 0x00;
pub const BPF_IMM: u16 = 0x00;
pub const BPF_ABS: u16 = 0x20;
pub const BPF_MEM: u16 = 0x60;
pub const BPF_LEN: u16 = 0x80;
// Jumps.
pub const BPF_JA: u16 = 0x00;
pub const BPF_JEQ: u16 = 0x10;
pub const BPF_JGT: u16 = 0x20;
pub const BPF_JGE: u16 = 0x30;
pub const BPF_JSET: u16 = 0x40;
// Operand source: the constant k or the X register.
pub const BPF_K: u16 = 0x00;
pub const BPF_X: u16 = 0x08;
// Return source: k or the accumulator.
pub const BPF_A: u16 = 0x10;

/// Scratch memory slots (`BPF_MEMWORDS`).
const MEMWORDS: usize = 16;
/// `sizeof(struct seccomp_data)`: nr(4) arch(4) ip(8) args(6*8).
pub const SECCOMP_DATA_LEN: u32 = 64;
/// The kernel refuses longer programs (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

// seccomp return values (linux/seccomp.h).
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_DATA: u32 = 0x0000_ffff;

impl Insn {
    /// `BPF_STMT(code, k)`.
    pub const fn stmt(code: u16, k: u32) -> Insn {
        Insn {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }
    /// `BPF_JUMP(code, k, jt, jf)`.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
        Insn { code, jt, jf, k }
    }
    /// Decode a host-endian `struct sock_filter` (8 bytes).
    pub fn from_bytes(b: [u8; 8]) -> Insn {
        Insn {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    /// Encode as a host-endian `struct sock_filter`.
    pub fn to_bytes(self) -> [u8; 8] {
        let c = self.code.to_ne_bytes();
        let k = self.k.to_ne_bytes();
        [c[0], c[1], self.jt, self.jf, k[0], k[1], k[2], k[3]]
    }
}

/// Parse an exported program (a multiple of 8 bytes).
pub fn parse(bytes: &[u8]) -> Result<Vec<Insn>, String> {
    if !bytes.len().is_multiple_of(8) {
        return Err(format!(
            "BPF program is {} bytes, not a multiple of 8",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().expect("8-byte chunk")))
        .collect())
}

/// Serialise a program to the bytes the kernel reads.
pub fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.to_bytes()).collect()
}

/// The input of a seccomp filter (`struct seccomp_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeccompData {
    pub nr: u32,
    /// An `AUDIT_ARCH_*` value.
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    /// Read the 32-bit word at byte offset `off`, as the kernel's
    /// `seccomp_check_filter` only allows aligned 4-byte loads.
    fn word(&self, off: u32) -> Option<u32> {
        if !off.is_multiple_of(4) || off >= SECCOMP_DATA_LEN {
            return None;
        }
        let mut bytes = [0u8; 64];
        bytes[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        bytes[8..16].copy_from_slice(&self.instruction_pointer.to_ne_bytes());
        for (i, a) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let o = off as usize;
        Some(u32::from_ne_bytes(bytes[o..o + 4].try_into().ok()?))
    }
}

/// The result of running a program: the 32-bit return value, the index of
/// the `ret` instruction that produced it, and every instruction executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub ret: u32,
    pub ret_pc: usize,
    pub trace: Vec<usize>,
}

/// Run `prog` on `data` like the kernel's classic-BPF interpreter.
/// Errors for programs the kernel would reject (or that run off the end).
pub fn run(prog: &[Insn], data: &SeccompData) -> Result<Run, String> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; MEMWORDS];
    let mut pc = 0usize;
    let mut trace = Vec::new();
    loop {
        let insn = *prog
            .get(pc)
            .ok_or_else(|| format!("ran off the end of the program at {pc}"))?;
        trace.push(pc);
        let next = pc + 1;
        let class = insn.code & 0x07;
        let bad = || {
            format!(
                "{pc}: instruction {:#06x} not allowed in seccomp",
                insn.code
            )
        };
        match class {
            BPF_LD | BPF_LDX => {
                let v = match insn.code & 0xe0 {
                    BPF_IMM => insn.k,
                    BPF_ABS if class == BPF_LD && insn.code & 0x18 == BPF_W => data
                        .word(insn.k)
                        .ok_or_else(|| format!("{pc}: load of seccomp_data[{}]", insn.k))?,
                    BPF_MEM => *mem
                        .get(insn.k as usize)
                        .ok_or_else(|| format!("{pc}: scratch slot {}", insn.k))?,
                    BPF_LEN => SECCOMP_DATA_LEN,
                    _ => return Err(bad()),
                };
                if class == BPF_LD {
                    a = v
                } else {
                    x = v
                }
                pc = next;
            }
            BPF_ST | BPF_STX => {
                let slot = mem
                    .get_mut(insn.k as usize)
                    .ok_or_else(|| format!("{pc}: scratch slot {}", insn.k))?;
                *slot = if class == BPF_ST { a } else { x };
                pc = next;
            }
            BPF_ALU => {
                let src = if insn.code & BPF_X != 0 { x } else { insn.k };
                a = match insn.code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src).unwrap_or(0),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src).unwrap_or(0),
                    0xa0 => a ^ src,
                    _ => return Err(bad()),
                };
                pc = next;
            }
            BPF_JMP => {
                let src = if insn.code & BPF_X != 0 { x } else { insn.k };
                let op = insn.code & 0xf0;
                if op == BPF_JA {
                    pc = next + insn.k as usize;
                    continue;
                }
                let taken = match op {
                    BPF_JEQ => a == src,
                    BPF_JGT => a > src,
                    BPF_JGE => a >= src,
                    BPF_JSET => a & src != 0,
                    _ => return Err(bad()),
                };
                pc = next + if taken { insn.jt } else { insn.jf } as usize;
            }
            BPF_RET => {
                let ret = match insn.code & 0x18 {
                    BPF_K => insn.k,
                    BPF_A => a,
                    _ => return Err(bad()),
                };
                return Ok(Run {
                    ret,
                    ret_pc: pc,
                    trace,
                });
            }
            BPF_MISC => {
                if insn.code & 0xf8 == 0 {
                    x = a // tax
                } else {
                    a = x // txa
                }
                pc = next;
            }
            _ => return Err(bad()),
        }
    }
}

/// A seccomp return value, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    KillProcess,
    KillThread,
    Trap(u16),
    Errno(u16),
    Notify,
    Trace(u16),
    Log,
    Allow,
}

impl Verdict {
    /// Decode like the kernel does (`SECCOMP_RET_ACTION_FULL`; unknown → kill process).
    pub fn from_ret(ret: u32) -> Verdict {
        let data = (ret & RET_DATA) as u16;
        match ret & RET_ACTION_FULL {
            RET_KILL_PROCESS => Verdict::KillProcess,
            RET_KILL_THREAD => Verdict::KillThread,
            RET_TRAP => Verdict::Trap(data),
            RET_ERRNO => Verdict::Errno(data),
            RET_USER_NOTIF => Verdict::Notify,
            RET_TRACE => Verdict::Trace(data),
            RET_LOG => Verdict::Log,
            RET_ALLOW => Verdict::Allow,
            _ => Verdict::KillProcess,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::KillProcess => write!(f, "KILL_PROCESS"),
            Verdict::KillThread => write!(f, "KILL_THREAD (SIGSYS)"),
            Verdict::Trap(d) => write!(f, "TRAP (SIGSYS, si_errno {d})"),
            Verdict::Errno(e) => write!(f, "ERRNO {e} ({})", errno_name(*e as i32)),
            Verdict::Notify => write!(f, "NOTIFY (ask the seccomp agent)"),
            Verdict::Trace(d) => write!(f, "TRACE {d}"),
            Verdict::Log => write!(f, "LOG (allowed, audit-logged)"),
            Verdict::Allow => write!(f, "ALLOW"),
        }
    }
}

/// `ENOSYS` → "ENOSYS"; unknown numbers print as the number.
pub fn errno_name(e: i32) -> String {
    let n = match e {
        0 => "success",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTSUP => "EOPNOTSUPP",
        libc::ENOANO => "ENOANO",
        _ => return e.to_string(),
    };
    n.to_string()
}

/// Well-known `AUDIT_ARCH_*` values, for the disassembler.
pub fn audit_arch_name(a: u32) -> Option<&'static str> {
    super::enosys::ARCHES
        .iter()
        .find(|x| x.audit == a)
        .map(|x| x.audit_name)
}

/// What the accumulator is known to hold at an instruction (forward dataflow),
/// so the disassembler can print `clone3` instead of `#435`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acc {
    Unknown,
    Nr,
    Arch,
}

/// Per-instruction facts from one forward pass: what A holds, and which
/// audit arch the path is known to be in. cBPF only jumps forward, so one
/// pass over the instructions in order sees every predecessor first.
fn dataflow(prog: &[Insn]) -> Vec<Option<(Acc, Option<u32>)>> {
    let mut st: Vec<Option<(Acc, Option<u32>)>> = vec![None; prog.len() + 1];
    let merge = |slot: &mut Option<(Acc, Option<u32>)>, v: (Acc, Option<u32>)| {
        *slot = Some(match *slot {
            None => v,
            Some(o) => (
                if o.0 == v.0 { o.0 } else { Acc::Unknown },
                if o.1 == v.1 { o.1 } else { None },
            ),
        })
    };
    if !prog.is_empty() {
        st[0] = Some((Acc::Unknown, None));
    }
    for (pc, insn) in prog.iter().enumerate() {
        let Some((acc, arch)) = st[pc] else { continue };
        let class = insn.code & 0x07;
        let mut out = |t: usize, v| {
            if t < st.len() {
                merge(&mut st[t], v)
            }
        };
        match class {
            BPF_LD => {
                let acc = match (insn.code & 0xe0, insn.k) {
                    (BPF_ABS, 0) => Acc::Nr,
                    (BPF_ABS, 4) => Acc::Arch,
                    _ => Acc::Unknown,
                };
                out(pc + 1, (acc, arch));
            }
            BPF_JMP => {
                let op = insn.code & 0xf0;
                if op == BPF_JA {
                    out(pc + 1 + insn.k as usize, (acc, arch));
                } else {
                    let t_arch = if acc == Acc::Arch && op == BPF_JEQ && insn.code & BPF_X == 0 {
                        Some(insn.k)
                    } else {
                        arch
                    };
                    out(pc + 1 + insn.jt as usize, (acc, t_arch));
                    out(pc + 1 + insn.jf as usize, (acc, arch));
                }
            }
            BPF_RET => {}
            BPF_ALU | BPF_MISC => out(pc + 1, (Acc::Unknown, arch)),
            _ => out(pc + 1, (acc, arch)),
        }
    }
    st
}

/// Disassemble `prog` in the classic `bpf_dbg` style, with syscall and
/// architecture names resolved, absolute jump targets, and a note from
/// `annotate(pc, audit_arch, nr)` after each syscall-number comparison
/// (berth uses it to say which profile rule named that syscall) and from
/// `section(pc)` before an instruction (e.g. "berth ENOSYS stub").
pub fn disassemble(
    prog: &[Insn],
    syscall_name: &dyn Fn(u32, u32) -> Option<String>,
    annotate: &dyn Fn(u32, u32) -> Option<String>,
    section: &dyn Fn(usize) -> Option<String>,
) -> String {
    let facts = dataflow(prog);
    let mut out = String::new();
    for (pc, insn) in prog.iter().enumerate() {
        if let Some(s) = section(pc) {
            let _ = writeln!(out, "; ---- {s}");
        }
        let (acc, arch) = facts[pc].unwrap_or((Acc::Unknown, None));
        let (text, note) = render(pc, insn, acc, arch, syscall_name, annotate);
        if note.is_empty() {
            let _ = writeln!(out, "{pc:5}: {text}");
        } else {
            let _ = writeln!(out, "{pc:5}: {text:<40} ; {note}");
        }
    }
    out
}

/// One instruction as text, plus a note (field, arch or syscall name,
/// decoded return value) from what the dataflow knows about A.
fn render(
    pc: usize,
    insn: &Insn,
    acc: Acc,
    arch: Option<u32>,
    syscall_name: &dyn Fn(u32, u32) -> Option<String>,
    annotate: &dyn Fn(u32, u32) -> Option<String>,
) -> (String, String) {
    let class = insn.code & 0x07;
    let mut note = String::new();
    let text = match class {
        BPF_LD | BPF_LDX => {
            let reg = if class == BPF_LD { "ld " } else { "ldx" };
            match insn.code & 0xe0 {
                BPF_IMM => format!("{reg}  #{:#x}", insn.k),
                BPF_ABS => {
                    note = field_name(insn.k);
                    format!("{reg}  [{}]", insn.k)
                }
                BPF_MEM => format!("{reg}  M[{}]", insn.k),
                BPF_LEN => format!("{reg}  #len"),
                _ => format!(".word {:#06x}", insn.code),
            }
        }
        BPF_ST => format!("st   M[{}]", insn.k),
        BPF_STX => format!("stx  M[{}]", insn.k),
        BPF_ALU => {
            let op = match insn.code & 0xf0 {
                0x00 => "add",
                0x10 => "sub",
                0x20 => "mul",
                0x30 => "div",
                0x40 => "or",
                0x50 => "and",
                0x60 => "lsh",
                0x70 => "rsh",
                0x80 => "neg",
                0x90 => "mod",
                0xa0 => "xor",
                _ => "alu?",
            };
            if insn.code & BPF_X != 0 {
                format!("{op:<4} x")
            } else {
                format!("{op:<4} #{:#x}", insn.k)
            }
        }
        BPF_JMP => {
            let op = insn.code & 0xf0;
            if op == BPF_JA {
                format!("ja   {}", pc + 1 + insn.k as usize)
            } else {
                let name = match op {
                    BPF_JEQ => "jeq",
                    BPF_JGT => "jgt",
                    BPF_JGE => "jge",
                    BPF_JSET => "jset",
                    _ => "j?",
                };
                let operand = if insn.code & BPF_X != 0 {
                    "x".to_string()
                } else {
                    format!("#{:#x}", insn.k)
                };
                if insn.code & BPF_X == 0 {
                    match acc {
                        Acc::Arch => note = audit_arch_name(insn.k).unwrap_or("?").to_string(),
                        Acc::Nr => {
                            if let Some(a) = arch {
                                if op == BPF_JSET && insn.k == 0x4000_0000 {
                                    note = "x32 syscall bit".into();
                                } else if let Some(n) = syscall_name(a, insn.k) {
                                    note = n;
                                    // Only an equality test is "this syscall";
                                    // jgt/jge split ranges (binary tree, stub max).
                                    let extra = if op == BPF_JEQ {
                                        annotate(a, insn.k)
                                    } else {
                                        None
                                    };
                                    if let Some(extra) = extra {
                                        note = format!("{note}  ← {extra}");
                                    }
                                }
                            }
                        }
                        Acc::Unknown => {}
                    }
                }
                format!(
                    "{name:<4} {operand:<12} jt {:<5} jf {}",
                    pc + 1 + insn.jt as usize,
                    pc + 1 + insn.jf as usize
                )
            }
        }
        BPF_RET => match insn.code & 0x18 {
            BPF_A => "ret  a".to_string(),
            _ => {
                note = Verdict::from_ret(insn.k).to_string();
                format!("ret  #{:#010x}", insn.k)
            }
        },
        BPF_MISC => {
            if insn.code & 0xf8 == 0 {
                "tax".into()
            } else {
                "txa".into()
            }
        }
        _ => format!(".word {:#06x}", insn.code),
    };
    (text, note)
}

/// Name the `struct seccomp_data` field at a byte offset.
fn field_name(off: u32) -> String {
    match off {
        0 => "nr".into(),
        4 => "arch".into(),
        8 => "instruction_pointer (low)".into(),
        12 => "instruction_pointer (high)".into(),
        16..=63 => {
            let i = (off - 16) / 8;
            let half = if (off - 16).is_multiple_of(8) {
                "low"
            } else {
                "high"
            };
            format!("args[{i}] ({half} 32 bits)")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LD_NR: Insn = Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 0);
    const LD_ARCH: Insn = Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 4);

    fn data(arch: u32, nr: u32) -> SeccompData {
        SeccompData {
            nr,
            arch,
            ..Default::default()
        }
    }

    #[test]
    fn bytes_round_trip() {
        let i = Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0xc000_003e, 1, 2);
        assert_eq!(Insn::from_bytes(i.to_bytes()), i);
        assert_eq!(parse(&to_bytes(&[i, LD_NR])).unwrap(), vec![i, LD_NR]);
        assert!(parse(&[0; 7]).is_err());
    }

    #[test]
    fn runs_jumps_loads_and_alu() {
        // if (arch == X86_64 && (args[1] & 0xff) + 1 == 8) allow else errno 5
        let prog = [
            LD_ARCH,
            Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0xc000_003e, 0, 5),
            Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 24),
            Insn::stmt(BPF_ALU | 0x50, 0xff),
            Insn::stmt(BPF_ALU, 1),
            Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 8, 0, 1),
            Insn::stmt(BPF_RET | BPF_K, RET_ALLOW),
            Insn::stmt(BPF_RET | BPF_K, RET_ERRNO | 5),
        ];
        let mut d = data(0xc000_003e, 1);
        d.args[1] = 0x1207;
        let r = run(&prog, &d).unwrap();
        assert_eq!(Verdict::from_ret(r.ret), Verdict::Allow);
        assert_eq!(r.trace, vec![0, 1, 2, 3, 4, 5, 6]);
        d.args[1] = 0x1208;
        assert_eq!(run(&prog, &d).unwrap().ret, RET_ERRNO | 5);
        assert_eq!(run(&prog, &data(3, 1)).unwrap().ret_pc, 7);
    }

    #[test]
    fn scratch_memory_and_registers() {
        let prog = [
            LD_NR,
            Insn::stmt(BPF_ST, 3),
            Insn::stmt(BPF_LD | BPF_IMM, 7),
            Insn::stmt(BPF_LDX | BPF_MEM, 3),
            Insn::stmt(BPF_ALU | BPF_X, 0), // add x: a = 7 + nr
            Insn::stmt(BPF_RET | BPF_A, 0),
        ];
        assert_eq!(run(&prog, &data(0, 35)).unwrap().ret, 42);
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        // unaligned load, load past seccomp_data, running off the end
        assert!(run(&[Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 2)], &data(0, 0)).is_err());
        assert!(run(&[Insn::stmt(BPF_LD | BPF_W | BPF_ABS, 64)], &data(0, 0)).is_err());
        assert!(run(&[LD_NR], &data(0, 0)).is_err());
    }

    #[test]
    fn high_and_low_argument_words() {
        let mut d = data(0, 0);
        d.args[0] = 0x1111_2222_3333_4444;
        assert_eq!(d.word(16), Some(0x3333_4444));
        assert_eq!(d.word(20), Some(0x1111_2222));
    }

    #[test]
    fn disassembly_names_arch_syscalls_and_targets() {
        let prog = [
            LD_ARCH,
            Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 0xc000_003e, 0, 3),
            LD_NR,
            Insn::jump(BPF_JMP | BPF_JEQ | BPF_K, 435, 0, 1),
            Insn::stmt(BPF_RET | BPF_K, RET_ALLOW),
            Insn::stmt(BPF_RET | BPF_K, RET_ERRNO | 38),
        ];
        let names = |a: u32, nr: u32| (a == 0xc000_003e && nr == 435).then(|| "clone3".into());
        let ann = |_a: u32, nr: u32| (nr == 435).then(|| "syscalls[0]".to_string());
        let text = disassemble(&prog, &names, &ann, &|pc| (pc == 0).then(|| "start".into()));
        assert!(text.contains("; ---- start"), "{text}");
        assert!(text.contains("AUDIT_ARCH_X86_64"), "{text}");
        assert!(text.contains("jt 4     jf 5"), "{text}");
        assert!(text.contains("; clone3  ← syscalls[0]"), "{text}");
        assert!(text.contains("ERRNO 38 (ENOSYS)"), "{text}");
        assert!(text.contains("[0]") && text.contains("; nr"), "{text}");
    }
}
