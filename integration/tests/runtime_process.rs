//! The container's process: signals (`kill`, foreground `run` forwarding), the
//! console socket, capabilities, no_new_privs, rlimits, user/cwd/env/umask, file
//! descriptors.

use std::io::Write;
use std::os::fd::AsRawFd;

use berth_integration::{
    cgroup_file, poll_until, Bundle, ConsoleSocket, Container, Runtime, PATIENCE,
};
use serde_json::json;

/// A shell that reports the signals it traps, then idles. pid 1 of a pid namespace
/// only gets signals it has a handler for, which `trap` installs.
const TRAPPER: &str = "trap 'echo got-USR1' USR1; trap 'echo got-USR2' USR2; \
    trap 'echo got-HUP' HUP; trap 'echo got-TERM; exit 3' TERM; \
    echo ready; while :; do sleep 0.05; done";

#[test]
fn kill_by_number_name_and_sig_name() {
    let c = Container::new(&Runtime::new(), Bundle::busybox().sh(TRAPPER), "kill_forms");
    c.create_and_start();
    c.wait_output("ready");
    // Numbers (containerd, podman), bare names (CRI-O's `kill ID KILL`), SIG names.
    c.kill("10").assert_ok();
    c.wait_output("got-USR1");
    c.kill("USR2").assert_ok();
    c.wait_output("got-USR2");
    c.kill("SIGHUP").assert_ok();
    c.wait_output("got-HUP");
    assert_eq!(c.status(), "running");
    c.kill("KILL").assert_ok();
    c.wait_stopped();
    c.finish();
}

#[test]
fn kill_without_a_signal_sends_sigterm() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh(TRAPPER),
        "kill_default",
    );
    c.create_and_start();
    c.wait_output("ready");
    c.invoke(&["kill", c.id()]).assert_ok();
    c.wait_output("got-TERM");
    c.wait_stopped();
    c.finish();
}

#[test]
fn kill_all_reaches_every_process() {
    let bundle = Bundle::busybox().sh("sleep 100 & sleep 100 & echo ready; wait");
    let c = Container::new(&Runtime::new(), bundle, "kill_all");
    c.create_and_start();
    c.wait_output("ready");
    let procs = cgroup_file(c.pid(), "pids", "cgroup.procs", "cgroup.procs");
    let pids: Vec<i32> = poll_until(
        "three processes in the container's cgroup",
        PATIENCE,
        || {
            let pids: Vec<i32> = std::fs::read_to_string(&procs.host)
                .ok()?
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            (pids.len() == 3).then_some(pids)
        },
    );
    c.invoke(&["kill", "--all", c.id(), "KILL"]).assert_ok();
    c.wait_stopped();
    for pid in pids {
        poll_until(&format!("process {pid} to die"), PATIENCE, || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            (stat.is_empty()
                || stat
                    .rsplit_once(')')
                    .is_some_and(|(_, s)| s.trim_start().starts_with('Z')))
            .then_some(())
        });
    }
    c.finish();
}

#[test]
fn kill_of_a_stopped_container_is_not_running() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "kill_stopped");
    c.create_and_start();
    c.wait_stopped();
    // containerd's checkKillError maps "container not running" to NotFound.
    c.kill("KILL").assert_fails_mentioning(&["not running"]);
    // …while `kill --all` of a stopped container succeeds (kata-containers#5555).
    c.invoke(&["kill", "--all", c.id(), "KILL"]).assert_ok();
    c.finish();
}

#[test]
fn run_forwards_signals_to_the_container() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh(TRAPPER),
        "run_forward",
    );
    let mut run = c.spawn_run(&[]);
    run.wait_stdout("ready");
    run.signal(libc::SIGUSR1);
    run.wait_stdout("got-USR1");
    run.signal(libc::SIGTERM);
    let out = run.wait();
    out.assert_code(3);
    assert!(out.stdout.contains("got-TERM"), "{out}");
    c.finish();
}

#[test]
fn run_exits_128_plus_signal_when_the_container_is_killed() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "run_killed",
    );
    let run = c.spawn_run(&[]);
    poll_until("the container to run", PATIENCE, || {
        let out = c.invoke(&["state", c.id()]);
        (out.success() && out.stdout.contains("\"running\"")).then_some(())
    });
    c.kill("KILL").assert_ok();
    run.wait().assert_code(128 + libc::SIGKILL);
    c.finish();
}

