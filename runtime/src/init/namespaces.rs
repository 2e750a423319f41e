//! Stage 1 steps: join namespaces by path, create new ones.

use crate::spec::NsKind;
use crate::sys;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// setns into `fd`, the namespace opened from `path` (named in errors).
pub(super) fn join(kind: NsKind, path: &Path, fd: &std::os::fd::OwnedFd) -> io::Result<()> {
    sys::setns(
        fd.as_raw_fd(),
        kind.clone_flag(),
        &format!("{} {}", kind.name(), path.display()),
    )
}

pub(super) fn unshare(kinds: &[NsKind]) -> io::Result<()> {
    let flags = kinds.iter().fold(0, |f, k| f | k.clone_flag());
    sys::unshare(flags)
}

pub(super) fn become_root() -> io::Result<()> {
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        if libc::setresgid(0, 0, 0) != 0 {
            return Err(sys::last("setresgid 0 (is container gid 0 mapped?)"));
        }
        if libc::setresuid(0, 0, 0) != 0 {
            return Err(sys::last("setresuid 0 (is container uid 0 mapped?)"));
        }
    }
    Ok(())
}

/// Check, on the host before anything is created, that `path` is a
/// namespace of the right kind (NS_GET_NSTYPE), so a bad path fails
/// `create` with a clear message instead of a setns EINVAL deep inside.
pub fn check_ns_path(kind: NsKind, path: &std::path::Path) -> io::Result<()> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703; // _IO(0xb7, 0x3)
    let fd = sys::open(path, libc::O_RDONLY, 0)?;
    // SAFETY: an ioctl without a pointer argument on an fd we hold.
    let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if t < 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a namespace", path.display()),
        ));
    }
    if t != kind.clone_flag() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a {} namespace", path.display(), kind.name()),
        ));
    }
    Ok(())
}
