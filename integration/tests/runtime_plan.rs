//! `berth plan BUNDLE [--json]` (berth only; runc has no such verb): the ordered
//! steps a start will take, computed without touching the host.

use berth_integration::{leftovers, Bundle, Runtime};
use serde_json::{json, Value};

fn plan_json(rt: &Runtime, bundle: &Bundle, id: &str) -> Vec<Value> {
    let out = rt.run(&["plan", "--json", "--id", id, &bundle.path_str()]);
    out.assert_ok();
    let plan: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("plan JSON ({e}):\n{out}"));
    assert_eq!(plan["id"], id, "{plan}");
    plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("plan has steps: {plan}"))
        .clone()
}

fn kind(step: &Value) -> &str {
    step["step"]
        .as_str()
        .unwrap_or_else(|| panic!("every step names its kind: {step}"))
}

fn position(steps: &[Value], name: &str) -> usize {
    steps
        .iter()
        .position(|s| kind(s) == name)
        .unwrap_or_else(|| panic!("a {name} step in {steps:?}"))
}

#[test]
fn plan_json_lists_the_config_in_order() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox()
        .args(&["echo", "planned"])
        .with(|c| c["hostname"] = "planned-host".into());
    let id = berth_integration::unique_id("plan_json");
    let steps = plan_json(&rt, &bundle, &id);
    let config = bundle.config();

    // Every non-cgroup mount, in config order.
    let want: Vec<&str> = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] != "cgroup")
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    let got: Vec<&str> = steps
        .iter()
        .filter(|s| kind(s) == "mount")
        .map(|s| {
            s["destination"]
                .as_str()
                .expect("a mount step names its destination")
        })
        .collect();
    assert_eq!(got, want, "mount steps");

    for (list, step) in [
        ("maskedPaths", "mask_path"),
        ("readonlyPaths", "readonly_path"),
    ] {
        let want: Vec<&str> = config["linux"][list]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let got: Vec<&str> = steps
            .iter()
            .filter(|s| kind(s) == step)
            .map(|s| s["path"].as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{step} steps");
    }

    let hostname = &steps[position(&steps, "set_hostname")];
    assert_eq!(hostname["name"], "planned-host");

    // Order constraints the runtime relies on.
    let last = steps.last().unwrap();
    assert_eq!(kind(last), "exec");
    assert_eq!(last["args"], json!(["echo", "planned"]));
    assert!(position(&steps, "unshare") < position(&steps, "mount"));
    assert!(position(&steps, "mask_path") < position(&steps, "set_capabilities"));
    assert!(position(&steps, "set_capabilities") < position(&steps, "wait_exec_fifo"));
    assert!(position(&steps, "wait_exec_fifo") < steps.len() - 1);

    // Planning is pure: nothing was created for the id.
    leftovers(rt.root(), &id, bundle.path()).assert_empty(&id);
}

#[test]
fn plan_follows_the_namespaces_asked_for() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox().with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "user" }));
        let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let id = berth_integration::unique_id("plan_userns");
    let steps = plan_json(&rt, &bundle, &id);
    let text = serde_json::to_string(&steps).unwrap();
    let makes_user_ns = steps.iter().any(|s| {
        kind(s).contains("user_namespace")
            || (kind(s) == "unshare" && s["kinds"].as_array().unwrap().contains(&json!("user")))
    });
    assert!(makes_user_ns, "a user namespace step: {text}");
    assert!(
        text.contains("100000"),
        "the id maps are in the plan: {text}"
    );

    let bundle = Bundle::busybox().with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    });
    let steps = plan_json(&rt, &bundle, &id);
    let unshare = &steps[position(&steps, "unshare")];
    let kinds: Vec<&str> = unshare["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        !kinds.contains(&"network") && kinds.contains(&"pid"),
        "{kinds:?}"
    );
}

#[test]
fn plan_text_names_each_step() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox().args(&["echo", "planned"]);
    let id = berth_integration::unique_id("plan_text");
    let out = rt.run(&["plan", "--id", &id, &bundle.path_str()]);
    out.assert_ok();
    for needle in [
        "/proc",
        "/dev/pts",
        "/dev/mqueue",
        "/proc/kcore",
        "/proc/sys",
        "RLIMIT_NOFILE",
        "execve echo",
    ] {
        assert!(
            out.stdout.contains(needle),
            "plan text mentions {needle:?}:\n{out}"
        );
    }
    // Each step says why it is there.
    assert!(out.stdout.matches("why:").count() >= 10, "{out}");
    leftovers(rt.root(), &id, bundle.path()).assert_empty(&id);
}

#[test]
fn plan_refuses_a_bad_config_like_create() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox().with(|c| c["process"]["args"] = json!([]));
    rt.run(&["plan", &bundle.path_str()])
        .assert_fails_mentioning(&["process.args"]);
}

#[test]
fn plan_shows_every_setup_step_with_actor_and_phase() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox().args(&["echo", "planned"]);
    let id = berth_integration::unique_id("plan_phases");
    let steps = plan_json(&rt, &bundle, &id);
    // Each step says who performs it and in which phase, and the phases
    // come in order.
    let order = ["host", "namespaces", "rootfs", "process", "start"];
    let mut last = 0;
    for s in &steps {
        let phase = s["phase"]
            .as_str()
            .unwrap_or_else(|| panic!("a phase: {s}"));
        let at = order
            .iter()
            .position(|p| *p == phase)
            .unwrap_or_else(|| panic!("a known phase: {s}"));
        assert!(at >= last, "phases in order: {s}");
        last = at;
        assert!(
            ["runtime", "stage1", "init"].contains(&s["actor"].as_str().unwrap_or("")),
            "an actor: {s}"
        );
    }
    // The steps that used to happen off the plan are in it, where they happen.
    let at = |name: &str| &steps[position(&steps, name)];
    for (name, actor, phase) in [
        ("create_exec_fifo", "runtime", "host"),
        ("spawn_stage1", "runtime", "host"),
        ("set_parent_death_signal", "stage1", "namespaces"),
        ("set_not_dumpable", "stage1", "namespaces"),
        ("join_cgroup", "runtime", "namespaces"),
        ("clear_umask", "init", "rootfs"),
        ("restore_parent_death_signal", "init", "process"),
        ("umask", "init", "process"),
        ("wait_exec_fifo", "init", "start"),
        ("reset_signals", "init", "start"),
        ("exec", "init", "start"),
    ] {
        assert_eq!(at(name)["actor"], actor, "{name}");
        assert_eq!(at(name)["phase"], phase, "{name}");
    }
    assert!(position(&steps, "set_not_dumpable") < position(&steps, "unshare"));
    assert_eq!(
        position(&steps, "reset_signals") + 1,
        position(&steps, "exec"),
        "signals are reset right before execve"
    );
    assert!(at("create_exec_fifo")["path"]
        .as_str()
        .unwrap()
        .ends_with(&format!("{id}/exec.fifo")));
    leftovers(rt.root(), &id, bundle.path()).assert_empty(&id);
}