#[test]
fn run_forwarded_sigterm_kills_a_non_init_process() {
    // Without a pid namespace `sleep` is not an init, so the default action of the
    // forwarded SIGTERM applies: run must exit 128 + 15.
    let bundle = Bundle::busybox().args(&["sleep", "100"]).with(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let c = Container::new(&Runtime::new(), bundle, "run_sigterm");
    let run = c.spawn_run(&[]);
    poll_until("the container to run", PATIENCE, || {
        let out = c.invoke(&["state", c.id()]);
        (out.success() && out.stdout.contains("\"running\"")).then_some(())
    });
    run.signal(libc::SIGTERM);
    run.wait().assert_code(128 + libc::SIGTERM);
    c.finish();
}

#[test]
fn console_socket_receives_a_working_pty() {
    let bundle = Bundle::busybox()
        .args(&["sh"])
        .with(|c| c["process"]["terminal"] = true.into());
    let c = Container::new(&Runtime::new(), bundle, "console");
    let socket = ConsoleSocket::new();
    c.create_with(&["--console-socket", &socket.path().to_string_lossy()])
        .assert_ok();
    let mut pty = socket.receive_pty();
    c.start().assert_ok();
    // The shell's output (not the terminal's echo of our input, which still reads
    // "$((6*7))") proves the command ran.
    pty.write("echo hi-$((6*7))\n");
    pty.read_until("hi-42");
    pty.write("tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty-$((1+1))\n");
    let seen = pty.read_until("stdio-is-a-tty-2");
    assert!(
        seen.contains("/dev/pts/"),
        "tty names a devpts device: {seen:?}"
    );
    pty.write("exit 7\n");
    c.wait_stopped();
    c.finish();
}

fn status_fields(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn default_capabilities_are_runc_specs_three() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["cat", "/proc/self/status"]),
        "caps_default",
    );
    let out = c.run();
    out.assert_code(0);
    let status = status_fields(&out.stdout);
    // CAP_AUDIT_WRITE (29) | CAP_KILL (5) | CAP_NET_BIND_SERVICE (10)
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(status[set], "0000000020000420", "{set}:\n{}", out.stdout);
    }
    // runc spec asks ambient caps without inheritable ones: the kernel refuses the
    // raise, and nothing may land in the inheritable set (CVE-2022-29162).
    assert_eq!(status["CapInh"], "0000000000000000", "{}", out.stdout);
    assert_eq!(status["CapAmb"], "0000000000000000", "{}", out.stdout);
    assert_eq!(status["NoNewPrivs"], "1");
    c.finish();
}

#[test]
fn custom_capabilities_with_inheritable_and_ambient() {
    let bundle = Bundle::busybox()
        .args(&["cat", "/proc/self/status"])
        .with(|c| {
            let set = json!(["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]);
            c["process"]["capabilities"] = json!({
                "bounding": set, "effective": set, "permitted": set,
                "inheritable": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"]
            });
        });
    let c = Container::new(&Runtime::new(), bundle, "caps_custom");
    let out = c.run();
    out.assert_code(0);
    let status = status_fields(&out.stdout);
    // CAP_CHOWN (0) | CAP_NET_RAW (13) | CAP_SYS_ADMIN (21)
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(status[set], "0000000000202001", "{set}:\n{}", out.stdout);
    }
    assert_eq!(status["CapInh"], "0000000000002000", "{}", out.stdout);
    assert_eq!(status["CapAmb"], "0000000000002000", "{}", out.stdout);
    c.finish();
}

#[test]
fn no_new_privileges_follows_the_config() {
    let rt = Runtime::new();
    for (nnp, want) in [(true, "1"), (false, "0")] {
        let bundle = Bundle::busybox()
            .args(&["cat", "/proc/self/status"])
            .with(|c| c["process"]["noNewPrivileges"] = nnp.into());
        let c = Container::new(&rt, bundle, "nnp");
        let out = c.run();
        out.assert_code(0);
        assert_eq!(
            status_fields(&out.stdout)["NoNewPrivs"],
            want,
            "noNewPrivileges={nnp}"
        );
        c.finish();
    }
}

#[test]
fn rlimits_are_applied() {
    let bundle = Bundle::busybox()
        .sh("ulimit -S -n; ulimit -H -n; ulimit -S -c; ulimit -H -c")
        .with(|c| {
            c["process"]["rlimits"] = json!([
                { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048 },
                { "type": "RLIMIT_CORE", "soft": 0, "hard": 0 }
            ]);
        });
    let c = Container::new(&Runtime::new(), bundle, "rlimits");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "512\n2048\n0\n0\n", "{out}");
    c.finish();
}

