//! The runtime ↔ stage 1 / init channel: a SOCK_SEQPACKET socket pair,
//! one JSON message per packet. When the runtime dies, its end closes and
//! every blocking `recv` in the children returns EOF, so a `kill -9` of
//! `create` never leaves a half-built container waiting forever.

use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// child → runtime: your turn — do the next run of runtime steps
    /// (cgroup, id maps, runtime hooks) and say `Go`.
    RuntimeTurn { pid: i32 },
    /// runtime → child: go on. Carries the container state once known,
    /// for the hooks init runs. The runtime only ever *answers* a waiting
    /// child, so a child that fails never leaves a message unread (a unix
    /// socket closed with unread data resets the connection and the
    /// runtime would lose the child's error).
    Go { state: Option<String> },
    /// stage 1 → runtime: init was forked with this (host) pid.
    InitPid { pid: i32 },
    /// init → runtime: the seccomp listener is fd `fd` in init; the
    /// runtime copies it out (pidfd_getfd), gives it to the agent, says Go.
    SeccompFd { fd: i32 },
    /// init → runtime: everything but exec is done.
    Created,
    /// child → runtime: a step failed. `errno` (0 if none) and `kind` let
    /// the runtime choose exit codes without reading `msg`.
    Error {
        msg: String,
        #[serde(default)]
        errno: i32,
        #[serde(default)]
        kind: crate::error::ChildFailure,
    },
}

pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair: (runtime end, child end).
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let mut fds = [0; 2];
        // SAFETY: socketpair fills the array with two new fds we then own.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if r != 0 {
            return Err(crate::sys::last("socketpair"));
        }
        // SAFETY: both fds are fresh and owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, m: &Msg) -> io::Result<()> {
        let data = serde_json::to_vec(m).map_err(io::Error::other)?;
        // SAFETY: writing our own buffer to an fd we own.
        let n = unsafe { libc::write(self.raw(), data.as_ptr().cast(), data.len()) };
        if n < 0 {
            return Err(crate::sys::last("write to the sync socket"));
        }
        Ok(())
    }

    /// The next message; `Err(UnexpectedEof)` when the other side is gone.
    pub fn recv(&self) -> io::Result<Msg> {
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: reading into our own buffer from an fd we own.
            let n = unsafe { libc::read(self.raw(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(crate::sys::err("read from the sync socket", e));
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the other side of the sync socket is gone",
                ));
            }
            return serde_json::from_slice(&buf[..n as usize]).map_err(io::Error::other);
        }
    }

    /// Read and drop whatever the runtime sent that we did not read. A unix
    /// socket closed with unread data resets the connection, and the
    /// runtime would get ECONNRESET instead of our last message.
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: a non-blocking read into a live buffer.
            let n = unsafe {
                libc::recv(
                    self.raw(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return;
            }
        }
    }

    /// Wait for `Go`, keeping the state it carries.
    pub fn expect_go(&self, state: &mut Option<String>) -> io::Result<()> {
        match self.recv()? {
            Msg::Go { state: Some(st) } => {
                *state = Some(st);
                Ok(())
            }
            Msg::Go { state: None } => Ok(()),
            other => Err(io::Error::other(format!("unexpected message {other:?}"))),
        }
    }
}
