//! Foreground `run`: forward signals to init and return its exit status.

use anyhow::Result;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

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
