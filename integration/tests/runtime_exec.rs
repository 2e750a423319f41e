//! `exec`: a second process in a running container, in the forms containerd's
//! shim, conmon and CRI-O use (see README.md, "Use berth with podman, containerd and docker").

use berth_integration::{host_ns, poll_until, Bundle, Container, Runtime, PATIENCE};
use serde_json::json;

fn running(tag: &str, bundle: Bundle) -> Container {
    let c = Container::new(&Runtime::new(), bundle, tag);
    c.create_and_start();
    c
}

fn sleeper() -> Bundle {
    Bundle::busybox()
        .args(&["sleep", "100"])
        .with(|c| c["hostname"] = "exec-host".into())
}

#[test]
fn foreground_exec_returns_the_status_and_output() {
    let c = running("exec_fg", sleeper());
    let out = c.invoke(&["exec", c.id(), "sh", "-c", "echo pid=$$; hostname; exit 5"]);
    out.assert_code(5);
    assert!(
        out.stdout.contains("exec-host\n"),
        "in the container's uts namespace: {out}"
    );
    let pid: i32 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .expect("a pid line");
    assert!(pid > 1, "not the init: {out}");
    c.finish();
}

#[test]
fn exec_joins_the_container_namespaces_and_cgroup() {
    let c = running("exec_ns", sleeper());
    let script = "for n in pid net ipc uts mnt; do echo $n=$(readlink /proc/self/ns/$n); done; cat /proc/self/cgroup";
    let out = c.invoke(&["exec", c.id(), "sh", "-c", script]);
    out.assert_code(0);
    let init = c.pid();
    for kind in ["pid", "net", "ipc", "uts", "mnt"] {
        let want = std::fs::read_link(format!("/proc/{init}/ns/{kind}")).unwrap();
        let line = format!("{kind}={}", want.to_string_lossy());
        assert!(out.stdout.contains(&line), "{line}: {out}");
        assert_ne!(want.to_string_lossy(), host_ns(kind));
    }
    let init_cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let memory = |text: &str| -> Option<String> {
        text.lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == "memory"))
            })
            .map(String::from)
    };
    assert_eq!(
        memory(&out.stdout),
        memory(&init_cgroups),
        "same memory cgroup as init: {out}"
    );
    c.finish();
}

#[test]
fn exec_process_file_detached_with_pid_file() {
    // containerd: exec --process F --detach --pid-file P ID.
    let c = running("exec_detach", sleeper());
    let process = c.bundle().path().join("process.json");
    std::fs::write(
        &process,
        json!({
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sleep", "100"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/"
        })
        .to_string(),
    )
    .unwrap();
    let pid_file = c.bundle().path().join("exec.pid");
    let out = c.invoke(&[
        "exec",
        "--process",
        &process.to_string_lossy(),
        "--detach",
        "--pid-file",
        &pid_file.to_string_lossy(),
        c.id(),
    ]);
    out.assert_ok();
    let text = std::fs::read_to_string(&pid_file).expect("pid file written before exec returns");
    assert!(
        text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty(),
        "{text:?}"
    );
    let pid: i64 = text.parse().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(
        cmdline, b"sleep\x00100\x00",
        "the pid file names the exec'd process"
    );
    let pids = poll_until("two pids in ps", PATIENCE, || {
        let out = c.invoke(&["ps", "--format", "json", c.id()]);
        let pids: Vec<i64> = serde_json::from_str(&out.stdout).ok()?;
        (pids.len() == 2).then_some(pids)
    });
    assert!(pids.contains(&pid), "{pids:?}");
    c.finish();
    assert!(
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
            .unwrap_or(true),
        "delete --force also ended the exec'd process"
    );
}

#[test]
fn exec_flags_for_env_cwd_and_user() {
    let c = running("exec_flags", sleeper());
    let out = c.invoke(&[
        "exec",
        "--env",
        "FOO=from-exec",
        "--cwd",
        "/home/user",
        "--user",
        "1000:1000",
        c.id(),
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g",
    ]);
    out.assert_code(0);
    assert_eq!(out.stdout, "from-exec\n/home/user\n1000\n1000\n", "{out}");
    c.finish();
}

#[test]
fn exec_gets_the_container_caps_and_no_leaked_fds() {
    let c = running("exec_caps", sleeper());
    let out = c.invoke(&[
        "exec",
        c.id(),
        "sh",
        "-c",
        "grep -E '^(CapEff|CapAmb|NoNewPrivs)' /proc/self/status; ls /proc/$$/fd; true",
    ]);
    out.assert_code(0);
    assert!(out.stdout.contains("CapEff:\t0000000020000420"), "{out}");
    assert!(out.stdout.contains("CapAmb:\t0000000000000000"), "{out}");
    assert!(out.stdout.contains("NoNewPrivs:\t1"), "{out}");
    let fds: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(fds, ["0", "1", "2"], "{out}");
    c.finish();
}

#[test]
fn exec_of_a_missing_program_fails() {
    let c = running("exec_missing", sleeper());
    let out = c.invoke(&["exec", c.id(), "no-such-program-xyz"]);
    out.assert_fails_mentioning(&["no-such-program-xyz"]);
    assert_eq!(c.status(), "running", "the container is unaffected");
    c.finish();
}

#[test]
fn exec_in_a_stopped_container_fails() {
    let c = running("exec_stopped", Bundle::busybox());
    c.wait_stopped();
    let out = c.invoke(&["exec", c.id(), "true"]);
    // runc: "cannot exec in a stopped container".
    out.assert_fails_mentioning(&["stopped"]);
    c.finish();
}

#[test]
fn exec_in_a_missing_container_does_not_exist() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "exec_none");
    c.invoke(&["exec", c.id(), "true"])
        .assert_fails_mentioning(&["does not exist"]);
    c.assert_no_leftovers();
}
