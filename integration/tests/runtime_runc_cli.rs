//! runc's text and JSON shapes and exit codes, as runc's own suite (v1.1.5
//! tests/integration: help, version, list, events, kill, run, exec, debug
//! .bats) and clients that match text rather than parse JSON check them.

use berth_integration::{Bundle, Container, Output, Runtime, Spawned};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn sleeper(rt: &Runtime, tag: &str) -> Container {
    let c = Container::new(rt, Bundle::busybox().args(&["sleep", "100"]), tag);
    c.create_and_start();
    c
}

#[test]
fn help_is_laid_out_like_runcs() {
    let rt = Runtime::new();
    for flag in ["-h", "--help"] {
        let out = rt.run(&[flag]);
        out.assert_ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], "NAME:", "{out}");
        assert!(
            lines[1].starts_with("   runc - Open Container Initiative runtime"),
            "{out}"
        );
    }
    for cmd in [
        "checkpoint",
        "delete",
        "events",
        "exec",
        "kill",
        "list",
        "run",
        "update",
    ] {
        let out = rt.run(&[cmd, "-h"]);
        out.assert_ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], "NAME:", "{out}");
        assert!(lines[1].starts_with(&format!("   runc {cmd} - ")), "{out}");
    }
    // A help topic that does not exist: runc's words, a non-zero exit.
    let out = rt.run(&["foo", "-h"]);
    out.assert_fails_mentioning(&["No help topic for 'foo'"]);
    // -h after exec's COMMAND belongs to the command, not to berth.
    let c = sleeper(&rt, "help_exec");
    let out = c.invoke(&["exec", c.id(), "sh", "-c", "echo \"$0\"", "-h"]);
    out.assert_ok();
    assert_eq!(out.stdout, "-h\n", "{out}");
    c.finish();
}

#[test]
fn version_lines_are_in_runcs_order() {
    let out = Runtime::new().run(&["-v"]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("runc version 1."), "{out}");
    assert!(lines[1].starts_with("commit: "), "{out}");
    assert!(lines[2].starts_with("spec: 1."), "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with("berth version ")),
        "{out}"
    );
}

#[test]
fn list_and_state_keep_runcs_shapes() {
    let rt = Runtime::private();
    let a = sleeper(&rt, "list_a");
    let b = sleeper(&rt, "list_b");
    let bundle = a.bundle().path_str();

    let out = rt.run(&["list"]);
    out.assert_ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // runc's tabwriter: columns padded to the widest cell + 3, at least 12.
    let header = lines[0];
    assert!(header.starts_with("ID"), "{out}");
    for (col, name) in ["PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .iter()
        .enumerate()
    {
        let at = header
            .find(name)
            .unwrap_or_else(|| panic!("{name} in {header}"));
        assert_eq!(
            &header[at - 3..at],
            "   ",
            "3 spaces before {name} (column {col})"
        );
        for row in &lines[1..] {
            assert_eq!(
                row.as_bytes()[at - 1],
                b' ',
                "column {name} starts at the same offset in every row:\n{out}"
            );
        }
    }
    for (row, c) in lines[1..].iter().zip([&a, &b]) {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields[0], c.id(), "{out}");
        assert_eq!(fields[1], c.pid().to_string(), "{out}");
        assert_eq!(fields[2], "running", "{out}");
        assert_eq!(fields[3], c.bundle().path_str(), "{out}");
    }

    let out = rt.run(&["list", "-q"]);
    out.assert_ok();
    assert_eq!(out.stdout, format!("{}\n{}\n", a.id(), b.id()), "{out}");

    // runc's containerState: keys in its order (runc's suite matches the text).
    let out = rt.run(&["list", "--format", "json"]);
    out.assert_ok();
    let prefix = format!(
        "[{{\"ociVersion\":\"1.2.0\",\"id\":\"{}\",\"pid\":{},\"status\":\"running\",\"bundle\":\"{bundle}\",\"rootfs\":\"",
        a.id(),
        a.pid()
    );
    assert!(out.stdout.starts_with(&prefix), "{out}");
    assert!(out.stdout.contains("\",\"created\":\""), "{out}");
    assert!(
        out.stdout.contains(&format!(
            ",{{\"ociVersion\":\"1.2.0\",\"id\":\"{}\"",
            b.id()
        )),
        "{out}"
    );

    let out = a.invoke(&["state", a.id()]);
    out.assert_ok();
    let keys: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(
        keys,
        [
            "ociVersion",
            "id",
            "pid",
            "status",
            "bundle",
            "rootfs",
            "created",
            "owner"
        ],
        "{out}"
    );
    a.finish();
    b.finish();
}

