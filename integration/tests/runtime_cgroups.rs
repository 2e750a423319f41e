//! Cgroups: the container lands in its own cgroup, limits from
//! `linux.resources` are written to the cgroup files (seen from the host and from
//! inside), limits bite, and delete removes the cgroups.

use berth_integration::{cgroup_file, poll_until, Bundle, Container, Runtime, PATIENCE};
use serde_json::json;

#[test]
fn limits_are_visible_from_the_host_and_inside() {
    let bundle = Bundle::busybox().with(|c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": 67_108_864 });
        c["linux"]["resources"]["pids"] = json!({ "limit": 42 });
        c["linux"]["resources"]["cpu"] =
            json!({ "shares": 512, "quota": 50_000, "period": 100_000 });
    });
    let c = Container::new(&Runtime::new(), bundle, "cg_limits");
    c.create().assert_ok();
    let pid = c.pid();
    let memory = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = cgroup_file(pid, "pids", "pids.max", "pids.max");
    let quota = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    for file in [&memory, &pids, &quota] {
        assert!(
            file.host.to_string_lossy().contains(c.id()),
            "the container's own cgroup (named after its id): {}",
            file.host.display()
        );
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(read(&memory.host).trim(), "67108864");
    assert_eq!(read(&pids.host).trim(), "42");
    let quota_host = read(&quota.host);
    assert!(
        quota_host.trim() == "50000" || quota_host.trim() == "50000 100000",
        "{quota_host}"
    );
    c.finish();

    // Inside, /sys/fs/cgroup shows the same files (runc binds the container's own
    // cgroup dirs there).
    let script = format!("cat {} {} {}", memory.inside, pids.inside, quota.inside);
    let bundle = Bundle::busybox().sh(&script).with(|c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": 67_108_864 });
        c["linux"]["resources"]["pids"] = json!({ "limit": 42 });
        c["linux"]["resources"]["cpu"] =
            json!({ "shares": 512, "quota": 50_000, "period": 100_000 });
    });
    let c = Container::new(&Runtime::new(), bundle, "cg_inside");
    let out = c.run();
    out.assert_code(0);
    let values: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(values[0], "67108864", "{out}");
    assert_eq!(values[1], "42", "{out}");
    assert!(values[2].starts_with("50000"), "{out}");
    c.finish();
}

#[test]
fn custom_cgroups_path_is_used_and_removed() {
    let parent = berth_integration::unique_id("cgparent");
    let bundle = Bundle::busybox().args(&["sleep", "100"]);
    let mut c = Container::new(&Runtime::new(), bundle, "cg_custom");
    let path = format!("/{parent}/{}", c.id());
    let value = path.clone();
    c.bundle_mut()
        .patch(|config| config["linux"]["cgroupsPath"] = value.into());
    c.create().assert_ok();
    let memberships = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    let memory_line = memberships
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|ctrls| ctrls.split(',').any(|x| x == "memory"))
        })
        .unwrap_or_else(|| memberships.lines().find(|l| l.starts_with("0::")).unwrap());
    assert!(memory_line.ends_with(&path), "in {path}: {memberships}");
    c.finish();
    // The parent is the caller's (runc leaves it too); tidy it up.
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
}

#[test]
fn pids_limit_bites() {
    let bundle = Bundle::busybox()
        .sh("for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo forked")
        .with(|c| c["linux"]["resources"]["pids"] = json!({ "limit": 4 }));
    let c = Container::new(&Runtime::new(), bundle, "cg_pids");
    let out = c.run();
    // ash gives up (exit 2) on the failed fork; the message is what matters.
    assert!(out.code().is_some(), "{out}");
    assert!(
        out.text().contains("can't fork")
            || out.text().contains("Resource temporarily unavailable"),
        "a fork beyond pids.max fails: {out}"
    );
    c.finish();
}

#[test]
fn processes_of_the_container_are_all_in_its_cgroup() {
    let bundle = Bundle::busybox().sh("sleep 100 & echo ready; wait");
    let c = Container::new(&Runtime::new(), bundle, "cg_procs");
    c.create_and_start();
    c.wait_output("ready");
    let procs = cgroup_file(c.pid(), "pids", "cgroup.procs", "cgroup.procs");
    let pids = poll_until("two processes in the cgroup", PATIENCE, || {
        let text = std::fs::read_to_string(&procs.host).ok()?;
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (pids.len() == 2).then_some(pids)
    });
    assert!(pids.contains(&c.pid()), "init {} in {pids:?}", c.pid());
    c.finish();
}

#[test]
fn cgroup_namespace_shows_the_container_cgroup_as_root() {
    let bundle = Bundle::busybox()
        .args(&["cat", "/proc/self/cgroup"])
        .with(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "type": "cgroup" }))
        });
    let c = Container::new(&Runtime::new(), bundle, "cgns");
    let out = c.run();
    out.assert_code(0);
    assert!(
        !out.stdout.contains(c.id()),
        "the id is hidden by the cgroup namespace: {out}"
    );
    for line in out.stdout.lines().filter(|l| !l.contains(":name=")) {
        assert!(
            line.ends_with(":/"),
            "each hierarchy is rooted at the container: {line}"
        );
    }
    c.finish();
}
