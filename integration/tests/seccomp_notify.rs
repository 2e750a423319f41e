//! SCMP_ACT_NOTIFY with a small seccomp agent written here: berth hands the
//! listener fd and the container process state to the agent at `listenerPath`
//! (as runc does), and the agent answers the container's syscalls.

mod seccomp_common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Instant;

use berth_integration::{Container, Runtime, PATIENCE};
use seccomp_common::*;
use serde_json::{json, Value};

/// `SECCOMP_IOCTL_NOTIF_RECV`: `_IOWR('!', 0, struct seccomp_notif)`.
const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
/// `SECCOMP_IOCTL_NOTIF_SEND`: `_IOWR('!', 1, struct seccomp_notif_resp)`.
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;

/// `struct seccomp_data` (linux/seccomp.h).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif`: 80 bytes, the size encoded in the RECV ioctl number.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

/// `struct seccomp_notif_resp`: 24 bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// What the value every notified syscall returns in the container.
const ANSWER: i64 = 4242;

/// What the agent saw: the process state JSONs and each notification
/// (nr, arch, arg0).
struct AgentReport {
    /// One process state per hand-off, in order.
    states: Vec<Value>,
    seen: Vec<(i32, u32, u64)>,
}

/// An agent listening at `<tempdir>/agent.sock` on its own thread. Every wait is
/// bounded by [`PATIENCE`], so a runtime that never connects, or a container that
/// never exits, fails the test instead of hanging it.
struct Agent {
    _dir: tempfile::TempDir,
    path: PathBuf,
    thread: JoinHandle<Result<AgentReport, String>>,
}

impl Agent {
    /// An agent that expects `connections` hand-offs.
    fn start(connections: usize) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("berth-itest-agent-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).expect("binding the agent socket");
        listener.set_nonblocking(true).unwrap();
        let thread = std::thread::spawn(move || serve(listener, connections));
        Agent {
            _dir: dir,
            path,
            thread,
        }
    }

    fn report(self) -> AgentReport {
        self.thread
            .join()
            .expect("the agent thread panicked")
            .unwrap_or_else(|e| panic!("agent: {e}"))
    }
}

/// Accepts `connections` hand-offs from the runtime (one per filtered process it
/// starts: `create`, then each `exec`), receiving state + fd from each, and answers
/// every notification with [`ANSWER`] until no task uses any of the filters.
fn serve(listener: UnixListener, connections: usize) -> Result<AgentReport, String> {
    let patience = berth_integration::scaled(PATIENCE);
    let deadline = Instant::now() + patience;
    let mut states = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut seen = Vec::new();
    while states.len() < connections || !fds.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "after {patience:?}: {} of {connections} hand-offs, {} filter(s) still in use; seen {seen:?}",
                states.len(),
                fds.len()
            ));
        }
        // The listener first (while hand-offs are due), then every listener fd.
        let accepting = states.len() < connections;
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        if accepting {
            pfds.push(libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for fd in &fds {
            pfds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `pfds` is a valid array of pollfd of the given length.
        let rc = unsafe {
            libc::poll(
                pfds.as_mut_ptr(),
                pfds.len() as libc::nfds_t,
                left.as_millis().min(1000) as i32,
            )
        };
        if rc < 0 {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        let (listen, notify) = pfds.split_at(usize::from(accepting));
        if listen
            .first()
            .is_some_and(|p| p.revents & libc::POLLIN != 0)
        {
            let (stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(patience)).unwrap();
            let (data, fd) = receive_state(&stream)?;
            let state: Value = serde_json::from_slice(&data).map_err(|e| {
                format!(
                    "state is not JSON ({e}): {}",
                    String::from_utf8_lossy(&data)
                )
            })?;
            states.push(state);
            fds.push(fd);
        }
        let mut gone = Vec::new();
        for (i, pfd) in notify.iter().enumerate() {
            if pfd.revents & libc::POLLIN != 0 {
                answer(&fds[i], &mut seen)?;
            } else if pfd.revents & libc::POLLHUP != 0 {
                // Every task that used this filter is gone.
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            fds.remove(i);
        }
    }
    Ok(AgentReport { states, seen })
}

/// Receives one notification on `fd` and answers it with [`ANSWER`].
fn answer(fd: &OwnedFd, seen: &mut Vec<(i32, u32, u64)>) -> Result<(), String> {
    // The kernel requires a zeroed struct.
    let mut notif = SeccompNotif::default();
    // SAFETY: RECV writes one seccomp_notif into `notif`, which is repr(C) with
    // the kernel's layout and size (0x50, as the ioctl number says).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV, &mut notif) };
    if rc < 0 {
        // ENOENT: the task died (or was interrupted) before we read it.
        return Ok(());
    }
    seen.push((notif.data.nr, notif.data.arch, notif.data.args[0]));
    let mut resp = SeccompNotifResp {
        id: notif.id,
        val: ANSWER,
        error: 0,
        flags: 0,
    };
    // SAFETY: SEND reads one seccomp_notif_resp (0x18 bytes) from `resp`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOENT) {
            return Err(format!("NOTIF_SEND: {err}"));
        }
    }
    Ok(())
}

/// Reads the process state (data) and the one fd sent with SCM_RIGHTS, then the
/// rest of the data until the runtime closes the connection.
fn receive_state(stream: &UnixStream) -> Result<(Vec<u8>, OwnedFd), String> {
    let mut data = vec![0u8; 64 * 1024];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u8; 128];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len();
    // SAFETY: msg points at buffers that outlive the call.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(format!("recvmsg: {}", std::io::Error::last_os_error()));
    }
    let mut fd = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled,
    // bounded by msg.msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let raw: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let fd = fd.ok_or_else(|| format!("no fd with the state ({n} bytes)"))?;
    data.truncate(n as usize);
    // A runtime may split a large state over several writes; read to EOF.
    let mut rest = Vec::new();
    use std::io::Read;
    let _ = (&*stream).read_to_end(&mut rest);
    data.extend_from_slice(&rest);
    Ok((data, fd))
}

