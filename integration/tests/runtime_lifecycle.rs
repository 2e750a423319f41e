//! Container lifecycle through the runc command line: run, create → start → stopped
//! with `state` at each step, kill, delete, list, pid files, `spec`.

use berth_integration::{Bundle, Container, Runtime};
use serde_json::Value;

#[test]
fn run_prints_and_exits_zero() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["echo", "hello", "world"]),
        "run_echo",
    );
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "hello world\n", "{out}");
    c.finish();
}

#[test]
fn run_exits_with_the_container_status() {
    let rt = Runtime::new();
    for code in [1, 42, 255] {
        let c = Container::new(
            &rt,
            Bundle::busybox().sh(&format!("exit {code}")),
            "run_status",
        );
        c.run().assert_code(code);
        c.finish();
    }
}

#[test]
fn run_writes_stderr_through() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh("echo oops >&2; exit 3"),
        "run_stderr",
    );
    let out = c.run();
    out.assert_code(3);
    assert!(out.stderr.contains("oops"), "{out}");
    c.finish();
}

#[test]
fn created_running_stopped_with_state_at_each_step() {
    let bundle = Bundle::busybox().sh("sleep 0.3; echo done");
    let c = Container::new(&Runtime::new(), bundle, "state_cycle");
    c.create().assert_ok();

    let state = c.state();
    assert_eq!(state["id"], c.id());
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["bundle"], c.bundle().path_str(), "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
    let pid = state["pid"].as_i64().expect("pid");
    assert!(pid > 0, "created container has a pid: {state}");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "init process {pid} exists while created"
    );
    // Nothing ran yet: the program's output appears only after start.
    assert_eq!(c.output().0, "");

    c.start().assert_ok();
    let state = c.state();
    // The container sleeps a little, so it is seen running (or, on a slow
    // machine, already stopped: both are after start).
    let status = state["status"].as_str().unwrap().to_string();
    assert!(status == "running" || status == "stopped", "{state}");
    if status == "running" {
        assert_eq!(
            state["pid"].as_i64(),
            Some(pid),
            "same init pid after start: {state}"
        );
    }

    c.wait_stopped();
    assert_eq!(c.output().0, "done\n");
    let state = c.state();
    assert_eq!(state["status"], "stopped");
    assert_eq!(state["id"], c.id());

    c.delete().assert_ok();
    c.assert_no_leftovers();
}

#[test]
fn state_of_a_deleted_container_does_not_exist() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "state_deleted");
    c.create().assert_ok();
    c.start().assert_ok();
    c.wait_stopped();
    c.delete().assert_ok();
    c.invoke(&["state", c.id()])
        .assert_fails_mentioning(&["does not exist"]);
    c.assert_no_leftovers();
}

/// runtime-spec: `delete` of a container that is not stopped MUST fail —
/// `created` too (runc and crun remove it; runtime-tools `delete` checks it).
/// `kill` then `delete` removes it, and the program never ran.
#[test]
fn delete_of_a_created_container_fails_until_it_is_stopped() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["echo", "never"]),
        "delete_created",
    );
    c.create().assert_ok();
    let pid = c.pid();
    c.delete()
        .assert_fails_mentioning(&["not stopped", "created"]);
    assert_eq!(c.status(), "created", "a refused delete leaves it alone");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "init {pid} still waits on exec.fifo"
    );
    c.invoke(&["kill", c.id(), "KILL"]).assert_ok();
    c.wait_stopped();
    c.delete().assert_ok();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/status")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/status"))
                .map(|s| s.contains("State:\tZ"))
                .unwrap_or(true),
        "init {pid} is gone after delete"
    );
    assert_eq!(c.output().0, "", "the program never ran");
    c.assert_no_leftovers();
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "delete_running",
    );
    c.create_and_start();
    assert_eq!(c.status(), "running");
    let out = c.delete();
    // runc: "cannot delete container <id> that is not stopped: running".
    out.assert_fails_mentioning(&["running"]);
    assert_eq!(
        c.status(),
        "running",
        "a refused delete leaves the container alone"
    );

    let pid = c.pid();
    c.delete_force().assert_ok();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| b.is_empty())
                .unwrap_or(true),
        "delete --force killed init {pid}"
    );
    c.assert_no_leftovers();
}

