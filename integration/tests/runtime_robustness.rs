//! Robustness of the runtime's own machinery: configs of any size cross the
//! runtime ↔ stage 1 ↔ init channel whole (or fail with a clear error), and a
//! signal that reaches a foreground `run` before its container runs aborts the
//! create and cleans up.

use std::path::Path;
use std::time::Duration;

use berth_integration::{poll_until, Bundle, Container, Runtime, PATIENCE};
use serde_json::{json, Value};

/// A createContainer hook (run by init, with the state the runtime sent it)
/// that stores the size of the state it got on stdin in `<bundle>/state-size`.
fn state_size_hook(bundle: &Path) -> Value {
    let out = bundle.join("state-size");
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("wc -c > {}", out.display())]
    })
}

#[test]
fn ten_megabytes_of_annotations() {
    // 100,000 annotations, ~10 MB of JSON: the container state that init's
    // hooks get is far larger than one packet of the sync socket.
    let annotations: serde_json::Map<String, Value> = (0..100_000)
        .map(|i| (format!("org.test.key{i:06}"), Value::from("v".repeat(80))))
        .collect();
    let bundle = Bundle::busybox().sh("echo ran");
    let hook = state_size_hook(bundle.path());
    let bundle = bundle.with(|c| {
        c["annotations"] = Value::Object(annotations);
        c["hooks"] = json!({ "createContainer": [hook] });
    });
    let c = Container::new(&Runtime::new(), bundle, "big_annotations");
    // Detached, so the whole create + start is bounded by the harness's patience
    // (a lost message used to hang both sides forever).
    c.run_with(&["--detach"]).assert_ok();
    let state = c.state();
    assert_eq!(
        state["annotations"].as_object().map(|a| a.len()),
        Some(100_000)
    );
    let size: usize = std::fs::read_to_string(c.bundle().path().join("state-size"))
        .expect("the createContainer hook ran")
        .trim()
        .parse()
        .unwrap();
    assert!(size > 10_000_000, "the hook got {size} bytes of state");
    c.wait_stopped();
    c.finish();
}

#[test]
fn ten_thousand_mounts() {
    let bundle = Bundle::busybox()
        .sh("grep -c ' /dev/many/' /proc/self/mountinfo")
        .with(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            for i in 0..10_000 {
                mounts.push(json!({
                    "destination": format!("/dev/many/{i}"),
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["size=4k"]
                }));
            }
        });
    let c = Container::new(&Runtime::new(), bundle, "many_mounts");
    let out = c.run();
    out.assert_ok();
    assert_eq!(out.stdout, "10000\n", "{out}");
    c.assert_no_leftovers();
}

#[test]
fn one_megabyte_of_environment() {
    // 1,000 variables of 1 KiB: within execve's limits, so it just works.
    let bundle = Bundle::busybox().sh("env | grep -c '^BIG'").with(|c| {
        let env = c["process"]["env"].as_array_mut().unwrap();
        for i in 0..1000 {
            env.push(format!("BIG{i:04}={}", "e".repeat(1024)).into());
        }
    });
    let c = Container::new(&Runtime::new(), bundle, "big_env");
    let out = c.run();
    out.assert_ok();
    assert_eq!(out.stdout, "1000\n", "{out}");
    c.assert_no_leftovers();
}

#[test]
fn an_environment_execve_cannot_take_fails_create_clearly() {
    // One string above the kernel's 128 KiB limit: refused before anything exists.
    let one = Bundle::busybox().with(|c| {
        let env = c["process"]["env"].as_array_mut().unwrap();
        env.push(format!("HUGE={}", "h".repeat(200_000)).into());
    });
    let c = Container::new(&Runtime::new(), one, "env_string");
    c.create()
        .assert_fails_mentioning(&["process.env[2]", "131072"]);
    c.assert_no_leftovers();

    // 1 MiB strings in all, each acceptable, above a quarter of a 1 MiB stack:
    // init finds out before reporting created, so create fails and cleans up.
    let total = Bundle::busybox().with(|c| {
        let env = c["process"]["env"].as_array_mut().unwrap();
        for i in 0..16 {
            env.push(format!("BIG{i:02}={}", "t".repeat(64 * 1024)).into());
        }
        c["process"]["rlimits"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "RLIMIT_STACK", "soft": 1 << 20, "hard": 1 << 20}));
    });
    let c = Container::new(&Runtime::new(), total, "env_total");
    c.create()
        .assert_fails_mentioning(&["process.env", "RLIMIT_STACK"]);
    c.assert_no_leftovers();
}

/// A foreground `run` whose create waits in `hook_kind` (a hook that records
/// its pid, then sleeps): the signal aborts it, exit 128+N, nothing left.
fn signal_during_create(hook_kind: &str, signal: i32) {
    let bundle = Bundle::busybox().sh("echo never");
    let pid_file = bundle.path().join("hook.pid");
    let hook = json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo $$ > {}; exec sleep 60", pid_file.display())]
    });
    let bundle = bundle.with(|c| c["hooks"] = json!({ hook_kind: [hook] }));
    let c = Container::new(&Runtime::new(), bundle, "run_abort");
    let run = c.spawn_run(&[]);
    let hook_pid: i32 = poll_until("the hook to start", PATIENCE, || {
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    run.signal(signal);
    let out = run.wait();
    out.assert_code(128 + signal);
    assert!(!out.stdout.contains("never"), "{out}");
    assert!(out.stderr.contains("interrupted"), "{out}");
    // The hook was stopped too (it is no process of the container's for
    // prestart, so the leftovers check alone would not see it).
    poll_until("the hook to be gone", Duration::from_secs(5), || {
        let stat = std::fs::read_to_string(format!("/proc/{hook_pid}/cmdline"));
        (!stat.is_ok_and(|s| s.contains("sleep"))).then_some(())
    });
    c.assert_no_leftovers();
}

#[test]
fn sigterm_while_a_prestart_hook_runs_aborts_run() {
    signal_during_create("prestart", libc::SIGTERM);
}

#[test]
fn sigint_while_init_runs_a_create_container_hook_aborts_run() {
    signal_during_create("createContainer", libc::SIGINT);
}