fn notify_profile(listener: &std::path::Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": listener.to_string_lossy(),
        "listenerMetadata": "itest-metadata",
        "syscalls": [ { "names": ["getppid"], "action": "SCMP_ACT_NOTIFY" } ]
    })
}

#[test]
fn notify_agent_gets_fd_and_state_and_answers_syscalls() {
    let agent = Agent::start(1);
    let bundle = busybox_with_profile(notify_profile(&agent.path))
        .sh("printf 'x86_64: '; berth-probe syscall 110 7; \
         printf 'x86: '; berth-probe-32 syscall 64 9");
    let c = Container::new(&Runtime::new(), bundle, "sc_notify");
    let out = c.run();
    out.assert_code(0);
    let report = agent.report();

    // The state, as runc sends it (OCI "container process state").
    assert_eq!(report.states.len(), 1);
    let state = &report.states[0];
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "itest-metadata", "{state}");
    assert_eq!(state["state"]["id"], c.id(), "{state}");
    assert!(state["pid"].as_i64().is_some_and(|p| p > 0), "{state}");

    // The agent's answer is what the container's getppid returned, on both ABIs.
    for tag in ["x86_64", "x86"] {
        let f = tagged(&out.stdout, tag);
        assert_eq!(
            (f["ret"].as_str(), f["errno"].as_str()),
            ("4242", "0"),
            "{tag}:\n{out}"
        );
    }
    // And the agent saw exactly those calls, with their ABI and argument.
    assert!(
        report.seen.contains(&(110, 0xc000_003e, 7)),
        "{:?}",
        report.seen
    );
    assert!(
        report.seen.contains(&(64, 0x4000_0003, 9)),
        "{:?}",
        report.seen
    );
    c.finish();
}

#[test]
fn notify_without_listener_path_fails_create() {
    let mut profile = notify_profile(std::path::Path::new("/unused"));
    profile.as_object_mut().unwrap().remove("listenerPath");
    profile.as_object_mut().unwrap().remove("listenerMetadata");
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(profile),
        "sc_notify_nopath",
    );
    c.create()
        .assert_fails_mentioning(&["linux.seccomp", "listenerPath"]);
    c.assert_no_leftovers();
}

/// No agent listening: create fails naming the field and the socket, with
/// runc's "failed to connect with seccomp agent" (runc's seccomp-notify.bats
/// greps it), and leaves nothing behind.
#[test]
fn notify_without_a_running_agent_fails_create_with_runcs_phrase() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("no-agent.sock");
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(notify_profile(&sock)),
        "sc_notify_noagent",
    );
    c.create().assert_fails_mentioning(&[
        "linux.seccomp.listenerPath",
        "failed to connect with seccomp agent",
        &sock.to_string_lossy(),
    ]);
    c.assert_no_leftovers();
}

/// NOTIFY on `write` is refused before anything is created: the field is
/// named, and runc's phrase is there for runc's test-suite.
#[test]
fn notify_on_write_is_refused_with_runcs_phrase() {
    let mut profile = notify_profile(std::path::Path::new("/unused.sock"));
    profile["syscalls"] = json!([{ "names": ["getppid", "write"], "action": "SCMP_ACT_NOTIFY" }]);
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(profile),
        "sc_notify_write",
    );
    c.create().assert_fails_mentioning(&[
        "linux.seccomp.syscalls[0].names[1]",
        "SCMP_ACT_NOTIFY cannot be used for the write syscall",
    ]);
    c.assert_no_leftovers();
}

#[test]
fn notify_agent_gets_a_listener_for_each_exec() {
    let agent = Agent::start(2);
    let bundle = busybox_with_profile(notify_profile(&agent.path)).args(&["sleep", "100"]);
    let c = Container::new(&Runtime::new(), bundle, "sc_notify_exec");
    c.create_and_start();
    let out = c.invoke(&["exec", c.id(), "berth-probe", "syscall", "110", "5"]);
    out.assert_code(0);
    let f = fields(&out.stdout);
    assert_eq!(
        (f["ret"].as_str(), f["errno"].as_str()),
        ("4242", "0"),
        "{out}"
    );
    c.kill("KILL").assert_ok();
    c.wait_stopped();
    let report = agent.report();
    assert_eq!(report.states.len(), 2);
    for state in &report.states {
        assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
        assert_eq!(state["state"]["id"], c.id(), "{state}");
    }
    assert!(
        report.seen.contains(&(110, 0xc000_003e, 5)),
        "{:?}",
        report.seen
    );
    c.finish();
}