#[test]
fn user_groups_cwd_env_and_umask() {
    let bundle = Bundle::busybox()
        .sh("pwd; echo \"$FOO\"; id -u; id -g; id -G; umask")
        .with(|c| {
            c["process"]["user"] =
                json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 2000], "umask": 0o077 });
            c["process"]["cwd"] = "/home/user".into();
            c["process"]["env"]
                .as_array_mut()
                .unwrap()
                .push("FOO=bar baz".into());
        });
    let c = Container::new(&Runtime::new(), bundle, "user_cwd_env");
    let out = c.run();
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "/home/user", "cwd: {out}");
    assert_eq!(lines[1], "bar baz", "env: {out}");
    assert_eq!(lines[2], "1000", "uid: {out}");
    assert_eq!(lines[3], "1000", "gid: {out}");
    let mut groups: Vec<&str> = lines[4].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["10", "1000", "2000"], "groups: {out}");
    assert_eq!(lines[5], "0077", "umask: {out}");
    c.finish();
}

#[test]
fn default_umask_is_0022() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh("umask"),
        "umask_default",
    );
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "0022\n", "{out}");
    c.finish();
}

#[test]
fn oom_score_adj_is_applied() {
    let bundle = Bundle::busybox()
        .args(&["cat", "/proc/self/oom_score_adj"])
        .with(|c| c["process"]["oomScoreAdj"] = 500.into());
    let c = Container::new(&Runtime::new(), bundle, "oom_score_adj");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "500\n", "{out}");
    c.finish();
}

/// Lists the shell's own fds (not those of `ls`, which opens the directory it
/// lists): the trailing `true` keeps ash from exec'ing `ls` in its place.
const LIST_FDS: &str = "ls /proc/$$/fd; true";

#[test]
fn only_stdio_reaches_the_container() {
    // The runtime gets two extra open fds (3 and 4) but no --preserve-fds, so
    // neither may reach the container (CVE-2024-21626 class of leak).
    let file3 = tempfile::tempfile().unwrap();
    let file4 = tempfile::tempfile().unwrap();
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh(LIST_FDS),
        "fds_default",
    );
    c.create_with_fds(&[], &[file3.as_raw_fd(), file4.as_raw_fd()])
        .assert_ok();
    c.start().assert_ok();
    c.wait_stopped();
    let (out, err) = c.output();
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "stdout: {out}\nstderr: {err}");
    c.finish();
}

#[test]
fn run_passes_only_stdio() {
    let c = Container::new(&Runtime::new(), Bundle::busybox().sh(LIST_FDS), "fds_run");
    let out = c.run();
    out.assert_code(0);
    let fds: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "{out}");
    c.finish();
}

#[test]
fn preserve_fds_passes_exactly_the_extra_fds() {
    let dir = tempfile::tempdir().unwrap();
    let out3 = dir.path().join("fd3");
    let file3 = std::fs::File::create(&out3).unwrap();
    let mut file4 = tempfile::tempfile().unwrap();
    file4.write_all(b"from-fd-4\n").unwrap();
    std::io::Seek::rewind(&mut file4).unwrap();
    let bundle = Bundle::busybox().sh(&format!("cat <&4; echo to-fd-3 >&3; {LIST_FDS}"));
    let c = Container::new(&Runtime::new(), bundle, "preserve_fds");
    c.create_with_fds(
        &["--preserve-fds", "2"],
        &[file3.as_raw_fd(), file4.as_raw_fd()],
    )
    .assert_ok();
    c.start().assert_ok();
    c.wait_stopped();
    let (out, err) = c.output();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("from-fd-4"),
        "stdout: {out}\nstderr: {err}"
    );
    let fds: Vec<&str> = lines.flat_map(|l| l.split_whitespace()).collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3", "4"],
        "stdout: {out}\nstderr: {err}"
    );
    assert_eq!(std::fs::read_to_string(&out3).unwrap(), "to-fd-3\n");
    c.finish();
}

#[test]
fn program_found_through_path_and_absolute() {
    let rt = Runtime::new();
    for args in [["echo", "x"], ["/bin/echo", "x"]] {
        let c = Container::new(&rt, Bundle::busybox().args(&args), "path_lookup");
        let out = c.run();
        out.assert_code(0);
        assert_eq!(out.stdout, "x\n", "{out}");
        c.finish();
    }
}

