//! The runtime ↔ stage 1 / init channel: a SOCK_SEQPACKET socket pair,
//! one JSON message per packet. When the runtime dies, its end closes and
//! every blocking `recv` in the children returns EOF, so a `kill -9` of
//! `create` never leaves a half-built container waiting forever.
//!
//! No message is ever lost to a size limit: a packet cannot be larger than
//! the socket's send buffer (~200 KiB), and the container state carried by
//! `Go` holds `annotations`, which may be megabytes. A message longer than
//! [`INLINE_MAX`] travels in a memfd attached to its packet
//! (SCM_RIGHTS), and the packet body is only [`IN_MEMFD`]. Either way one
//! message is one packet, so the protocol stays one answer per question.
//! (A reader that uses plain read(2), like init's seccomp hand-off, gets the
//! marker and the kernel closes the attached fd for it.)

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Messages up to this many bytes go inline in their packet.
pub const INLINE_MAX: usize = 32 * 1024;
/// The body of a packet whose message is in the attached memfd.
pub const IN_MEMFD: &[u8] = b"@memfd";
/// The receive buffer: larger than any inline message, so a packet is
/// never cut short (a truncated packet is reported, never parsed).
const RECV_BUF: usize = 2 * INLINE_MAX;
/// At most this many fds travel with one packet (the kernel's limit is 253).
pub const FDS_PER_MSG: usize = 64;

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
    /// runtime → stage 1, before `Go`: O_PATH fds of the bind sources of
    /// these `mounts[]` indexes are attached, in this order
    /// ([`crate::plan::RuntimeStep::OpenMountSources`]). The channel keeps them
    /// for init ([`Channel::take_mount_source`]).
    MountSources { indexes: Vec<usize> },
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
    /// Bind-mount sources received with [`Msg::MountSources`], by
    /// `mounts[]` index. Stage 1 receives them; init, its fork, uses them.
    mount_sources: RefCell<Vec<(usize, OwnedFd)>>,
}

/// What [`Channel::recv_watching`] saw first.
#[derive(Debug)]
pub enum Received {
    Msg(Msg),
    /// The watched process at this index exited with nothing left to read.
    Died(usize),
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
        let new = |fd| Channel {
            fd,
            mount_sources: RefCell::new(Vec::new()),
        };
        Ok((new(a), new(b)))
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Send one message (any size). MSG_NOSIGNAL: a peer that is gone is an
    /// EPIPE error here, never a SIGPIPE (which `berth run` would otherwise
    /// hold pending and forward to the container).
    pub fn send(&self, m: &Msg) -> io::Result<()> {
        let data = serde_json::to_vec(m).map_err(io::Error::other)?;
        if data.len() <= INLINE_MAX {
            // SAFETY: sending our own buffer on an fd we own.
            let n = unsafe {
                libc::send(
                    self.raw(),
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                return Err(crate::sys::last("write to the sync socket"));
            }
            return Ok(());
        }
        let memfd = memfd_with(&data)?;
        self.send_bytes_and_fds(IN_MEMFD, &[memfd.as_raw_fd()])
            .map_err(|e| {
                crate::sys::err(
                    format_args!("write a {}-byte message to the sync socket", data.len()),
                    e.into(),
                )
            })?;
        Ok(())
    }

    /// Send one small message with `fds` attached (at most [`FDS_PER_MSG`]).
    pub fn send_with_fds(&self, m: &Msg, fds: &[RawFd]) -> io::Result<()> {
        let data = serde_json::to_vec(m).map_err(io::Error::other)?;
        if data.len() > INLINE_MAX || fds.len() > FDS_PER_MSG {
            return Err(io::Error::other(format!(
                "a message with {} fds must be under {INLINE_MAX} bytes and {FDS_PER_MSG} fds",
                fds.len()
            )));
        }
        self.send_bytes_and_fds(&data, fds)
            .map_err(|e| crate::sys::err("write fds to the sync socket", e.into()))?;
        Ok(())
    }

    /// One sendmsg of `data` with `fds` attached (SCM_RIGHTS); no SIGPIPE if the peer is gone.
    fn send_bytes_and_fds(&self, data: &[u8], fds: &[RawFd]) -> nix::Result<usize> {
        let iov = [io::IoSlice::new(data)];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(fds)];
        nix::sys::socket::sendmsg::<()>(
            self.raw(),
            &iov,
            &cmsg,
            nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            None,
        )
    }

