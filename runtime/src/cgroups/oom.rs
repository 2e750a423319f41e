//! OOM notifications for `berth events`: runc prints `{"type":"oom"}` when
//! the kernel's OOM killer acts in the container's memory cgroup.
//!
//! Two ways to notice, both offered:
//! - [`Cgroup::oom_events`] reads the counters (`oom`, `oom_kill`), from
//!   memory.oom_control on v1 (Linux ≥ 4.13 has `oom_kill` there) or
//!   memory.events on v2; an events loop compares them between ticks.
//! - [`OomWatcher`] gives a file descriptor that becomes readable when
//!   something happens (v1: an eventfd registered through
//!   cgroup.event_control, as runc does; v2: inotify on memory.events), so
//!   the loop can poll(2) it with its timer and report at once.

use super::{errno_text, read_kv, Cgroup, Placement, Result};
use anyhow::anyhow;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// The memory controller's OOM counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomCounters {
    /// times the cgroup hit its limit and the OOM path ran
    pub oom: u64,
    /// processes the OOM killer killed
    pub oom_kill: u64,
}

pub(super) fn counters(cg: &Cgroup) -> Result<OomCounters> {
    match cg.placement("memory") {
        Some(Placement::V1(d)) => {
            // v1 has no plain "oom" counter; under_oom is a state. Count kills.
            let kv = read_kv(&d, "memory.oom_control")?;
            let kills = kv.get("oom_kill").copied().unwrap_or(0);
            Ok(OomCounters {
                oom: kills,
                oom_kill: kills,
            })
        }
        Some(Placement::V2(d)) => {
            let kv = read_kv(&d, "memory.events")?;
            Ok(OomCounters {
                oom: kv.get("oom").copied().unwrap_or(0),
                oom_kill: kv.get("oom_kill").copied().unwrap_or(0),
            })
        }
        None => Err(anyhow!(
            "OOM events: the memory cgroup controller is not available on this host"
        )),
    }
}

/// A pollable fd that turns readable on OOM activity in one cgroup.
pub struct OomWatcher {
    fd: OwnedFd,
    /// v1: the memory.oom_control file must stay open while registered
    _control: Option<File>,
    last: OomCounters,
    cgroup: Cgroup,
}

impl OomWatcher {
    /// Start watching `cg`'s memory controller.
    pub fn new(cg: &Cgroup) -> Result<OomWatcher> {
        let last = counters(cg)?;
        match cg.placement("memory") {
            Some(Placement::V1(d)) => {
                // SAFETY: eventfd has no memory-safety preconditions.
                let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
                if efd < 0 {
                    return Err(anyhow!(
                        "eventfd: {}",
                        errno_text(&std::io::Error::last_os_error())
                    ));
                }
                // SAFETY: a new fd that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(efd) };
                let control_path = d.join("memory.oom_control");
                let control = File::open(&control_path).map_err(|e| {
                    anyhow!("opening {}: {}", control_path.display(), errno_text(&e))
                })?;
                let line = format!("{} {}", fd.as_raw_fd(), control.as_raw_fd());
                super::write_field("events", &d, "cgroup.event_control", &line)?;
                Ok(OomWatcher {
                    fd,
                    _control: Some(control),
                    last,
                    cgroup: cg.clone(),
                })
            }
            Some(Placement::V2(d)) => {
                // SAFETY: inotify_init1 has no memory-safety preconditions.
                let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
                if ifd < 0 {
                    return Err(anyhow!(
                        "inotify_init1: {}",
                        errno_text(&std::io::Error::last_os_error())
                    ));
                }
                // SAFETY: a new fd that nothing else owns.
                let fd = unsafe { OwnedFd::from_raw_fd(ifd) };
                let path = d.join("memory.events");
                let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
                // SAFETY: valid fd and NUL-terminated path alive for the call.
                if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) }
                    < 0
                {
                    return Err(anyhow!(
                        "watching {}: {}",
                        path.display(),
                        errno_text(&std::io::Error::last_os_error())
                    ));
                }
                Ok(OomWatcher {
                    fd,
                    _control: None,
                    last,
                    cgroup: cg.clone(),
                })
            }
            None => Err(anyhow!(
                "OOM events: the memory cgroup controller is not available on this host"
            )),
        }
    }

    /// Wait up to `timeout` for OOM activity; returns the number of new OOM
    /// kills (0 on timeout). An `events` loop calls this with the time left
    /// until its next stats tick, prints `{"type":"oom"}` when it is > 0,
    /// and calls again.
    pub fn wait(&mut self, timeout: Duration) -> Result<u64> {
        let mut fds = [libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd in a live array of length 1.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(anyhow!("waiting for OOM events: poll: {}", errno_text(&e)));
            }
        }
        self.check()
    }

    /// Drain the fd and say how many new OOM kills happened since the last
    /// call (0 when the fd woke for another memory event). Call when the fd
    /// is readable, or on every tick.
    pub fn check(&mut self) -> Result<u64> {
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer of the given length; the fd is non-blocking.
        while unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        let now = counters(&self.cgroup)?;
        let new = now
            .oom_kill
            .saturating_sub(self.last.oom_kill)
            .max(now.oom.saturating_sub(self.last.oom));
        self.last = now;
        Ok(new)
    }
}

impl AsRawFd for OomWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