#[test]
fn events_lines_start_with_type_and_id() {
    let rt = Runtime::new();
    let c = sleeper(&rt, "events_shape");
    let out = c.invoke(&["events", "--stats", c.id()]);
    out.assert_ok();
    let first = out.stdout.lines().next().unwrap_or("");
    let prefix = format!("{{\"type\":\"stats\",\"id\":\"{}\",\"data\":{{", c.id());
    assert!(first.starts_with(&prefix), "{out}");
    // The stream form: the first stats line within the interval, and the
    // stream ends when the container goes.
    let mut ev = Spawned::start(c.command(&["events", "--interval", "100ms", c.id()]));
    ev.wait_stdout(&prefix);
    c.delete_force().assert_ok();
    ev.wait().assert_ok();
    c.assert_no_leftovers();
}

#[test]
fn events_report_oom_like_runc() {
    if let Some(why) = berth_integration::missing_controller("memory") {
        return berth_integration::skip("events_report_oom_like_runc", &why);
    }
    let rt = Runtime::new();
    let bundle = Bundle::busybox().args(&["sleep", "100"]).with(|c| {
        c["linux"]["resources"]["memory"] =
            serde_json::json!({"limit": 33554432, "swap": 33554432});
    });
    let c = Container::new(&rt, bundle, "events_oom");
    c.create_and_start();
    let mut ev = Spawned::start(c.command(&["events", "--interval", "200ms", c.id()]));
    ev.wait_stdout("\"type\":\"stats\"");
    // A memory hog well past the limit (as events.bats does; urandom, as
    // the shell drops the NUL bytes /dev/zero would give).
    c.invoke(&[
        "exec",
        "-d",
        c.id(),
        "sh",
        "-c",
        "x=$(dd if=/dev/urandom bs=1M count=256)",
    ])
    .assert_ok();
    let oom = format!("{{\"type\":\"oom\",\"id\":\"{}\"}}", c.id());
    let out = ev.wait_stdout(&oom);
    assert!(out.lines().any(|l| l == oom), "a line of its own: {out}");
    // `events` ends when the container goes (it names the id, so it would
    // count as a leftover until then).
    c.delete_force().assert_ok();
    ev.wait().assert_ok();
    c.assert_no_leftovers();
}

#[test]
fn kill_accepts_signal_zero() {
    let rt = Runtime::new();
    let c = sleeper(&rt, "kill_zero");
    // 0 checks the process exists, as kill(2) does.
    c.kill("0").assert_ok();
    assert_eq!(c.status(), "running");
    c.kill("KILL").assert_ok();
    c.wait_stopped();
    // kill.bats: --all on a stopped container succeeds.
    c.invoke(&["kill", "-a", c.id(), "0"]).assert_ok();
    c.invoke(&["kill", c.id(), "65"])
        .assert_fails_mentioning(&["65"]);
    c.delete().assert_ok();
    c.assert_no_leftovers();
}

#[test]
fn run_keep_leaves_a_stopped_container_with_its_cgroup() {
    let rt = Runtime::new();
    let c = Container::new(&rt, Bundle::busybox().args(&["echo", "kept"]), "run_keep");
    let out = c.run_with(&["--keep"]);
    out.assert_ok();
    assert_eq!(out.stdout, "kept\n", "{out}");
    assert_eq!(c.status(), "stopped");
    let left = c.leftovers();
    assert!(
        left.lines().iter().any(|l| l.starts_with("cgroup ")),
        "the cgroup is kept: {:?}",
        left.lines()
    );
    c.delete().assert_ok();
    c.invoke(&["state", c.id()])
        .assert_fails_mentioning(&["does not exist"]);
    c.assert_no_leftovers();
}

#[test]
fn exec_exit_codes_are_runcs() {
    let rt = Runtime::new();
    let c = sleeper(&rt, "exec_codes");
    c.invoke(&["exec", c.id(), "false"]).assert_code(1);
    c.invoke(&["exec", c.id(), "sh", "-c", "exit 42"])
        .assert_code(42);
    // A failure of exec itself is 255, told apart from the process's status.
    c.invoke(&[
        "exec",
        "--pid-file",
        "/non-existent/directory",
        c.id(),
        "true",
    ])
    .assert_code(255);
    let out = c.invoke(&["exec", c.id(), "no-such-binary"]);
    out.assert_code(255);
    assert!(out.stderr.contains("no-such-binary"), "{out}");
    c.invoke(&["exec", "no_such_container_x", "true"])
        .assert_code(255)
        .assert_fails_mentioning(&["does not exist"]);
    c.finish();
}

