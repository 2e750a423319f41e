//! `start`: release init from exec.fifo, then run the poststart hooks.

use super::Container;
use crate::state::{Proc, Root, Status};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::AsRawFd;

/// The recorded init as `start` sees it: a pidfd (opened first, then the
/// start time checked, so a recycled pid is never taken for it), running
/// while the pidfd is not readable.
enum Init {
    Running(crate::sys::Pidfd),
    /// How it ended, or why it cannot be found.
    Ended(String),
}

impl Init {
    fn of(init: Option<Proc>) -> Init {
        let Some(p) = init else {
            return Init::Ended("no init process was recorded".into());
        };
        let Ok(fd) = crate::sys::Pidfd::open(p.pid) else {
            return Init::Ended(format!("init pid {} is gone", p.pid));
        };
        if crate::sys::start_time(p.pid) != Some(p.start_time) {
            return Init::Ended(format!("init pid {} is gone (the pid was reused)", p.pid));
        }
        match crate::sys::poll_readable(&[fd.raw()], 0) {
            Ok(r) if r[0] => Init::Ended(match crate::sys::peek_exit(p.pid) {
                // From `run`, init is our child: say how it ended.
                Some(how) => format!("init {how}"),
                None => format!("init pid {} exited", p.pid),
            }),
            _ => Init::Running(fd),
        }
    }
}

pub fn start(root: &Root, id: &str) -> Result<()> {
    let mut c = Container::load_locked(root, id)?;
    let fifo = c.dir.join("exec.fifo");
    let init = Init::of(c.state.record.init);
    let status = match c.status() {
        // The status reads /proc; the pidfd is the kernel's own word on
        // whether init has exited. A created container whose init the pidfd
        // shows running is created, whatever one /proc read said.
        Status::Stopped
            if matches!(init, Init::Running(_))
                && c.state.status == Status::Created
                && fifo.exists() =>
        {
            Status::Created
        }
        s => s,
    };
    match (status, &init) {
        (Status::Created, _) => {}
        (Status::Stopped, Init::Ended(how)) => {
            bail!("cannot start a container that has stopped ({how})")
        }
        (Status::Stopped, Init::Running(_)) => bail!("cannot start a container that has stopped"),
        (Status::Creating, _) => bail!("cannot start a container that is still being created"),
        (Status::Running | Status::Paused, _) => {
            bail!("cannot start an already running container")
        }
    }
    // A foreground `run` interrupted before its container runs aborts. The
    // open below is what releases init, so from there on signals are
    // forwarded to the container instead.
    super::wait::check_interrupted()?;
    // Non-blocking open: if init died, a blocking open would wait forever.
    let fd = crate::sys::open(&fifo, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    super::wait::container_runs();
    let init_pid = c
        .state
        .record
        .init
        .map(|p| p.pid)
        .ok_or_else(|| anyhow!("container has no init process"))?;
    let pidfd = match init {
        Init::Running(fd) => Some(fd),
        Init::Ended(_) => None,
    };
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
    state_json["pid"] = init_pid.into();
    drop(c);
    crate::hooks::run_warn(crate::hooks::Kind::Poststart, &hooks.poststart, &state_json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_judged_by_its_pidfd() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let proc = Proc::of(pid).unwrap();
        assert!(matches!(Init::of(Some(proc)), Init::Running(_)));
        // Another process's start time: never taken for the recorded init.
        let other = Proc {
            pid,
            start_time: proc.start_time + 1,
        };
        match Init::of(Some(other)) {
            Init::Ended(why) => assert!(why.contains("reused"), "{why}"),
            Init::Running(_) => panic!("a recycled pid was taken for init"),
        }
        child.kill().unwrap();
        // Exited but not reaped (a zombie): ended, and how is said.
        let fd = crate::sys::Pidfd::open(pid).unwrap();
        crate::sys::poll_readable(&[fd.raw()], 5000).unwrap();
        match Init::of(Some(proc)) {
            Init::Ended(why) => assert_eq!(why, "init killed by signal 9"),
            Init::Running(_) => panic!("an exited init was taken for running"),
        }
        child.wait().unwrap();
        match Init::of(Some(proc)) {
            Init::Ended(why) => assert!(why.contains("is gone"), "{why}"),
            Init::Running(_) => panic!("a reaped init was taken for running"),
        }
        assert!(matches!(Init::of(None), Init::Ended(_)));
    }
}
