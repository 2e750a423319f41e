//! `start`: release init from exec.fifo, then run the poststart hooks.

use super::Container;
use crate::state::{Root, Status};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::AsRawFd;

pub fn start(root: &Root, id: &str) -> Result<()> {
    let mut c = Container::load_locked(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => {
            // From `run`, init is our child: say how it ended.
            let how = c
                .state
                .record
                .init
                .and_then(|p| crate::sys::peek_exit(p.pid));
            match how {
                Some(how) => bail!("cannot start a container that has stopped (init {how})"),
                None => bail!("cannot start a container that has stopped"),
            }
        }
        Status::Creating => bail!("cannot start a container that is still being created"),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
    }
    let fifo = c.dir.join("exec.fifo");
    // A foreground `run` interrupted before its container runs aborts. The
    // open below is what releases init, so from there on signals are
    // forwarded to the container instead.
    super::wait::check_interrupted()?;
    // Non-blocking open: if init died, a blocking open would wait forever.
    let fd = crate::sys::open(&fifo, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    super::wait::container_runs();
    let init = c
        .state
        .record
        .init
        .ok_or_else(|| anyhow!("container has no init process"))?;
    // Watch init through a pidfd, opened before the start-time check so
    // it names the recorded process and not a recycled pid.
    let pidfd = crate::sys::Pidfd::open(init.pid)
        .ok()
        .filter(|_| init.alive());
    let read_byte = || {
        let mut b = [0u8; 1];
        // SAFETY: reading one byte into a live buffer.
        unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) == 1 }
    };
    loop {
        if read_byte() {
            break;
        }
        let gone = match &pidfd {
            Some(p) => crate::sys::poll_readable(&[fd.as_raw_fd(), p.raw()], -1)?[1],
            None => true,
        };
        // Init writes its byte, then execs: a short program may have run and
        // exited between our read and now. The byte is still in the fifo
        // (we hold the read end), so look once more before giving up.
        if gone {
            if read_byte() {
                break;
            }
            bail!("container init exited before start");
        }
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