#[test]
fn delete_force_of_a_created_container() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "delete_force_created",
    );
    c.create().assert_ok();
    c.delete_force().assert_ok();
    c.assert_no_leftovers();
}

#[test]
fn delete_force_is_idempotent_on_a_missing_container() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "delete_force_missing");
    // runc prints nothing and exits 0 for `delete --force` of an unknown id.
    c.delete_force().assert_ok();
    c.assert_no_leftovers();
}

#[test]
fn missing_container_does_not_exist_for_every_verb() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "missing");
    let id = c.id().to_string();
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
    ] {
        // containerd's shim matches this exact text (it treats it as "already gone").
        c.invoke(&args).assert_fails_mentioning(&["does not exist"]);
    }
    c.assert_no_leftovers();
}

#[test]
fn pid_file_is_absolute_decimal_without_newline() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "pid_file",
    );
    let pid_file = c.bundle().path().join("init.pid");
    c.create_with(&["--pid-file", &pid_file.to_string_lossy()])
        .assert_ok();
    let text = std::fs::read_to_string(&pid_file).expect("pid file written before create returns");
    assert!(
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()),
        "pid file holds only decimal digits, no newline: {text:?}"
    );
    assert_eq!(
        text.parse::<i64>().unwrap(),
        c.state()["pid"].as_i64().unwrap()
    );
    c.finish();
}

#[test]
fn run_detach_with_pid_file() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "run_detach",
    );
    let pid_file = c.bundle().path().join("init.pid");
    c.run_with(&["--detach", "--pid-file", &pid_file.to_string_lossy()])
        .assert_ok();
    assert_eq!(c.status(), "running");
    let text = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(
        text.parse::<i64>().ok(),
        c.state()["pid"].as_i64(),
        "{text:?}"
    );
    c.finish();
}

#[test]
fn start_twice_fails() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "start_twice",
    );
    c.create_and_start();
    let out = c.start();
    // runc: "cannot start an already running container".
    out.assert_fails_mentioning(&["running"]);
    assert_eq!(c.status(), "running");
    c.finish();
}

#[test]
fn start_of_a_stopped_container_fails() {
    let c = Container::new(&Runtime::new(), Bundle::busybox(), "start_stopped");
    c.create_and_start();
    c.wait_stopped();
    // runc: "cannot start a container that has stopped".
    c.start().assert_fails_mentioning(&["stopped"]);
    c.finish();
}

#[test]
fn duplicate_id_is_refused_and_the_first_container_survives() {
    let rt = Runtime::new();
    let c = Container::new(&rt, Bundle::busybox().args(&["sleep", "100"]), "duplicate");
    c.create().assert_ok();
    let first_pid = c.pid();
    let bundle2 = Bundle::busybox();
    let out = rt.run(&["create", "--bundle", &bundle2.path_str(), c.id()]);
    // runc: "container with given ID already exists".
    out.assert_fails_mentioning(&["exists"]);
    assert_eq!(c.pid(), first_pid, "the first container is untouched");
    assert_eq!(c.status(), "created");
    c.finish();
}

fn list_json(rt: &Runtime) -> Vec<Value> {
    let out = rt.run(&["list", "--format", "json"]);
    out.assert_ok();
    let value: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("list JSON: {e}\n{out}"));
    value
        .as_array()
        .unwrap_or_else(|| panic!("list JSON is an array, not {value}"))
        .clone()
}

#[test]
fn list_json_is_an_empty_array_not_null() {
    let rt = Runtime::private();
    let out = rt.run(&["list", "--format", "json"]);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "[]", "{out}");
    assert!(list_json(&rt).is_empty());
}