/// With `terminal: true` the pty belongs to the process user, and keeps the group
/// devpts gives it (`gid=5`, tty, in runc's spec) — runc's tty.bats "tty owner".
/// Once the process runs, only it holds the console: the runtime's connection to
/// the console socket is closed (a console server such as recvtty sees EOF), and
/// when the process exits the pty hangs up — no berth process keeps a copy.
#[test]
fn console_pty_owner_and_no_other_holder() {
    let bundle = Bundle::busybox()
        .sh("stat -c owner=%u:%g $(tty)")
        .with(|c| {
            c["process"]["terminal"] = true.into();
            c["process"]["user"]["uid"] = 1000.into();
            c["process"]["user"]["gid"] = 100.into();
        });
    let c = Container::new(&Runtime::new(), bundle, "tty_owner");
    let socket = ConsoleSocket::new();
    c.create_with(&["--console-socket", &socket.path().to_string_lossy()])
        .assert_ok();
    let (mut pty, mut conn) = socket.receive();
    c.start().assert_ok();
    conn.assert_closed_by_peer();
    let seen = pty.read_to_hangup();
    assert!(seen.contains("owner=1000:5"), "pty owner: {seen:?}");
    c.wait_stopped();
    c.finish();
}

fn running_sleeper(tag: &str, patch: impl FnOnce(&mut serde_json::Value)) -> Container {
    let bundle = Bundle::busybox().args(&["sleep", "1000"]).with(patch);
    let c = Container::new(&Runtime::new(), bundle, tag);
    c.create_and_start();
    c
}

/// `exec -t` without `--console-socket` in the foreground: berth holds the pty
/// and copies it to its own stdio, as runc does (tty.bats "exec [tty ptsname]",
/// "exec [tty owner]"). Detached, it needs a console socket.
#[test]
fn exec_tty_in_the_foreground_is_proxied() {
    let c = running_sleeper("exec_tty", |c| {
        c["process"]["user"]["uid"] = 1000.into();
        c["process"]["user"]["gid"] = 100.into();
    });
    let out = c.invoke(&[
        "exec",
        "-t",
        c.id(),
        "sh",
        "-c",
        "readlink /proc/self/fd/0; readlink /proc/self/fd/1; stat -c owner=%u:%g $(tty); exit 3",
    ]);
    out.assert_code(3);
    let lines: Vec<&str> = out.stdout.lines().map(|l| l.trim_end()).collect();
    assert!(
        lines.len() >= 3 && lines[..2].iter().all(|l| l.starts_with("/dev/pts/")),
        "stdio is the pty: {out}"
    );
    assert!(out.stdout.contains("owner=1000:5"), "{out}");
    c.invoke(&["exec", "-t", "-d", c.id(), "true"])
        .assert_fails_mentioning(&["--console-socket"]);
    c.finish();
}

/// `exec -d -t --console-socket`: the exec'd process alone holds its pty and
/// nothing on berth's side keeps the console socket open.
#[test]
fn exec_console_socket_is_not_kept_open() {
    let c = running_sleeper("exec_console", |_| {});
    let socket = ConsoleSocket::new();
    c.invoke(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        &socket.path().to_string_lossy(),
        c.id(),
        "sh",
        "-c",
        "echo exec-$((20+1))",
    ])
    .assert_ok();
    let (mut pty, mut conn) = socket.receive();
    conn.assert_closed_by_peer();
    assert!(pty.read_to_hangup().contains("exec-21"));
    c.finish();
}

/// process.cwd is entered as root first (runc's order), so a cwd only root may
/// enter works for another user (cwd.bats "create can chdir if runc has access"),
/// and an `exec --user 0` whose root has no CAP_DAC_OVERRIDE can still enter the
/// user's private cwd (cwd.bats "exec --user with no access to cwd").
#[test]
fn cwd_is_entered_before_the_user_switch() {
    let bundle = Bundle::busybox_copy();
    let rootfs = bundle.rootfs();
    for (dir, owner) in [("private-root", 0), ("private-42", 42)] {
        let d = rootfs.join(dir);
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(owner), Some(owner)).unwrap();
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let run = Container::new(
        &Runtime::new(),
        Bundle::busybox().with(|c| {
            c["root"]["path"] = rootfs.to_string_lossy().into_owned().into();
            c["process"]["cwd"] = "/private-root".into();
            c["process"]["user"]["uid"] = 1000.into();
            c["process"]["args"] = json!(["pwd"]);
        }),
        "cwd_as_root",
    );
    let out = run.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "/private-root\n", "{out}");
    run.finish();

    let c = running_sleeper("cwd_exec_user0", |c| {
        c["root"]["path"] = rootfs.to_string_lossy().into_owned().into();
        c["process"]["cwd"] = "/private-42".into();
        c["process"]["user"]["uid"] = 42.into();
    });
    let out = c.invoke(&["exec", "--user", "0", c.id(), "pwd"]);
    out.assert_code(0);
    assert_eq!(out.stdout, "/private-42\n", "{out}");
    c.finish();
    drop(bundle);
}
