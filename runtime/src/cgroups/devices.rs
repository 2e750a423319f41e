//! Device access control on cgroup v2: there is no `devices` controller;
//! instead an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`, attached
//! to the cgroup with `BPF_CGROUP_DEVICE`, answers each access (mknod,
//! open for read/write) with allow (1) or deny (0).
//!
//! berth compiles the OCI rule list into straight-line eBPF with v1's
//! meaning: the *last* rule that matches decides, and a device no rule
//! matches is allowed (a fresh v1 cgroup inherits its parent's allow-all).
//! So the program checks the rules from last to first and returns at the
//! first match. An access asking for several kinds at once (read+write)
//! is allowed only by an allow rule granting all of them, and denied by
//! a deny rule naming any of them.

use super::Result;
use crate::spec::DeviceRule;
use anyhow::{anyhow, bail};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (see linux/bpf.h / bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const AND64_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH64_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = (access << 16) | type
const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR
const ACC_MKNOD: i32 = 1; // BPF_DEVCG_ACC_MKNOD
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// Registers: r2 = device type, r3 = requested access, r4 = major,
/// r5 = minor, r6 = scratch. r1 holds the context on entry.
fn prologue() -> Vec<Insn> {
    vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),    // r2 = ctx->access_type
        insn(MOV64_X, 3, 2, 0, 0),      // r3 = r2
        insn(AND64_K, 2, 0, 0, 0xffff), // r2 = type
        insn(RSH64_K, 3, 0, 0, 16),     // r3 = access
        insn(LDX_MEM_W, 4, 1, 4, 0),    // r4 = ctx->major
        insn(LDX_MEM_W, 5, 1, 8, 0),    // r5 = ctx->minor
    ]
}

/// Compile `rules` (v1 semantics, see the module comment) to eBPF.
pub fn compile(rules: &[DeviceRule]) -> Result<Vec<Insn>> {
    let mut prog = prologue();
    for (i, r) in rules.iter().enumerate().rev() {
        let field = format!("linux.resources.devices[{i}]");
        let typ = match r.typ.as_deref().unwrap_or("a") {
            "a" => None,
            "c" => Some(DEV_CHAR),
            "b" => Some(DEV_BLOCK),
            t => bail!("{field}.type: unknown device type {t:?} (want a, b or c)"),
        };
        let access = r
            .access_bits()
            .map(|b| b as i32)
            .map_err(|e| anyhow!("{field}.access: {e}"))?;
        if access == 0 {
            // A deny rule naming no known access (runc's `a`) denies nothing.
            continue;
        }
        let num = |n: Option<i64>, what: &str| -> Result<Option<i32>> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) if (0..=i32::MAX as i64).contains(&n) => Ok(Some(n as i32)),
                Some(n) => bail!("{field}.{what}: {n} is not a device number"),
            }
        };
        let (major, minor) = (num(r.major, "major")?, num(r.minor, "minor")?);
        // Each test jumps to the end of this rule's block when it fails;
        // offsets are patched once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut to_patch = Vec::new();
        if let Some(t) = typ {
            to_patch.push(block.len());
            block.push(insn(JNE_K, 2, 0, 0, t));
        }
        if let Some(m) = major {
            to_patch.push(block.len());
            block.push(insn(JNE_K, 4, 0, 0, m));
        }
        if let Some(m) = minor {
            to_patch.push(block.len());
            block.push(insn(JNE_K, 5, 0, 0, m));
        }
        if access != ACC_MKNOD | ACC_READ | ACC_WRITE {
            block.push(insn(MOV64_X, 6, 3, 0, 0));
            to_patch.push(block.len() + 1);
            if r.allow {
                // matches only if every requested bit is granted
                block.push(insn(AND64_K, 6, 0, 0, !access & 0xffff));
                block.push(insn(JNE_K, 6, 0, 0, 0));
            } else {
                // matches if any requested bit is denied
                block.push(insn(AND64_K, 6, 0, 0, access));
                block.push(insn(JEQ_K, 6, 0, 0, 0));
            }
        }
        block.push(insn(MOV64_K, 0, 0, 0, i32::from(r.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        let unconditional = to_patch.is_empty();
        for at in to_patch {
            block[at].off = (len - at - 1) as i16;
        }
        prog.extend(block);
        if unconditional {
            // A catch-all decides everything before it; the verifier
            // refuses unreachable instructions, so stop here.
            return Ok(prog);
        }
    }
    // No rule matched: allowed, as in a fresh v1 cgroup.
    prog.push(insn(MOV64_K, 0, 0, 0, 1));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    Ok(prog)
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The BPF_PROG_LOAD part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The BPF_PROG_ATTACH / DETACH part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The BPF_PROG_QUERY part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised repr(C) prefix of `union
    // bpf_attr` for `cmd`, and we pass its exact size; the kernel zero-checks
    // nothing beyond it and writes only within it (or into buffers the
    // attr points at, which the caller keeps alive for the call).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn privilege_hint(e: &std::io::Error) -> &'static str {
    if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
        "; berth needs CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace to restrict \
         devices on cgroup v2 — a rootless or nested berth cannot, and would give the \
         container every device"
    } else {
        ""
    }
}

/// Load the program for `rules` and attach it to the cgroup2 directory
/// `dir`, then detach the programs berth attached before (an `update` or
/// a re-run of create). New first, old after: there is never a moment
/// without a filter (runc does the same).
pub fn attach_program(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = compile(rules)?;
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let verifier = String::from_utf8_lossy(&log[..log.iter().position(|&b| b == 0).unwrap_or(0)]).trim().to_string();
        let verifier = if verifier.is_empty() { String::new() } else { format!("; verifier says: {verifier}") };
        anyhow!(
            "linux.resources.devices: loading the eBPF device program (BPF_PROG_TYPE_CGROUP_DEVICE) failed: {}{}{verifier}",
            super::errno_text(&e),
            privilege_hint(&e)
        )
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|e| {
        anyhow!(
            "linux.resources.devices: opening {}: {}",
            dir.display(),
            super::errno_text(&e)
        )
    })?;
    let old = query_programs(&cg)?;
    let mut at = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut at).map_err(|e| {
        anyhow!(
            "linux.resources.devices: attaching the eBPF device program to {} (BPF_CGROUP_DEVICE) failed: {}{}",
            dir.display(),
            super::errno_text(&e),
            privilege_hint(&e)
        )
    })?;
    for id in old {
        let mut get = [id, 0u32, 0u32, 0u32]; // prog_id, next_id, open_flags
        let Ok(old_fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut get) else {
            continue; // already gone
        };
        // SAFETY: a new fd from BPF_PROG_GET_FD_BY_ID, owned here.
        let old_fd = unsafe { OwnedFd::from_raw_fd(old_fd as i32) };
        let mut de = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut de).map_err(|e| {
            anyhow!(
                "linux.resources.devices: detaching the old device program {id} from {}: {}",
                dir.display(),
                super::errno_text(&e)
            )
        })?;
    }
    Ok(())
}

/// Ids of the device programs attached directly to the cgroup `cg`.
pub fn query_programs(cg: &std::fs::File) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut q = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut q).map_err(|e| {
        anyhow!("linux.resources.devices: listing the device programs of the cgroup (BPF_PROG_QUERY): {}{}", super::errno_text(&e), privilege_hint(&e))
    })?;
    ids.truncate(q.prog_cnt as usize);
    Ok(ids)
}
