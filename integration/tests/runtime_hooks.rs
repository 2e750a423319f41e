//! OCI hooks through the runc command line: the state each hook gets on stdin,
//! the listed order, where createContainer hooks run, and what a failing hook
//! does (fatal for create-time hooks, a warning for poststart/poststop).

use berth_integration::{Bundle, Container, Runtime};
use serde_json::{json, Value};

fn sh(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("hook output {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

/// Each hook gets the container state with the status runtime-tools
/// `hooks_stdin` expects (prestart `created`, poststart `running` with init's
/// pid even when the program already exited, poststop `stopped`), hooks of
/// one list run in the listed order, and createContainer hooks run with the
/// container's rootfs as their working directory (runc's hooks.bats relies on it).
#[test]
fn hooks_get_the_state_on_stdin_in_order() {
    let mut bundle = Bundle::busybox().args(&["true"]);
    let b = bundle.path_str();
    bundle.patch(|c| {
        c["annotations"] = json!({"org.example.hooktest": "yes"});
        c["hooks"] = json!({
            "prestart": [
                sh(&format!("cat > {b}/prestart.json; echo pre1 >> {b}/order")),
                sh(&format!("echo pre2 >> {b}/order")),
            ],
            "createRuntime": [sh(&format!("cat > {b}/createRuntime.json; echo cr >> {b}/order"))],
            "createContainer": [sh(&format!(
                "cat > {b}/createContainer.json; test -x ./bin/busybox && echo cc >> {b}/order"
            ))],
            "poststart": [sh(&format!("cat > {b}/poststart.json; echo ps >> {b}/order"))],
            "poststop": [sh(&format!("cat > {b}/poststop.json; echo stop >> {b}/order"))],
        });
    });
    let c = Container::new(&Runtime::new(), bundle, "hooks_stdin");
    c.create().assert_ok();
    let pid = c.pid();
    c.start().assert_ok();
    c.wait_stopped();
    c.delete().assert_ok();

    let dir = c.bundle().path();
    let order = std::fs::read_to_string(dir.join("order")).unwrap();
    assert_eq!(order, "pre1\npre2\ncr\ncc\nps\nstop\n");
    for (hook, status) in [
        ("prestart", "created"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let st = read_json(&dir.join(format!("{hook}.json")));
        assert_eq!(st["status"], status, "{hook}: {st}");
        assert_eq!(st["id"], c.id(), "{hook}: {st}");
        assert_eq!(st["bundle"], c.bundle().path_str(), "{hook}: {st}");
        assert_eq!(
            st["annotations"]["org.example.hooktest"], "yes",
            "{hook}: {st}"
        );
        if hook != "poststop" {
            assert_eq!(st["pid"].as_i64(), Some(pid as i64), "{hook}: {st}");
        }
    }
    c.assert_no_leftovers();
}

/// runtime-spec: a failing poststart or poststop hook is logged as a warning,
/// the remaining hooks still run and `start`/`delete` succeed.
#[test]
fn failing_poststart_and_poststop_hooks_warn_and_the_rest_run() {
    let mut bundle = Bundle::busybox().args(&["true"]);
    let b = bundle.path_str();
    bundle.patch(|c| {
        c["hooks"] = json!({
            "poststart": [sh("exit 3"), sh(&format!("echo poststart-ok >> {b}/out"))],
            "poststop": [sh("exit 4"), sh(&format!("echo poststop-ok >> {b}/out"))],
        });
    });
    let c = Container::new(&Runtime::new(), bundle, "hooks_fail_warn");
    c.create().assert_ok();
    c.start().assert_ok();
    c.wait_stopped();
    c.delete().assert_ok();
    let out = std::fs::read_to_string(c.bundle().path().join("out")).unwrap();
    assert_eq!(out, "poststart-ok\npoststop-ok\n");

    let warnings: Vec<String> = c
        .log_lines()
        .into_iter()
        .filter(|l| l["level"] == "warning")
        .map(|l| l["msg"].as_str().unwrap_or_default().to_string())
        .collect();
    for (field, code) in [("hooks.poststart[0]", "3"), ("hooks.poststop[0]", "4")] {
        assert!(
            warnings.iter().any(|w| w.contains(field)
                && w.contains("error running hook")
                && w.contains(&format!("exit status {code}"))),
            "a warning for {field}: {warnings:?}"
        );
    }
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    c.assert_no_leftovers();
}

/// A failing prestart hook fails `create` (naming the hook) and the hooks
/// after it do not run; nothing is left behind.
#[test]
fn failing_prestart_hook_fails_create() {
    let mut bundle = Bundle::busybox().args(&["true"]);
    let b = bundle.path_str();
    bundle.patch(|c| {
        c["hooks"] = json!({
            "prestart": [sh("echo nope >&2; exit 5"), sh(&format!("touch {b}/second"))],
        });
    });
    let c = Container::new(&Runtime::new(), bundle, "hooks_prestart_fail");
    c.create()
        .assert_fails_mentioning(&["hooks.prestart[0]", "exit status 5", "nope"]);
    assert!(!c.bundle().path().join("second").exists());
    c.assert_no_leftovers();
}

/// A startContainer hook runs under the container's seccomp filter (runc's
/// seccomp.bats "startContainer hook"): killed by SIGSYS, the error says
/// "error running hook" and "bad system call (seccomp)".
#[test]
fn start_container_hook_killed_by_seccomp_says_so() {
    let bundle = Bundle::busybox().args(&["true"]).with(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]
        });
        c["hooks"] = json!({
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /tmp/x"]}]
        });
    });
    let c = Container::new(&Runtime::new(), bundle, "hooks_sigsys");
    let out = c.run();
    out.assert_fails_mentioning(&[
        "hooks.startContainer[0]",
        "error running hook",
        "bad system call (seccomp)",
    ]);
    c.finish();
}
