//! [`RuntimeStep::OpenMountSources`](crate::plan::RuntimeStep::OpenMountSources): open
//! the bind-mount sources for a container in a user namespace.
//!
//! Init runs as the container's root, which is not the host's: a source
//! under a directory only host root may search (`chmod 700`) cannot be
//! opened by init. The runtime is host root, so it opens every bind source
//! with O_PATH for init and passes the fds over the sync socket
//! (SCM_RIGHTS); init then binds `/proc/self/fd/N`, which needs no search
//! permission on the way. runc 1.1 does the same (nsexec's
//! `send_mountsources`, `_LIBCONTAINER_MOUNT_FDS`).
//!
//! The fds are opened *inside the container's mount namespace* (that of
//! stage 1, which has just unshared it and waits): a bind mount's source
//! must be a mount of the caller's own namespace, so an fd opened in the
//! host's would be refused there. `setns(CLONE_NEWNS)` also moves the
//! caller's root and cwd, so a short-lived fork of the runtime does it, and
//! the runtime itself never leaves the host's mount namespace.

use crate::init::channel::FDS_PER_MSG;
use crate::init::{Channel, Msg};
use crate::plan::MountSource;
use crate::sys;
use anyhow::{anyhow, bail, Result};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

/// Open each source in the mount namespace of `stage1` and send the fds to
/// it on `ch` (the runtime's end), in [`Msg::MountSources`] packets of at
/// most [`FDS_PER_MSG`]. Stage 1 is waiting for `Go`; the caller says it.
pub fn send(ch: &Channel, stage1: i32, sources: &[MountSource]) -> Result<()> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| anyhow!("pipe for the mount-source helper: {e}"))?;
    let (mut err_r, err_w) = (std::fs::File::from(r), std::fs::File::from(w));
    let pid = sys::fork()?;
    if pid == 0 {
        drop(err_r);
        let code = match open_and_send(ch, stage1, sources) {
            Ok(()) => 0,
            Err(e) => {
                let mut w = err_w;
                let _ = w.write_all(format!("{e:#}").as_bytes());
                1
            }
        };
        // SAFETY: _exit skips the destructors and atexit handlers, which
        // belong to the runtime process this one was forked from.
        unsafe { libc::_exit(code) }
    }
    drop(err_w);
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .map_err(|e| anyhow!("waiting for the mount-source helper (pid {pid}): {e}"))?;
    let mut msg = String::new();
    let _ = err_r.read_to_string(&mut msg);
    match status {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        _ if !msg.is_empty() => bail!("{msg}"),
        other => bail!("the helper opening bind-mount sources ended: {other:?}"),
    }
}

/// The helper's work, after fork.
fn open_and_send(ch: &Channel, stage1: i32, sources: &[MountSource]) -> Result<()> {
    let ns = format!("/proc/{stage1}/ns/mnt");
    let nsfd = sys::open(std::path::Path::new(&ns), libc::O_RDONLY, 0)?;
    sys::setns(
        nsfd.as_raw_fd(),
        libc::CLONE_NEWNS,
        "the container's mount namespace",
    )?;
    for chunk in sources.chunks(FDS_PER_MSG) {
        let fds = chunk
            .iter()
            .map(|s| {
                // Follows symlinks, like a bind of the path would (runc too).
                sys::open(&s.source, libc::O_PATH, 0).map_err(|e| {
                    anyhow!(
                        "mounts[{}].source: {} (opened as host root in the container's mount namespace): {e}",
                        s.index,
                        s.source.display()
                    )
                })
            })
            .collect::<Result<Vec<OwnedFd>>>()?;
        let raws: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let indexes = chunk.iter().map(|s| s.index).collect();
        ch.send_with_fds(&Msg::MountSources { indexes }, &raws)
            .map_err(|e| anyhow!("passing bind-mount sources to stage 1: {e}"))?;
    }
    Ok(())
}