#[test]
fn list_shows_containers_quiet_table_and_json() {
    let rt = Runtime::private();
    let a = Container::new(&rt, Bundle::busybox().args(&["sleep", "100"]), "list_a");
    let b = Container::new(&rt, Bundle::busybox().args(&["sleep", "100"]), "list_b");
    a.create().assert_ok();
    b.create_and_start();

    let quiet = rt.run(&["list", "-q"]);
    quiet.assert_ok();
    let mut ids: Vec<&str> = quiet.stdout.lines().collect();
    ids.sort();
    let mut want = vec![a.id(), b.id()];
    want.sort();
    assert_eq!(ids, want, "{quiet}");

    let table = rt.run(&["list"]);
    table.assert_ok();
    let header = table.stdout.lines().next().unwrap_or("");
    for column in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(
            header.contains(column),
            "table header has {column}: {table}"
        );
    }
    let row_a = table
        .stdout
        .lines()
        .find(|l| l.starts_with(a.id()))
        .expect("row for a");
    assert!(
        row_a.contains("created") && row_a.contains(&a.bundle().path_str()),
        "{row_a}"
    );
    let row_b = table
        .stdout
        .lines()
        .find(|l| l.starts_with(b.id()))
        .expect("row for b");
    assert!(row_b.contains("running"), "{row_b}");

    let list = list_json(&rt);
    assert_eq!(list.len(), 2, "{list:?}");
    for (c, status) in [(&a, "created"), (&b, "running")] {
        let entry = list
            .iter()
            .find(|e| e["id"] == c.id())
            .expect("entry by id");
        assert_eq!(entry["status"], status);
        assert_eq!(entry["pid"].as_i64(), Some(i64::from(c.pid())));
        assert_eq!(entry["bundle"], c.bundle().path_str());
    }
    a.finish();
    b.finish();
    assert_eq!(rt.run(&["list", "-q"]).stdout, "");
}

#[test]
fn spec_writes_a_config_that_runs() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox();
    bundle.remove_config();
    rt.run(&["spec", "--bundle", &bundle.path_str()])
        .assert_ok();
    let text =
        std::fs::read_to_string(bundle.path().join("config.json")).expect("spec wrote config.json");
    let spec: Value = serde_json::from_str(&text).expect("spec output is JSON");
    assert!(
        spec["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{spec}"
    );
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["process"]["args"][0], "sh");
    assert_eq!(spec["process"]["terminal"], true);
    let namespaces: Vec<&str> = spec["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for ns in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(
            namespaces.contains(&ns),
            "default spec has a {ns} namespace: {namespaces:?}"
        );
    }

    // A second `spec` refuses to overwrite it.
    rt.run(&["spec", "--bundle", &bundle.path_str()])
        .assert_fails_mentioning(&["config.json"]);

    // The generated config runs once pointed at a rootfs and given a command.
    let rootfs = berth_integration::busybox_rootfs()
        .to_string_lossy()
        .into_owned();
    let bundle = Bundle::busybox().with(|c| {
        *c = spec.clone();
        c["root"]["path"] = rootfs.into();
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = serde_json::json!(["echo", "from-spec"]);
    });
    let c = Container::new(&rt, bundle, "spec_runs");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "from-spec\n");
    c.finish();
}

#[test]
fn spec_rootless_maps_the_caller() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox();
    bundle.remove_config();
    rt.run(&["spec", "--rootless", "--bundle", &bundle.path_str()])
        .assert_ok();
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.path().join("config.json")).unwrap())
            .unwrap();
    let has_user_ns = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user");
    assert!(has_user_ns, "rootless spec has a user namespace: {spec}");
    assert_eq!(spec["linux"]["uidMappings"][0]["containerID"], 0);
    assert_eq!(
        spec["linux"]["uidMappings"][0]["hostID"], 0,
        "root runs it here"
    );
}
