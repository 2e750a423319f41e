//! `start`: release init from exec.fifo, then run the poststart hooks.

use super::Container;
use crate::state::{Root, Status};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::AsRawFd;

pub fn start(root: &Root, id: &str) -> Result<()> {
    let mut c = Container::load_locked(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Creating => bail!("cannot start a container that is still being created"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
    }
    let fifo = c.dir.join("exec.fifo");
    // Non-blocking open: if init died, a blocking open would wait forever.
    let fd = crate::sys::open(&fifo, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    let init = c
        .state
        .record
        .init
        .ok_or_else(|| anyhow!("container has no init process"))?;
    loop {
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a live buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        if !init.alive() {
            bail!("container init exited before start");
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one live pollfd.
        unsafe { libc::poll(&mut pfd, 1, 50) };
    }
    std::fs::remove_file(&fifo).with_context(|| format!("removing {}", fifo.display()))?;
    c.state.status = Status::Running;
    c.state.save(&c.dir)?;
    let hooks = c.state.record.hooks.clone().unwrap_or_default();
    let mut state_json = c.state.oci_json(&c.dir);
    // The program may already have exited; poststart hooks still see the
    // container as it was started: running, with init's pid.
    state_json["pid"] = init.pid.into();
    drop(c);
    crate::hooks::run_warn(crate::hooks::Kind::Poststart, &hooks.poststart, &state_json);
    Ok(())
}
