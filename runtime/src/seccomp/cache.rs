//! A file cache of compiled programs, keyed by profile hash.
//!
//! Measured (release build, this machine): libseccomp needs ~20 ms to build
//! and export Docker-sized profiles for three arches; a cache hit (hash the
//! profile, read one small file) takes well under a millisecond. crun caches
//! for the same reason (`seccomp.c`, by checksum). The key covers everything
//! the output depends on: the profile, the context decisions (runc mode,
//! CAP_SYS_ADMIN, own user namespace), the native arch, berth's and
//! libseccomp's versions. Entries are written atomically (tmp + rename), so
//! concurrent `create`s at worst compile twice.

use super::compile::{self, ENOSYS_ANNOTATION};
use super::{bpf, Context, Program};
use crate::spec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bump when the entry format or the compiler's output changes meaning.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    stub_len: usize,
    flags: u32,
    optional_flags: u32,
    notify: bool,
    guard_user_namespaces: bool,
    summary: String,
    /// The program, hex-encoded `struct sock_filter[]`.
    bpf: String,
}

/// The cache key for (profile, ctx), as a hex SHA-256.
pub fn key(p: &spec::Seccomp, ctx: &Context) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT.to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION"));
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        h.update(format!("libseccomp {}.{}.{}", v.major, v.minor, v.micro));
    }
    h.update(format!("{:?}", libseccomp::ScmpArch::native()));
    h.update(serde_json::to_vec(p).unwrap_or_default());
    let sys_admin = ctx.caps.iter().any(|c| c == "CAP_SYS_ADMIN");
    let mode = ctx
        .annotations
        .get(ENOSYS_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    h.update(format!("|{sys_admin}|{}|{mode}", ctx.own_userns));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

/// Read a cached program, if present and intact.
pub fn get(dir: &Path, key: &str, p: &spec::Seccomp) -> Option<Program> {
    let text = std::fs::read(path(dir, key)).ok()?;
    let e: Entry = serde_json::from_slice(&text).ok()?;
    if e.format != FORMAT || !e.bpf.len().is_multiple_of(16) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..e.bpf.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&e.bpf[i..i + 2], 16).ok())
        .collect();
    let insns = bpf::parse(&bytes?).ok()?;
    Some(Program {
        insns,
        stub_len: e.stub_len,
        flags: e.flags,
        optional_flags: e.optional_flags,
        notify: e.notify,
        listener_path: p.listener_path.clone(),
        listener_metadata: p.listener_metadata.clone(),
        guard_user_namespaces: e.guard_user_namespaces,
        summary: e.summary,
    })
}

/// Store a program (best effort: a cache that cannot be written is no error).
pub fn put(dir: &Path, key: &str, prog: &Program) {
    let e = Entry {
        format: FORMAT,
        stub_len: prog.stub_len,
        flags: prog.flags,
        optional_flags: prog.optional_flags,
        notify: prog.notify,
        guard_user_namespaces: prog.guard_user_namespaces,
        summary: prog.summary.clone(),
        bpf: prog.to_bytes().iter().map(|b| format!("{b:02x}")).collect(),
    };
    let Ok(json) = serde_json::to_vec(&e) else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, path(dir, key)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Compile through the cache in `dir`.
pub fn compile_cached(
    p: &spec::Seccomp,
    ctx: &Context,
    dir: &Path,
) -> Result<Option<Program>, spec::SpecError> {
    if p.default_action.is_empty() && p.syscalls.is_empty() {
        return Ok(None);
    }
    let k = key(p, ctx);
    if let Some(prog) = get(dir, &k, p) {
        return Ok(Some(prog));
    }
    let prog = compile::build(p, ctx, "linux.seccomp.")?.map(|b| b.program);
    if let Some(prog) = &prog {
        put(dir, &k, prog);
    }
    Ok(prog)
}
