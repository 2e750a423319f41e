//! `--pidfd-socket` (runc 1.2): hand the client a pidfd of the container's
//! process, so it can wait for and signal exactly that process without pid
//! reuse races. runc's init sends it itself (`setupPidfd`): one message,
//! the text `standard` (create/run) or `setns` (exec), the pidfd in
//! SCM_RIGHTS. berth's runtime sends the same message once the process has
//! finished its setup and waits to exec: it is berth's child and not yet
//! reaped, so the pid cannot have been reused.

use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Connect to the socket before anything is made, so a bad path fails
/// the command early and leaves nothing behind.
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("--pidfd-socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// Send a pidfd of `pid` with runc's message text (`standard` or `setns`).
pub fn send(sock: &OwnedFd, path: &Path, pid: i32, what: &str) -> Result<()> {
    // SAFETY: pidfd_open(pid, 0) returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(crate::sys::last(format_args!("--pidfd-socket: pidfd_open({pid})")).into());
    }
    // SAFETY: a fresh fd that nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    crate::sys::send_fd(sock.as_raw_fd(), what.as_bytes(), pidfd.as_raw_fd())
        .with_context(|| format!("--pidfd-socket {}", path.display()))
}
