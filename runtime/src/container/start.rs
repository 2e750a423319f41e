//! `start`: release init from exec.fifo; plus the hook runner.

use super::Container;
use crate::spec::Hook;
use crate::state::{Root, Status};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let state_json = c.state.oci_json(&c.dir);
    drop(c);
    if let Err(e) = run_hooks("poststart", &hooks.poststart, &state_json) {
        crate::log::warn(&format!("{e:#}"));
    }
    Ok(())
}

/// Run hooks in order, each with the container state on stdin, its own
/// env and optional timeout (seconds). The first failure stops the list.
pub fn run_hooks(kind: &str, hooks: &[Hook], state: &serde_json::Value) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_hook(h, state).with_context(|| format!("hooks.{kind}[{i}] ({})", h.path.display()))?;
    }
    Ok(())
}

fn run_hook(h: &Hook, state: &serde_json::Value) -> Result<()> {
    let mut cmd = Command::new(&h.path);
    if let Some((argv0, rest)) = h.args.split_first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in &h.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state.to_string().as_bytes());
    }
    let deadline = h
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("exited with {status}: {}", err.trim());
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {} s", h.timeout.unwrap_or(0));
        }
        if let Some(i) = super::wait::interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(i.into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
