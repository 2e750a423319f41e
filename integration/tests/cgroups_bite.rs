//! Limits that bite, on whichever cgroup layout the machine has (the kernel
//! matrix runs this file under v2, v1 and hybrid on 5.10, 6.1 and 6.12; see
//! docs/kernels.md): memory (an OOM kill, counted by `events --stats`),
//! devices (v1 devices.deny, v2 an eBPF program), the freezer (`pause` /
//! `resume`) and `update`.

use berth_integration::{cgroup_file, poll_until, Bundle, Container, Runtime, PATIENCE};
use serde_json::{json, Value};

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn memory_limit_kills_a_hog_and_events_count_it() {
    if let Some(why) = berth_integration::missing_controller("memory") {
        return berth_integration::skip("memory_limit_kills_a_hog_and_events_count_it", &why);
    }
    // dd's 64 MiB block buffer does not fit in 32 MiB (no swap: swap = limit).
    let bundle = Bundle::busybox()
        .sh("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo dd=$?; sleep 100")
        .with(|c| {
            c["linux"]["resources"]["memory"] = json!({ "limit": 33_554_432, "swap": 33_554_432 });
        });
    let c = Container::new(&Runtime::new(), bundle, "bite_memory");
    c.create_and_start();
    let out = c.wait_output("dd=");
    assert!(
        out.contains("dd=137"),
        "dd is SIGKILLed by the OOM killer: {out}"
    );
    // The kernel counted the kill in the container's own cgroup: v1
    // memory.oom_control (Linux >= 4.13), v2 memory.events.
    let events = cgroup_file(c.pid(), "memory", "memory.oom_control", "memory.events");
    let kills: u64 = read(&events.host)
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill in {}", events.host.display()));
    assert!(kills >= 1, "{}: oom_kill {kills}", events.host.display());
    let stats = c.invoke(&["events", "--stats", c.id()]);
    stats.assert_ok();
    let v: Value = serde_json::from_str(stats.stdout.trim()).expect("events --stats is JSON");
    assert_eq!(v["type"], "stats", "{stats}");
    assert_eq!(v["data"]["memory"]["usage"]["limit"], 33_554_432, "{stats}");
    c.finish();
}

/// A container with the host's /dev/fuse (c 10:229) bind-mounted in (a node
/// from `linux.devices` would get an allow rule of its own), opening it
/// read-write; `allow` adds a rule for it after the spec's deny-all.
fn open_fuse(allow: bool, tag: &str) -> String {
    let bundle = Bundle::busybox()
        .sh("if (: <> /dev/fuse) 2>/dev/null; then echo fuse=ok; else echo fuse=denied; fi; \
             head -c 3 /dev/zero | wc -c | sed 's/^ */zero=/'")
        .with(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/dev/fuse", "type": "bind",
                "source": "/dev/fuse", "options": ["bind"]
            }));
            if allow {
                let mut rules = c["linux"]["resources"]["devices"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                rules.push(json!({ "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm" }));
                c["linux"]["resources"]["devices"] = Value::Array(rules);
            }
        });
    let c = Container::new(&Runtime::new(), bundle, tag);
    let out = c.run();
    out.assert_code(0);
    // runc's default allow list (null, zero, ...) comes after the spec's rules.
    assert!(out.stdout.contains("zero=3"), "default devices work: {out}");
    c.finish();
    out.stdout
}

#[test]
fn device_rules_decide_who_opens_a_device_node() {
    // Without a rule the spec's deny-all applies (v1 devices.deny, v2 the
    // eBPF program).
    assert!(open_fuse(false, "bite_dev_deny").contains("fuse=denied"));
    assert!(open_fuse(true, "bite_dev_allow").contains("fuse=ok"));
}

#[test]
fn pause_freezes_and_resume_thaws_the_cgroup() {
    let bundle = Bundle::busybox().sh("echo ready; while :; do sleep 1; done");
    let c = Container::new(&Runtime::new(), bundle, "bite_freezer");
    c.create_and_start();
    c.wait_output("ready");
    let file = cgroup_file(c.pid(), "freezer", "freezer.state", "cgroup.freeze");
    c.invoke(&["pause", c.id()]).assert_ok();
    assert_eq!(c.status(), "paused");
    let frozen = read(&file.host);
    assert!(
        frozen == "FROZEN" || frozen == "1",
        "{}: {frozen}",
        file.host.display()
    );
    if file.host.ends_with("cgroup.freeze") {
        // v2: the kernel reports the whole cgroup frozen in cgroup.events.
        let events = file.host.with_file_name("cgroup.events");
        poll_until("cgroup.events frozen 1", PATIENCE, || {
            read(&events).lines().any(|l| l == "frozen 1").then_some(())
        });
    }
    c.invoke(&["resume", c.id()]).assert_ok();
    assert_eq!(c.status(), "running");
    let thawed = read(&file.host);
    assert!(
        thawed == "THAWED" || thawed == "0",
        "{}: {thawed}",
        file.host.display()
    );
    c.finish();
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    if let Some(why) = berth_integration::missing_controller("memory") {
        return berth_integration::skip("update_changes_the_limits_of_a_running_container", &why);
    }
    let bundle = Bundle::busybox().sh("echo ready; sleep 100").with(|c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": 67_108_864 });
        c["linux"]["resources"]["pids"] = json!({ "limit": 42 });
    });
    let c = Container::new(&Runtime::new(), bundle, "bite_update");
    c.create_and_start();
    c.wait_output("ready");
    let memory = cgroup_file(c.pid(), "memory", "memory.limit_in_bytes", "memory.max");
    let pids = cgroup_file(c.pid(), "pids", "pids.max", "pids.max");
    let quota = cgroup_file(c.pid(), "cpu", "cpu.cfs_quota_us", "cpu.max");
    c.invoke(&[
        "update",
        "--memory",
        "52428800",
        "--pids-limit",
        "10",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        c.id(),
    ])
    .assert_ok();
    assert_eq!(read(&memory.host), "52428800");
    assert_eq!(read(&pids.host), "10");
    let q = read(&quota.host);
    assert!(q == "20000" || q == "20000 100000", "{q}");
    c.finish();
}
