//! The runc command-line surface clients rely on (see README.md, "Use berth with podman, containerd and docker"): flag
//! spellings, the version text go-runc parses, the JSON log containerd reads, the
//! state JSON, `ps`, `features`.

use berth_integration::{Bundle, Container, Runtime};
use serde_json::Value;

#[test]
fn version_first_line_is_what_go_runc_parses() {
    let out = Runtime::new().run(&["--version"]);
    out.assert_ok();
    let mut lines = out.stdout.lines();
    let first = lines.next().unwrap_or("");
    // go-runc's parseVersion requires `runc version <v>` on the first line.
    assert!(first.starts_with("runc version "), "{out}");
    assert!(first.len() > "runc version ".len(), "{out}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with("spec: 1.")),
        "a spec: line: {out}"
    );
}

#[test]
fn global_flags_in_equals_form() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox().args(&["echo", "equals-form"]);
    let c = Container::new(&rt, bundle, "flags_equals");
    let log = c.bundle().path().join("log.json");
    let mut cmd = std::process::Command::new(rt.bin());
    cmd.arg(format!("--root={}", rt.root().display()))
        .arg(format!("--log={}", log.display()))
        .arg("--log-format=json")
        .args([
            "run",
            &format!("--bundle={}", c.bundle().path_str()),
            c.id(),
        ])
        .stdin(std::process::Stdio::null());
    let out = berth_integration::Output::of(cmd);
    out.assert_code(0);
    assert_eq!(out.stdout, "equals-form\n", "{out}");
    c.finish();
}

#[test]
fn short_flag_aliases() {
    let rt = Runtime::new();
    let c = Container::new(
        &rt,
        Bundle::busybox().args(&["sleep", "100"]),
        "flags_short",
    );
    // create -b, kill -a (CRI-O), delete -f, list -f json.
    c.invoke(&["create", "-b", &c.bundle().path_str(), c.id()])
        .assert_ok();
    c.start().assert_ok();
    let list = c.invoke(&["list", "-f", "json"]);
    list.assert_ok();
    let entries: Value = serde_json::from_str(&list.stdout).expect("list -f json");
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == c.id()),
        "{list}"
    );
    let list = c.invoke(&["list", "--format=json"]);
    list.assert_ok();
    serde_json::from_str::<Value>(&list.stdout).expect("list --format=json");
    c.invoke(&["kill", "-a", c.id(), "KILL"]).assert_ok();
    c.wait_stopped();
    c.invoke(&["delete", "-f", c.id()]).assert_ok();
    c.assert_no_leftovers();
}

#[test]
fn debug_and_rootless_flags_are_accepted() {
    let rt = Runtime::new();
    let c = Container::new(&rt, Bundle::busybox().args(&["echo", "ok"]), "flags_misc");
    let out = c.invoke(&[
        "--debug",
        "--rootless=false",
        "run",
        "--bundle",
        &c.bundle().path_str(),
        c.id(),
    ]);
    out.assert_code(0);
    assert!(out.stdout.contains("ok"), "{out}");
    c.finish();
}

#[test]
fn state_json_has_the_fields_go_runc_reads() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "state_fields",
    );
    c.create_and_start();
    let state = c.state();
    for key in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
    ] {
        assert!(state.get(key).is_some(), "state has {key}: {state}");
    }
    assert_eq!(
        state["rootfs"],
        berth_integration::busybox_rootfs()
            .to_string_lossy()
            .as_ref()
    );
    let created = state["created"].as_str().expect("created is a string");
    // RFC 3339 with a date, a 'T' and a zone.
    assert!(
        created.len() >= 20 && created.as_bytes()[10] == b'T',
        "{created}"
    );
    assert!(created.ends_with('Z') || created.contains('+'), "{created}");
    c.finish();
}

#[test]
fn json_log_ends_with_the_error_and_is_appended() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "json_log");
    let log = c.bundle().path().join("log.json");
    let earlier = r#"{"level":"info","msg":"an earlier line","time":"2020-01-01T00:00:00Z"}"#;
    std::fs::write(&log, format!("{earlier}\n")).unwrap();
    c.invoke(&["state", c.id()])
        .assert_fails_mentioning(&["does not exist"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with(earlier),
        "the log is appended to, never truncated:\n{text}"
    );
    let lines = c.log_lines();
    let last_error = lines
        .iter()
        .rev()
        .find(|l| l["level"] == "error")
        .expect("an error line");
    // containerd's getLastRuntimeError decodes {level, msg, time}.
    assert!(
        last_error["msg"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{last_error}"
    );
    let time = last_error["time"].as_str().expect("a time string");
    assert!(
        time.len() >= 20 && time.as_bytes()[10] == b'T',
        "RFC 3339 time: {time}"
    );
    assert_eq!(
        lines.last().unwrap(),
        last_error,
        "the error is the last line"
    );
}

#[test]
fn log_file_is_created_on_early_failure() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "log_early");
    let log = c.bundle().path().join("log.json");
    assert!(!log.exists());
    c.invoke(&["kill", c.id(), "KILL"])
        .assert_fails_mentioning(&["does not exist"]);
    assert!(
        log.exists(),
        "--log file created even when the command fails"
    );
}

#[test]
fn ps_json_lists_the_container_pids() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh("sleep 100 & echo ready; wait"),
        "ps_json",
    );
    c.create_and_start();
    c.wait_output("ready");
    let pid = c.pid();
    let pids = berth_integration::poll_until(
        "two pids in ps --format json",
        berth_integration::PATIENCE,
        || {
            let out = c.invoke(&["ps", "--format", "json", c.id()]);
            out.assert_ok();
            let pids: Vec<i64> = serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("ps JSON ({e}): {out}"));
            (pids.len() == 2).then_some(pids)
        },
    );
    assert!(pids.contains(&i64::from(pid)), "{pids:?} has init {pid}");
    c.finish();
}

#[test]
fn features_describe_the_runtime() {
    let out = Runtime::new().run(&["features"]);
    out.assert_ok();
    let features: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("features JSON ({e}): {out}"));
    assert!(
        features["ociVersionMin"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{features}"
    );
    assert!(
        features["ociVersionMax"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{features}"
    );
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("an array: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let hooks = strings(&features["hooks"]);
    for hook in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|h| h == hook), "hook {hook}: {hooks:?}");
    }
    let options = strings(&features["mountOptions"]);
    for option in ["bind", "rbind", "ro", "nosuid", "nodev", "noexec"] {
        assert!(
            options.iter().any(|o| o == option),
            "mount option {option}: {options:?}"
        );
    }
    let namespaces = strings(&features["linux"]["namespaces"]);
    for ns in ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"] {
        assert!(
            namespaces.iter().any(|n| n == ns),
            "namespace {ns}: {namespaces:?}"
        );
    }
    let caps = strings(&features["linux"]["capabilities"]);
    assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"), "{caps:?}");
}

#[test]
fn systemd_cgroup_fails_clearly_without_systemd() {
    // No systemd on the test machines: the flag must fail naming systemd, and
    // leave nothing behind.
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "systemd_cgroup");
    let out = c.invoke(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        &c.bundle().path_str(),
        c.id(),
    ]);
    out.assert_fails_mentioning(&["systemd"]);
    c.delete_force();
    c.assert_no_leftovers();
}
