//! The receiving end of `--console-socket`: a unix listener that gets the pty
//! master from the runtime over SCM_RIGHTS, as containerd's shim and conmon do.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A listening unix socket in a temp dir.
pub struct ConsoleSocket {
    _dir: TempDir,
    path: PathBuf,
    listener: UnixListener,
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleSocket {
    /// Binds `<tempdir>/console.sock`.
    pub fn new() -> ConsoleSocket {
        let dir = tempfile::Builder::new()
            .prefix("berth-itest-console-")
            .tempdir()
            .expect("creating a dir for the console socket");
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).expect("binding the console socket");
        listener
            .set_nonblocking(true)
            .expect("non-blocking console listener");
        ConsoleSocket {
            _dir: dir,
            path,
            listener,
        }
    }

    /// The socket path to pass as `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the runtime's connection and receives the one fd it sends (the pty
    /// master). The runtime connects during `create`, so after a successful `create`
    /// the connection is already queued.
    pub fn receive_pty(&self) -> Pty {
        self.receive().0
    }

    /// [`ConsoleSocket::receive_pty`], also returning the accepted connection: once
    /// the runtime has exited and the container process has exec'd, nothing may
    /// hold its other end ([`ConsoleConn::assert_closed_by_peer`]).
    pub fn receive(&self) -> (Pty, ConsoleConn) {
        let stream = crate::poll_until(
            "the runtime to connect to the console socket",
            crate::PATIENCE,
            || match self.listener.accept() {
                Ok((stream, _)) => Some(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
                Err(e) => panic!("accept on the console socket: {e}"),
            },
        );
        stream
            .set_nonblocking(false)
            .expect("blocking console stream");
        stream
            .set_read_timeout(Some(crate::scaled(crate::PATIENCE)))
            .expect("console stream timeout");
        let pty = Pty {
            file: File::from(receive_fd(&stream)),
        };
        (pty, ConsoleConn(stream))
    }
}

/// The accepted console-socket connection.
pub struct ConsoleConn(UnixStream);

impl ConsoleConn {
    /// Waits (at most [`crate::PATIENCE`]) for EOF: every process on the runtime's
    /// side has closed the socket. A runtime that leaves it open in a helper or in
    /// the container process keeps a console server (recvtty, a shim) waiting.
    #[track_caller]
    pub fn assert_closed_by_peer(&mut self) {
        let mut buf = [0u8; 64];
        match self.0.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("unexpected {n} bytes on the console socket"),
            Err(e) => panic!("the console socket is still open on the runtime's side: {e}"),
        }
    }
}

/// Receives exactly one fd sent with SCM_RIGHTS on `stream`.
fn receive_fd(stream: &UnixStream) -> OwnedFd {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for a handful of fds; runc sends one.
    let mut control = [0u8; 128];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    // SAFETY: msg points at buffers that live until the call returns; MSG_CMSG_CLOEXEC
    // so the received fd does not leak into other tests' children.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(
        n >= 0,
        "recvmsg on the console socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled,
    // bounded by msg.msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return OwnedFd::from_raw_fd(fd);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    panic!("the runtime sent no fd on the console socket ({n} bytes of data)");
}

/// The pty master of a container with `terminal: true`.
pub struct Pty {
    file: File,
}

impl Pty {
    /// Types `text` into the container's terminal.
    pub fn write(&mut self, text: &str) {
        self.file
            .write_all(text.as_bytes())
            .expect("writing to the pty master");
    }

    /// Reads from the terminal until the output contains `needle` (at most
    /// [`crate::PATIENCE`], [`crate::scaled`]); returns everything read.
    pub fn read_until(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + crate::scaled(crate::PATIENCE);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&seen).into_owned();
            if text.contains(needle) {
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && wait_readable(self.file.as_raw_fd(), left),
                "timed out waiting for {needle:?} on the pty; got {text:?}"
            );
            match self.file.read(&mut buf) {
                Ok(0) => panic!("pty closed before {needle:?}; got {text:?}"),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                // EIO: the other side (the container) closed the terminal.
                Err(e) => panic!("reading the pty before {needle:?}: {e}; got {text:?}"),
            }
        }
    }
}

impl Pty {
    /// Reads until the terminal hangs up (EIO: no process holds the pty's other
    /// side any more), at most [`crate::PATIENCE`]; returns everything read.
    #[track_caller]
    pub fn read_to_hangup(&mut self) -> String {
        let deadline = Instant::now() + crate::PATIENCE;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let text = String::from_utf8_lossy(&seen).into_owned();
            assert!(
                !left.is_zero() && wait_readable(self.file.as_raw_fd(), left),
                "the pty never hung up (a process still holds it); got {text:?}"
            );
            match self.file.read(&mut buf) {
                Ok(0) => return text,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => return text,
                Err(e) => panic!("reading the pty: {e}; got {text:?}"),
            }
        }
    }
}

/// poll(2) for readability with a timeout.
fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd on the stack.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    rc > 0
}
