//! Foreground `run`: forward signals to init and return its exit status.

use anyhow::Result;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// A signal that ended a foreground `run` before its container ran: the
/// create was undone, and berth exits 128+N like a process killed by it.
#[derive(Debug)]
pub struct Interrupted(pub Signal);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {} before the container ran", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// The signalfd of [`watch_for_abort`], with the pid that made it (a
/// forked stage 1 or init holds a copy of this static, and must not act on it).
static ABORT: OnceLock<(u32, SignalFd)> = OnceLock::new();

/// The signals that abort a foreground `run` still creating: the ones sent
/// to stop a process (SIGHUP, SIGINT, SIGQUIT, SIGTERM) and the other
/// asynchronous ones whose default action would have ended berth. Not
/// SIGPIPE: berth raises it itself when a hook leaves its stdin unread.
fn abort_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
    ] {
        set.add(s);
    }
    set
}

/// For a foreground `run`, after [`block_forwarded_signals`]: until the
/// container runs, a terminating signal (SIGTERM, SIGINT, …) is not
/// forwarded but aborts the create (see [`interrupted`], [`abort_fd`]).
pub fn watch_for_abort() -> Result<()> {
    let fd = SignalFd::with_flags(&abort_set(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let _ = ABORT.set((std::process::id(), fd));
    Ok(())
}

/// Set once the container program is released: signals are forwarded now.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// The container runs: from now on signals are no longer an abort (they
/// stay pending for [`wait_forwarding`]).
pub fn container_runs() {
    RUNNING.store(true, Ordering::SeqCst);
}

/// The abort signalfd, in the process that made it only, until the container runs.
fn abort_fd_here() -> Option<&'static SignalFd> {
    if RUNNING.load(Ordering::SeqCst) {
        return None;
    }
    ABORT
        .get()
        .filter(|(pid, _)| *pid == std::process::id())
        .map(|(_, fd)| fd)
}

/// A pollable fd that becomes readable when an abort signal is pending
/// (None unless this process is a foreground `run`).
pub fn abort_fd() -> Option<RawFd> {
    abort_fd_here().map(|fd| fd.as_raw_fd())
}

/// The abort signal taken from the signalfd, kept so every later check
/// (and `run`'s exit code) still sees it.
static GOT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Has an abort signal arrived? Takes it (so it is not forwarded later).
pub fn interrupted() -> Option<Interrupted> {
    if let Some(i) = was_interrupted() {
        return Some(i);
    }
    let info = abort_fd_here()?.read_signal().ok()??;
    GOT.store(info.ssi_signo as i32, Ordering::SeqCst);
    was_interrupted()
}

/// The abort signal this process already took, if any.
pub fn was_interrupted() -> Option<Interrupted> {
    Signal::try_from(GOT.load(Ordering::SeqCst))
        .ok()
        .map(Interrupted)
}

/// `Err(Interrupted)` if an abort signal has arrived.
pub fn check_interrupted() -> Result<()> {
    match interrupted() {
        Some(i) => Err(i.into()),
        None => Ok(()),
    }
}

/// Block every signal berth forwards (all but SIGKILL/SIGSTOP); returns the set.
pub fn block_forwarded_signals() -> Result<SigSet> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    set.thread_block()?;
    Ok(set)
}

/// Wait for `pid` (a child of ours), forwarding every signal we receive to
/// it, like runc's signal handler. Returns the exit code, 128+N when killed.
pub fn wait_forwarding(pid: i32) -> Result<i32> {
    let set = block_forwarded_signals()?;
    let child = Pid::from_raw(pid);
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => return Ok(255),
            Err(e) => return Err(e.into()),
        }
        let sig = set.wait()?;
        match sig {
            Signal::SIGCHLD | Signal::SIGWINCH | Signal::SIGURG => {}
            other => {
                let _ = nix::sys::signal::kill(child, other);
            }
        }
    }
}