    /// The bind source of `mounts[index]` if the runtime opened it
    /// ([`Msg::MountSources`]); it is closed when the caller drops it.
    pub fn take_mount_source(&self, index: usize) -> Option<OwnedFd> {
        let mut v = self.mount_sources.borrow_mut();
        let i = v.iter().position(|(j, _)| *j == index)?;
        Some(v.swap_remove(i).1)
    }

    /// The next message; `Err(UnexpectedEof)` when the other side is gone.
    pub fn recv(&self) -> io::Result<Msg> {
        self.recv_flags(libc::MSG_CMSG_CLOEXEC)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the other side of the sync socket is gone",
            )
        })
    }

    /// A message already queued, without blocking (None if there is none,
    /// or the other side is gone).
    pub fn try_recv(&self) -> io::Result<Option<Msg>> {
        match self.recv_flags(libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            other => other,
        }
    }

    /// The next message, or which of `watch` (pidfds) died first with no
    /// message left to read: a peer that dies never leaves us waiting.
    /// A queued message always wins over a death, so a child's last word
    /// (its `Error`) is read before its exit is noticed.
    pub fn recv_watching(&self, watch: &[RawFd]) -> io::Result<Received> {
        let mut fds = vec![self.raw()];
        fds.extend_from_slice(watch);
        loop {
            let ready = crate::sys::poll_readable(&fds, -1)?;
            if ready[0] {
                return self.recv().map(Received::Msg);
            }
            if let Some(i) = ready[1..].iter().position(|r| *r) {
                // It may have written just before exiting.
                return Ok(match self.try_recv()? {
                    Some(m) => Received::Msg(m),
                    None => Received::Died(i),
                });
            }
        }
    }

    /// One packet: Ok(None) at EOF.
    fn recv_flags(&self, flags: libc::c_int) -> io::Result<Option<Msg>> {
        let mut buf = vec![0u8; RECV_BUF];
        let mut cbuf = nix::cmsg_space!([RawFd; FDS_PER_MSG]);
        let (n, truncated, mut fds) = loop {
            let mut iov = [io::IoSliceMut::new(&mut buf)];
            match nix::sys::socket::recvmsg::<()>(
                self.raw(),
                &mut iov,
                Some(&mut cbuf),
                nix::sys::socket::MsgFlags::from_bits_truncate(flags),
            ) {
                Ok(m) => {
                    let mut fds = Vec::new();
                    for c in m
                        .cmsgs()
                        .map_err(|e| crate::sys::err("recvmsg", e.into()))?
                    {
                        if let nix::sys::socket::ControlMessageOwned::ScmRights(v) = c {
                            // SAFETY: the kernel installed these fds for us.
                            fds.extend(v.iter().map(|&f| unsafe { OwnedFd::from_raw_fd(f) }));
                        }
                    }
                    use nix::sys::socket::MsgFlags;
                    let truncated = m
                        .flags
                        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
                    break (m.bytes, truncated, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(crate::sys::err("read from the sync socket", e.into())),
            }
        };
        if n == 0 && fds.is_empty() {
            return Ok(None);
        }
        if truncated {
            return Err(io::Error::other(format!(
                "a message on the sync socket is longer than {RECV_BUF} bytes and was cut short"
            )));
        }
        let in_memfd = &buf[..n] == IN_MEMFD && fds.len() == 1;
        let body = match fds.pop() {
            Some(fd) if in_memfd => {
                let mut f = std::fs::File::from(fd);
                f.rewind()?;
                let mut data = Vec::new();
                f.read_to_end(&mut data)
                    .map_err(|e| crate::sys::err("read a message from its memfd", e))?;
                data
            }
            Some(fd) => {
                fds.push(fd);
                buf[..n].to_vec()
            }
            None => buf[..n].to_vec(),
        };
        let msg: Msg = serde_json::from_slice(&body).map_err(|e| {
            io::Error::other(format!("a malformed message on the sync socket: {e}"))
        })?;
        match &msg {
            Msg::MountSources { indexes } if indexes.len() == fds.len() => {
                self.mount_sources
                    .borrow_mut()
                    .extend(indexes.iter().copied().zip(fds));
            }
            _ if fds.is_empty() => {}
            _ => {
                return Err(io::Error::other(format!(
                    "{} unexpected fd(s) came with a message on the sync socket",
                    fds.len()
                )))
            }
        }
        Ok(Some(msg))
    }

    /// Read and drop whatever the runtime sent that we did not read. A unix
    /// socket closed with unread data resets the connection, and the
    /// runtime would get ECONNRESET instead of our last message.
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: a non-blocking read into a live buffer (an fd attached
            // to the packet is closed by the kernel: no control buffer).
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

    /// Wait for `Go`, keeping the state it carries (and the fds of any
    /// [`Msg::MountSources`] that come first).
    pub fn expect_go(&self, state: &mut Option<String>) -> io::Result<()> {
        loop {
            match self.recv()? {
                Msg::Go { state: Some(st) } => {
                    *state = Some(st);
                    return Ok(());
                }
                Msg::Go { state: None } => return Ok(()),
                Msg::MountSources { .. } => {}
                other => return Err(io::Error::other(format!("unexpected message {other:?}"))),
            }
        }
    }
}

/// A memfd holding `data`, its offset back at 0.
fn memfd_with(data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: a valid C string and flags; returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"berth-sync-msg".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(crate::sys::last("memfd_create for a large sync message"));
    }
    // SAFETY: a fresh fd owned by nobody else.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(data)
        .map_err(|e| crate::sys::err("write a large sync message to its memfd", e))?;
    f.rewind()?;
    Ok(OwnedFd::from(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_any_size_arrive_whole() {
        let (a, b) = Channel::pair().unwrap();
        for len in [0, 10, INLINE_MAX, INLINE_MAX + 1, 300_000, 10 << 20] {
            let m = Msg::Go {
                state: Some("x".repeat(len)),
            };
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), m, "{len} bytes");
            let e = Msg::Error {
                msg: "e".repeat(len),
                errno: 0,
                kind: Default::default(),
            };
            b.send(&e).unwrap();
            assert_eq!(a.recv().unwrap(), e, "{len} bytes back");
        }
        drop(a);
        assert_eq!(b.recv().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn mount_sources_are_kept_for_init() {
        let (a, b) = Channel::pair().unwrap();
        let files: Vec<std::fs::File> = (0..FDS_PER_MSG + 1)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let raws: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
        let (first, rest) = raws.split_at(FDS_PER_MSG);
        a.send_with_fds(
            &Msg::MountSources {
                indexes: (0..FDS_PER_MSG).collect(),
            },
            first,
        )
        .unwrap();
        a.send_with_fds(&Msg::MountSources { indexes: vec![100] }, rest)
            .unwrap();
        a.send(&Msg::Go { state: None }).unwrap();
        let mut state = None;
        b.expect_go(&mut state).unwrap();
        let fd = b.take_mount_source(100).expect("fd of mounts[100]");
        let st = nix::sys::stat::fstat(&fd).unwrap();
        let null = nix::sys::stat::stat("/dev/null").unwrap();
        assert_eq!((st.st_dev, st.st_ino), (null.st_dev, null.st_ino));
        assert!(b.take_mount_source(100).is_none(), "taken once");
        assert!(b.take_mount_source(FDS_PER_MSG - 1).is_some());
        // fds with a message that carries none are refused, not leaked.
        a.send_with_fds(&Msg::Created, rest).unwrap();
        assert!(b.recv().is_err());
        assert!(a
            .send_with_fds(
                &Msg::MountSources {
                    indexes: vec![0; FDS_PER_MSG + 1]
                },
                &raws
            )
            .is_err());
    }

    #[test]
    fn a_plain_read_gets_the_marker() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Msg::Go {
            state: Some("y".repeat(1 << 20)),
        })
        .unwrap();
        let mut buf = [0u8; 256];
        // SAFETY: reading into a live stack buffer.
        let n = unsafe { libc::read(b.raw(), buf.as_mut_ptr().cast(), buf.len()) };
        assert_eq!(&buf[..n as usize], IN_MEMFD);
    }

    #[test]
    fn a_dead_peer_is_seen_not_waited_for() {
        let (a, b) = Channel::pair().unwrap();
        // SAFETY: the child only exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above.
            unsafe { libc::_exit(0) };
        }
        let pidfd = crate::sys::Pidfd::open(pid).unwrap();
        // `b` stays open here, so without the pidfd this would block forever.
        match a.recv_watching(&[pidfd.raw()]).unwrap() {
            Received::Died(0) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            crate::sys::peek_exit(pid).as_deref(),
            Some("exited with status 0")
        );
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        b.send(&Msg::Created).unwrap();
        match a.recv_watching(&[pidfd.raw()]).unwrap() {
            Received::Msg(Msg::Created) => {}
            other => panic!("{other:?}"),
        }
    }
}
