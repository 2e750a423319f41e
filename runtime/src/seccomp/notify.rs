//! Handing the seccomp listener fd to the agent at `listenerPath`, as runc
//! does (`process_linux.go`): the runtime parent takes the fd out of init with
//! `pidfd_getfd` (Linux ≥ 5.6), connects to the AF_UNIX stream socket, sends
//! one "container process state" JSON with the fd in SCM_RIGHTS, and closes.
//!
//! Wiring (runtime core): init calls [`super::Program::load`], writes the
//! returned fd number to the parent (the only syscall between load and
//! hand-off — hence no NOTIFY on `write`), and waits; the parent calls
//! [`take_fd`] then [`send_to_agent`], then lets init continue and close its copy.

use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Copy fd `fd` out of process `pid` (pidfd_open + pidfd_getfd; needs
/// PTRACE_MODE_ATTACH over it, which the runtime parent has).
pub fn take_fd(pid: i32, fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(pid, 0) returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd is a fresh fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd(pidfd, targetfd, 0) returns a new fd (O_CLOEXEC) or -1.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: got is a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(got as RawFd) })
}

/// The OCI "container process state" (runtime-spec config-linux.md §Seccomp):
/// `state` is the container's state object (`status` "creating" for create,
/// "running" for exec).
pub fn process_state(
    pid: i32,
    metadata: Option<&str>,
    state: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.2.0",
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or(""),
        "state": state,
    })
}

/// Connect to `listener_path`, send `msg` with `fd` attached, close.
/// Errors name the socket, as runc's "failed to connect with seccomp agent".
pub fn send_to_agent(
    listener_path: &Path,
    fd: RawFd,
    msg: &serde_json::Value,
) -> Result<(), String> {
    let at = |what: &str, e: nix::Error| {
        format!(
            "linux.seccomp.listenerPath: {what} seccomp agent at {}: {e}",
            listener_path.display()
        )
    };
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| at("creating a socket for", e))?;
    let addr = UnixAddr::new(listener_path).map_err(|e| at("addressing", e))?;
    // "failed to connect with seccomp agent" is runc's text, which runc's
    // test-suite and log scrapers match.
    connect(sock.as_raw_fd(), &addr).map_err(|e| {
        format!(
            "linux.seccomp.listenerPath: failed to connect with seccomp agent at {}: {e}",
            listener_path.display()
        )
    })?;
    let body = serde_json::to_vec(msg).map_err(|e| format!("encoding the process state: {e}"))?;
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&body)],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| at("sending the listener fd to", e))?;
    if sent != body.len() {
        return Err(format!(
            "linux.seccomp.listenerPath: short write to seccomp agent at {} ({sent} of {} bytes)",
            listener_path.display(),
            body.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{recvmsg, ControlMessageOwned};
    use std::io::IoSliceMut;
    use std::os::unix::net::UnixListener;

    #[test]
    fn sends_state_and_fd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let agent = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 4096];
            let mut space = nix::cmsg_space!([RawFd; 1]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                conn.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            )
            .unwrap();
            let fd = match msg.cmsgs().unwrap().next() {
                Some(ControlMessageOwned::ScmRights(f)) => f[0],
                other => panic!("no fd: {other:?}"),
            };
            let n = msg.bytes;
            let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
            // The received fd is the write end of a pipe: prove it works.
            // SAFETY: fd was just received and is ours.
            let f = unsafe { OwnedFd::from_raw_fd(fd) };
            nix::unistd::write(&f, b"ok").unwrap();
            v
        });
        let (r, w) = nix::unistd::pipe().unwrap();
        let state = serde_json::json!({"id": "c1", "status": "creating", "pid": 7});
        send_to_agent(&path, w.as_raw_fd(), &process_state(7, Some("meta"), state)).unwrap();
        drop(w);
        let v = agent.join().unwrap();
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["metadata"], "meta");
        assert_eq!(v["state"]["status"], "creating");
        let mut buf = [0u8; 2];
        nix::unistd::read(&r, &mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    }

    #[test]
    fn missing_agent_names_the_socket() {
        let e = send_to_agent(
            Path::new("/nonexistent/agent.sock"),
            0,
            &serde_json::json!({}),
        )
        .unwrap_err();
        assert!(
            e.starts_with(
                "linux.seccomp.listenerPath: failed to connect with seccomp agent at /nonexistent/agent.sock"
            ),
            "{e}"
        );
    }

    #[test]
    fn take_fd_from_own_process() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let copy = take_fd(std::process::id() as i32, w.as_raw_fd()).unwrap();
        drop(w);
        nix::unistd::write(&copy, b"x").unwrap();
        let mut b = [0u8; 1];
        nix::unistd::read(&r, &mut b).unwrap();
        assert_eq!(&b, b"x");
    }
}
