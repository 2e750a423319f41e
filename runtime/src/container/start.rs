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
        std::thread::sleep(Duration::from_millis(5));
    }
}