#[test]
fn run_exit_codes_for_a_program_that_cannot_start() {
    let rt = Runtime::new();
    let c = Container::new(
        &rt,
        Bundle::busybox().args(&["/no/such/program"]),
        "run_127",
    );
    let out = c.run();
    out.assert_code(127);
    assert!(out.stderr.contains("/no/such/program"), "{out}");
    c.assert_no_leftovers();
    let c = Container::new(
        &rt,
        Bundle::busybox().args(&["no-such-program"]),
        "run_127b",
    );
    c.run().assert_code(127);
    c.assert_no_leftovers();
    // /etc/passwd exists but is not executable.
    let c = Container::new(&rt, Bundle::busybox().args(&["/etc/passwd"]), "run_126");
    c.run().assert_code(126);
    c.assert_no_leftovers();
    // Any other failure of a step is 1, whatever errno it had.
    let c = Container::new(
        &rt,
        Bundle::busybox()
            .args(&["true"])
            .with(|cfg| cfg["process"]["cwd"] = "/no/such/dir".into()),
        "run_1",
    );
    c.run().assert_code(1);
    c.assert_no_leftovers();
}

/// runc's debug lines (debug.bats, exec.bats check these phrases).
const RUN_DEBUG: [&str; 3] = [
    "nsexec container setup",
    "child process in init()",
    "init: closing the pipe to signal completion",
];

#[test]
fn debug_goes_to_stderr_without_log() {
    let rt = Runtime::new();
    let c = Container::new(
        &rt,
        Bundle::busybox().args(&["echo", "hello"]),
        "debug_stderr",
    );
    let bundle = c.bundle().path_str();
    let out = rt.run(&["--debug", "run", "--bundle", &bundle, c.id()]);
    out.assert_ok();
    assert_eq!(out.stdout, "hello\n", "{out}");
    assert!(out.stderr.contains("level=debug"), "{out}");
    for phrase in RUN_DEBUG {
        assert!(out.stderr.contains(phrase), "{phrase}: {out}");
    }
    c.assert_no_leftovers();
    // Without --debug nothing is said on success.
    let out = rt.run(&["run", "--bundle", &bundle, c.id()]);
    out.assert_ok();
    assert_eq!(out.stderr, "", "{out}");
    c.assert_no_leftovers();
}

#[test]
fn debug_goes_to_the_log_in_either_format() {
    let rt = Runtime::new();
    let c = Container::new(&rt, Bundle::busybox().args(&["echo", "hello"]), "debug_log");
    let bundle = c.bundle().path_str();
    for format in ["text", "json"] {
        let log = c.bundle().path().join(format!("debug.{format}"));
        let log_s = log.to_string_lossy().into_owned();
        let out = rt.run(&[
            "--log",
            &log_s,
            "--log-format",
            format,
            "--debug",
            "run",
            "--bundle",
            &bundle,
            c.id(),
        ]);
        out.assert_ok();
        assert!(!out.text().contains("debug"), "nothing on stdio: {out}");
        let text = std::fs::read_to_string(&log).unwrap();
        for phrase in RUN_DEBUG {
            assert!(text.contains(phrase), "{phrase} in {format} log:\n{text}");
        }
        for line in text.lines() {
            if format == "json" {
                let v: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("JSON line ({e}): {line}"));
                assert_eq!(v["level"], "debug", "{line}");
            } else {
                assert!(
                    line.starts_with("time=\"") && line.contains(" level=debug msg=\""),
                    "{line}"
                );
            }
        }
        c.assert_no_leftovers();
    }
    // exec: setns_init's words (exec.bats "runc --debug --log exec").
    let c = sleeper(&rt, "debug_exec");
    let log = c.bundle().path().join("exec.log");
    let log_s = log.to_string_lossy().into_owned();
    let out = rt.run(&["--debug", "--log", &log_s, "exec", c.id(), "true"]);
    out.assert_ok();
    let text = std::fs::read_to_string(&log).unwrap();
    for phrase in [
        "nsexec container setup",
        "child process in init()",
        "setns_init: about to exec",
    ] {
        assert!(text.contains(phrase), "{phrase}:\n{text}");
    }
    let out = rt.run(&["--debug", "exec", c.id(), "true"]);
    out.assert_ok();
    assert!(out.stderr.contains("setns_init: about to exec"), "{out}");
    c.finish();
}

/// Listens on a unix socket and returns what the first client sends: the
/// message text and the fd (SCM_RIGHTS). Gives up after a while, so a
/// runtime that never connects fails the test instead of hanging it.
fn pidfd_listener(path: &std::path::Path) -> std::thread::JoinHandle<(String, OwnedFd)> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let conn = berth_integration::poll_until(
            "a connection on the --pidfd-socket",
            berth_integration::PATIENCE,
            || listener.accept().ok().map(|(c, _)| c),
        );
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(berth_integration::PATIENCE))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr/iovec point at live local buffers of the given sizes.
        unsafe {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&cbuf);
            let n = libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            assert!(!cmsg.is_null(), "no control message");
            assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
            let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            (
                String::from_utf8_lossy(&buf[..n as usize]).into_owned(),
                OwnedFd::from_raw_fd(fd),
            )
        }
    })
}

/// The pid a pidfd refers to (`Pid:` in its fdinfo).
fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .map(|p| p.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("not a pidfd:\n{info}"))
}

#[test]
fn pidfd_socket_receives_the_process_pidfd() {
    let rt = Runtime::new();
    let c = Container::new(&rt, Bundle::busybox().args(&["sleep", "100"]), "pidfd_sock");
    let sock = c.bundle().path().join("pidfd.sock");
    let got = pidfd_listener(&sock);
    c.create_with(&["--pidfd-socket", &sock.to_string_lossy()])
        .assert_ok();
    let (text, fd) = got.join().unwrap();
    // runc 1.2: "standard" for the container's init.
    assert_eq!(text, "standard");
    assert_eq!(pidfd_pid(&fd), c.pid());

    c.start().assert_ok();
    let sock2 = c.bundle().path().join("pidfd-exec.sock");
    let got = pidfd_listener(&sock2);
    let pid_file = c.bundle().path().join("exec.pid");
    c.invoke(&[
        "exec",
        "-d",
        "--pidfd-socket",
        &sock2.to_string_lossy(),
        "--pid-file",
        &pid_file.to_string_lossy(),
        c.id(),
        "sleep",
        "100",
    ])
    .assert_ok();
    let (text, fd) = got.join().unwrap();
    assert_eq!(text, "setns");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(pidfd_pid(&fd), pid);
    c.finish();

    // A socket nobody listens on: a clear error naming the flag, nothing left.
    let c = Container::new(&rt, Bundle::busybox().args(&["true"]), "pidfd_bad");
    let missing = c.bundle().path().join("nobody.sock");
    let out: Output = c.create_with(&["--pidfd-socket", &missing.to_string_lossy()]);
    out.assert_fails_mentioning(&["--pidfd-socket", "nobody.sock"]);
    c.assert_no_leftovers();
}

/// runc 1.1.5 as Debian ships it (`make deps` installs it).
const RUNC: &str = "/usr/sbin/runc";

/// `<bin> spec [extra]` in a fresh directory: the bytes of config.json.
fn spec_bytes(bin: &str, extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("spec").args(extra).current_dir(dir.path());
    Output::of(cmd).assert_ok();
    std::fs::read(dir.path().join("config.json")).unwrap()
}

#[test]
fn spec_writes_what_runc_spec_writes() {
    // A drop-in's `spec` is runc's, byte for byte (tab indents, Go's field
    // order, no seccomp section: runc's suite relies on that, e.g.
    // no_pivot.bats runs `unshare -mrpf`), but for the spec version berth
    // implements and the hostname.
    assert!(
        std::path::Path::new(RUNC).exists(),
        "{RUNC} missing (make deps installs runc)"
    );
    let berth = berth_integration::berth_bin()
        .to_string_lossy()
        .into_owned();
    for extra in [&[][..], &["--rootless"][..]] {
        let ours = String::from_utf8(spec_bytes(&berth, extra)).unwrap();
        let version: serde_json::Value = serde_json::from_str(&ours).unwrap();
        let version = version["ociVersion"].as_str().unwrap().to_string();
        let runcs = String::from_utf8(spec_bytes(RUNC, extra))
            .unwrap()
            .replacen(
                "\"ociVersion\": \"1.0.2-dev\"",
                &format!("\"ociVersion\": \"{version}\""),
                1,
            )
            .replacen("\"hostname\": \"runc\"", "\"hostname\": \"berth\"", 1);
        assert_eq!(ours, runcs, "spec {extra:?}");
        assert!(!ours.contains("seccomp"), "{ours}");
    }
}

#[test]
fn spec_seccomp_default_adds_berths_profile() {
    let berth = berth_integration::berth_bin()
        .to_string_lossy()
        .into_owned();
    let with: serde_json::Value =
        serde_json::from_slice(&spec_bytes(&berth, &["--seccomp", "default"])).unwrap();
    let profile = &with["linux"]["seccomp"];
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "{profile}");
    assert!(
        profile["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"].as_array().unwrap().iter().any(|n| n == "clone3")),
        "{profile}"
    );
    // Anything else is refused naming the flag, and nothing is written.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(&berth);
    cmd.args(["spec", "--seccomp", "docker"])
        .current_dir(dir.path());
    let out = Output::of(cmd);
    out.assert_fails_mentioning(&["--seccomp", "docker"]);
    assert!(!dir.path().join("config.json").exists());
}
