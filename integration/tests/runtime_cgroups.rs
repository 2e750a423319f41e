//! Cgroups: the container lands in its own cgroup, limits from
//! `linux.resources` are written to the cgroup files (seen from the host and from
//! inside), limits bite, and delete removes the cgroups.

use berth_integration::{
    cgroup2_mountpoint, cgroup_file, mounted_memberships, poll_until, skip, Bundle, Container,
    Runtime, PATIENCE,
};
use serde_json::json;

#[test]
fn limits_are_visible_from_the_host_and_inside() {
    if let Some(why) = berth_integration::missing_controller("memory") {
        return berth_integration::skip("limits_are_visible_from_the_host_and_inside", &why);
    }
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
    // Every hierarchy mounted here (a layout may lack memory: Debian's 6.12 under v1).
    let memberships = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    let mounted = mounted_memberships(&memberships);
    assert!(!mounted.is_empty(), "{memberships}");
    for line in &mounted {
        assert!(line.ends_with(&path), "in {path}: {memberships}");
    }
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

// ---- runc v1.1.5 cgroups.bats / exec.bats / dev.bats / update.bats behaviour ----

/// The cgroup mounts of this host: (fstype, super options, mount point).
fn cgroup_mounts() -> Vec<(String, String, std::path::PathBuf)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            let (fstype, _, opts) = (r.next()?, r.next()?, r.next()?);
            matches!(fstype, "cgroup" | "cgroup2").then(|| {
                (
                    fstype.to_string(),
                    opts.to_string(),
                    std::path::PathBuf::from(mount_point),
                )
            })
        })
        .collect()
}

/// The v1 hierarchy serving `controller`, if any.
fn v1_mount(controller: &str) -> Option<std::path::PathBuf> {
    cgroup_mounts()
        .into_iter()
        .find(|(t, o, _)| t == "cgroup" && o.split(',').any(|x| x == controller))
        .map(|(_, _, p)| p)
}

/// Every hierarchy's directory for the absolute cgroup path `path`.
fn cgroup_dirs(path: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = cgroup_mounts()
        .into_iter()
        .map(|(_, _, m)| m.join(path.trim_start_matches('/')))
        .collect();
    out.dedup();
    out
}

fn sleeper(tag: &str, patch: impl FnOnce(&mut serde_json::Value)) -> Container {
    let bundle = Bundle::busybox().args(&["sleep", "100"]).with(patch);
    Container::new(&Runtime::new(), bundle, tag)
}

/// The spec berth writes has a cgroup namespace only on a pure cgroup v2 host,
/// as `runc spec` (on v1/hybrid, runc's suite expects exec'd processes to see
/// full cgroup paths: cgroups.bats "exec (cgroup v1+hybrid joins correct cgroup)").
#[test]
fn spec_has_a_cgroup_namespace_only_on_cgroup_v2() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox();
    bundle.remove_config();
    rt.run(&["spec", "--bundle", &bundle.path_str()])
        .assert_ok();
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.path().join("config.json")).unwrap())
            .unwrap();
    let has_cgroupns = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "cgroup");
    let pure_v2 = cgroup_mounts().iter().all(|(t, _, _)| t == "cgroup2");
    assert_eq!(has_cgroupns, pure_v2, "{spec}");
}

/// An exec'd process joins the same cgroup as init in every hierarchy,
/// the cgroup2 one of a hybrid host included (without a cgroup namespace
/// the full paths are visible).
#[test]
fn exec_joins_init_cgroup_in_every_hierarchy() {
    let c = sleeper("cg_exec_same", |_| {});
    c.create_and_start();
    let init = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    let out = c.invoke(&["exec", c.id(), "cat", "/proc/self/cgroup"]);
    out.assert_code(0);
    assert_eq!(out.stdout, init, "exec vs init");
    assert!(
        mounted_memberships(&out.stdout)
            .iter()
            .all(|l| l.ends_with(c.id())),
        "{out}"
    );
    c.finish();
}

/// On cgroup v2, once a container hands a controller to the children of its
/// own cgroup (init moved into a sub-cgroup, `+memory` in the container's
/// `cgroup.subtree_control`), that cgroup takes no process ("no internal
/// processes"): exec joins init's cgroup instead, as runc does (cgroups.bats
/// "runc exec (cgroup v2 + init process in non-root cgroup) succeeds"). On v1
/// and hybrid hosts the cgroup2 hierarchy has no controllers to hand out; the
/// kernel matrix's v2 rows run it (docs/kernels.md).
#[test]
fn exec_joins_init_cgroup_when_the_container_cgroup_delegates_on_v2() {
    let test = "exec_joins_init_cgroup_when_the_container_cgroup_delegates_on_v2";
    if !cgroup_mounts().iter().all(|(t, _, _)| t == "cgroup2") {
        skip(test, "a pure cgroup v2 host (here v1 or hybrid)");
        return;
    }
    let c = sleeper("cg_exec_v2nip", |_| {});
    c.create_and_start();
    let init = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    let own = init.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let dir = cgroup2_mountpoint()
        .unwrap()
        .join(own.trim_start_matches('/'));
    let controllers = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap();
    let Some(ctrl) = controllers.split_whitespace().next() else {
        skip(test, "no controller enabled for the container's cgroup");
        c.finish();
        return;
    };
    std::fs::create_dir(dir.join("foo")).unwrap();
    std::fs::write(dir.join("foo/cgroup.procs"), c.pid().to_string()).unwrap();
    std::fs::write(dir.join("cgroup.subtree_control"), format!("+{ctrl}")).unwrap();
    let out = c.invoke(&["exec", c.id(), "cat", "/proc/self/cgroup"]);
    out.assert_code(0);
    assert!(out.stdout.trim_end().ends_with("/foo"), "+{ctrl}: {out}");
    // An explicit `--cgroup /` gets no fallback (runc's exec.bats).
    let out = c.invoke(&["exec", "--cgroup", "/", c.id(), "true"]);
    out.assert_code(255);
    assert!(out.stderr.contains("/cgroup.procs: "), "{out}");
    // delete removes the sub-cgroup with the container's own.
    c.finish();
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// `unified` keys for controllers a v1 hierarchy serves: runc's "invalid
/// configuration", refused before anything exists. On a pure v2 host the
/// key is written.
#[test]
fn unified_on_cgroup_v1_is_refused_before_anything_exists() {
    let c = sleeper("cg_unified", |c| {
        c["linux"]["resources"]["unified"] = json!({ "memory.min": "131072" })
    });
    let out = c.create();
    // Refused where memory is a v1 hierarchy, or where there is no cgroup2 at all.
    if v1_mount("memory").is_some() || cgroup2_mountpoint().is_none() {
        out.assert_fails_mentioning(&[
            "linux.resources.unified[\"memory.min\"]",
            "invalid configuration",
        ]);
        c.invoke(&["state", c.id()])
            .assert_fails_mentioning(&["does not exist"]);
        c.assert_no_leftovers();
    } else {
        out.assert_ok();
        let f = cgroup_file(c.pid(), "memory", "memory.min", "memory.min");
        assert_eq!(std::fs::read_to_string(&f.host).unwrap().trim(), "131072");
        c.finish();
    }
}

/// A pre-existing frozen cgroup is refused (runc: "container's cgroup
/// unexpectedly frozen"): berth used to start init in it and hang.
#[test]
fn frozen_cgroup_is_refused_not_joined() {
    let mut c = sleeper("cg_frozen", |_| {});
    let path = format!("/{}", c.id());
    let value = path.clone();
    c.bundle_mut()
        .patch(|config| config["linux"]["cgroupsPath"] = value.into());
    let (dir, file, frozen, thawed) = match v1_mount("freezer") {
        Some(m) => (m.join(c.id()), "freezer.state", "FROZEN", "THAWED"),
        None => (
            cgroup2_mountpoint().unwrap().join(c.id()),
            "cgroup.freeze",
            "1",
            "0",
        ),
    };
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join(file), frozen).unwrap();
    // If berth joined the frozen cgroup it would hang: thaw after a while so
    // the test fails instead of hanging.
    let watchdog = {
        let f = dir.join(file);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(20));
            let _ = std::fs::write(f, thawed);
        })
    };
    let out = c.create();
    out.assert_fails_mentioning(&[
        "linux.cgroupsPath",
        "container's cgroup unexpectedly frozen",
    ]);
    assert!(!c.rt().root().join(c.id()).exists(), "no state dir: {out}");
    // The frozen cgroup is the caller's: berth neither joined nor removed it.
    assert!(dir.is_dir());
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.procs")).unwrap(),
        "",
        "nothing was started in it"
    );
    std::fs::write(dir.join(file), thawed).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    c.assert_no_leftovers();
    drop(watchdog);
}

/// A second container in the same cgroup is joined with runc's warning,
/// in the log and (without --log) on stderr.
#[test]
fn non_empty_cgroup_warns() {
    let parent = berth_integration::unique_id("cgshared");
    let path = format!("/{parent}");
    let set_path = |c: &mut serde_json::Value| c["linux"]["cgroupsPath"] = path.clone().into();
    let first = sleeper("cg_shared1", set_path);
    first.create_and_start();
    let second = sleeper("cg_shared2", set_path);
    second.create().assert_ok();
    let warning = second
        .log_lines()
        .into_iter()
        .find(|l| l["level"] == "warning")
        .unwrap_or_else(|| panic!("no warning in {:?}", second.log_lines()));
    assert_eq!(
        warning["msg"],
        "container's cgroup is not empty: 1 process(es) found"
    );
    // Without --log, runc's logrus writes the warning on stderr.
    let third_id = berth_integration::unique_id("cg_shared3");
    let third = Bundle::busybox().args(&["sleep", "100"]).with(set_path);
    let out = Runtime::new().run(&["create", "--bundle", &third.path_str(), &third_id]);
    out.assert_ok();
    assert!(
        out.stderr
            .contains("container's cgroup is not empty: 2 process(es) found"),
        "{out}"
    );
    Runtime::new()
        .run(&["delete", "--force", &third_id])
        .assert_ok();
    second.delete_force().assert_ok();
    first.delete_force().assert_ok();
    for c in [&first, &second] {
        c.assert_no_leftovers();
    }
    berth_integration::leftovers(Runtime::new().root(), &third_id, third.path())
        .assert_empty(&third_id);
    for d in cgroup_dirs(&path) {
        assert!(!d.exists(), "{} left", d.display());
    }
}

/// `exec --cgroup`: sub-cgroups of the container's, never above it; a
/// missing one fails (exit 255, runc's words) instead of hanging.
#[test]
fn exec_joins_sub_cgroups() {
    let c = sleeper("cg_execsub", |_| {});
    c.create_and_start();
    let out = c.invoke(&["exec", "--cgroup", "..", c.id(), "true"]);
    out.assert_code(255);
    assert!(out.stderr.contains(" .. is not a sub cgroup path"), "{out}");
    let out = c.invoke(&["exec", "--cgroup", "nonexistent", c.id(), "true"]);
    out.assert_code(255);
    assert!(
        out.stderr
            .contains("/nonexistent/cgroup.procs: no such file "),
        "{out}"
    );
    let out = c.invoke(&["exec", "--cgroup", "whaaat:/", c.id(), "true"]);
    out.assert_code(255);
    assert!(out.stderr.contains("unknown controller whaaat"), "{out}");

    // A sub-cgroup in every hierarchy, made from the host.
    let init = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
    let own = mounted_memberships(&init)
        .first()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    for d in cgroup_dirs(&own) {
        std::fs::create_dir(d.join("sub")).unwrap();
        // A new v1 cpuset takes no task until it has cpus and mems. (On v2
        // the sub-cgroup has no cpuset files: the container's cgroup enables
        // no controller for its children.)
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let sub = d.join("sub").join(f);
            if let (Ok(v), true) = (std::fs::read_to_string(d.join(f)), sub.exists()) {
                std::fs::write(sub, v.trim()).unwrap();
            }
        }
    }
    let out = c.invoke(&[
        "exec",
        "--cgroup",
        "sub",
        c.id(),
        "cat",
        "/proc/self/cgroup",
    ]);
    out.assert_code(0);
    assert!(
        mounted_memberships(&out.stdout)
            .iter()
            .all(|l| l.ends_with(&format!("{own}/sub"))),
        "{out}"
    );
    if v1_mount("memory").is_some() {
        let out = c.invoke(&[
            "exec",
            "--cgroup",
            "memory:sub",
            c.id(),
            "cat",
            "/proc/self/cgroup",
        ]);
        out.assert_code(0);
        for l in mounted_memberships(&out.stdout) {
            let memory = l
                .split(':')
                .nth(1)
                .unwrap()
                .split(',')
                .any(|x| x == "memory");
            assert_eq!(l.ends_with("/sub"), memory, "{l}\n{out}");
        }
    }
    // A process left in a sub-cgroup is killed and the sub-cgroups removed
    // by delete (runc's delete.bats "delete --force … with subcgroups").
    c.invoke(&["exec", "-d", "--cgroup", "sub", c.id(), "sleep", "100"])
        .assert_ok();
    c.finish();
}

/// runc refuses exec into a paused container with exit 255.
#[test]
fn exec_in_a_paused_container_exits_255() {
    let c = sleeper("cg_execpaused", |_| {});
    c.create_and_start();
    c.invoke(&["pause", c.id()]).assert_ok();
    let out = c.invoke(&["exec", c.id(), "echo", "ok"]);
    out.assert_code(255);
    assert!(
        out.stderr.contains("cannot exec in a paused container"),
        "{out}"
    );
    c.invoke(&["resume", c.id()]).assert_ok();
    c.finish();
}

/// `kill --all`: every process of the cgroup (sub-cgroups too) gets the
/// signal; a paused container stays paused for a signal other than KILL.
#[test]
fn kill_all_reaches_every_process_and_keeps_pause() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh("trap 'echo got-usr1' USR1; echo ready; while true; do sleep 1; done"),
        "cg_killall",
    );
    c.create_and_start();
    c.wait_output("ready");
    c.invoke(&["exec", "-d", c.id(), "sleep", "100"])
        .assert_ok();
    c.invoke(&["pause", c.id()]).assert_ok();
    c.invoke(&["kill", "--all", c.id(), "USR1"]).assert_ok();
    assert_eq!(c.status(), "paused", "kill --all USR1 must not resume it");
    c.invoke(&["resume", c.id()]).assert_ok();
    c.wait_output("got-usr1");
    let procs = cgroup_file(c.pid(), "pids", "cgroup.procs", "cgroup.procs");
    c.invoke(&["kill", "--all", c.id(), "KILL"]).assert_ok();
    poll_until("every process gone", PATIENCE, || {
        let text = std::fs::read_to_string(&procs.host).ok()?;
        text.trim().is_empty().then_some(())
    });
    c.wait_stopped();
    c.finish();
}

/// As runc: a `linux.devices` node gets no device-cgroup rule of its own
/// (dev.bats "device cgroup deny"); access strings may come in any order,
/// and a deny rule may carry runc's stray `a` (update.bats "rwa").
#[test]
fn device_rules_follow_runc() {
    let script = "echo x > /dev/kmsg && echo wrote; true";
    let with = |extra: serde_json::Value| {
        move |c: &mut serde_json::Value| {
            c["linux"]["devices"] =
                json!([{ "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11 }]);
            let rules = c["linux"]["resources"]["devices"].as_array_mut().unwrap();
            rules.push(extra);
        }
    };
    let denied = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh(script).with(with(
            json!({ "allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa" }),
        )),
        "cg_devdeny",
    );
    let out = denied.run();
    assert!(!out.stdout.contains("wrote"), "{out}");
    assert!(out.text().contains("Operation not permitted"), "{out}");
    denied.finish();
    let allowed = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh(script).with(with(
            json!({ "allow": true, "type": "c", "major": 1, "minor": 11, "access": "mw" }),
        )),
        "cg_devallow",
    );
    let out = allowed.run();
    assert!(out.stdout.contains("wrote"), "{out}");
    allowed.finish();
    // An allow rule with a letter the kernel does not know: refused at parse
    // time, naming the field, leaving nothing.
    let bad = Container::new(
        &Runtime::new(),
        Bundle::busybox().with(with(
            json!({ "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa" }),
        )),
        "cg_devbad",
    );
    bad.create()
        .assert_fails_mentioning(&["linux.resources.devices[1].access", "\"rwa\""]);
    bad.assert_no_leftovers();
}

/// runc's update flags: negative values mean unlimited (`--memory-swap -1`,
/// `--cpu-quota -1`, `--pids-limit -1`) and the shares flag is `--cpu-share`.
#[test]
fn update_takes_runc_flags_and_negative_values() {
    if let Some(why) = berth_integration::missing_controller("memory") {
        return berth_integration::skip("update_takes_runc_flags_and_negative_values", &why);
    }
    let c = sleeper("cg_update_neg", |c| {
        c["linux"]["resources"]["memory"] = json!({ "limit": 33_554_432 });
        c["linux"]["resources"]["cpu"] = json!({ "quota": 500_000, "period": 1_000_000 });
        c["linux"]["resources"]["pids"] = json!({ "limit": 20 });
    });
    c.create_and_start();
    let pid = c.pid();
    c.invoke(&[
        "update",
        c.id(),
        "--cpu-quota",
        "-1",
        "--cpu-share",
        "200",
        "--pids-limit",
        "-1",
    ])
    .assert_ok();
    let read = |f: &berth_integration::CgroupFile| {
        std::fs::read_to_string(&f.host).unwrap().trim().to_string()
    };
    let pids = cgroup_file(pid, "pids", "pids.max", "pids.max");
    assert_eq!(read(&pids), "max");
    let quota = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(
        matches!(read(&quota).as_str(), "-1" | "max 1000000"),
        "{}",
        read(&quota)
    );
    let shares = cgroup_file(pid, "cpu", "cpu.shares", "cpu.weight");
    // v2: cpu.weight from runc >= 1.3's and crun's curve (docs/cgroups.md),
    // which maps 200 shares to 29.
    assert!(
        matches!(read(&shares).as_str(), "200" | "29"),
        "{}",
        read(&shares)
    );
    let memsw = cgroup_file(
        pid,
        "memory",
        "memory.memsw.limit_in_bytes",
        "memory.swap.max",
    );
    if memsw.host.exists() {
        c.invoke(&["update", c.id(), "--memory-swap", "-1"])
            .assert_ok();
        let v = read(&memsw);
        assert!(v == "max" || v.parse::<u64>().unwrap() > 1 << 60, "{v}");
    }
    c.invoke(&["update", c.id(), "--memory", "-1"]).assert_ok();
    let limit = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    let v = read(&limit);
    assert!(v == "max" || v.parse::<u64>().unwrap() > 1 << 60, "{v}");
    c.finish();
}

/// `linux.resources.blockIO` from config.json reaches the cgroup (it was
/// read as `blockIo` and silently ignored), and bad values are refused at
/// parse time naming the field, leaving nothing.
#[test]
fn block_io_from_the_config_is_applied() {
    // A whole disk of this machine (not a partition or ram device); a VM
    // of the kernel matrix has only the loop device its init script set up.
    let mut disks: Vec<(bool, String)> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with("ram"))
        .filter_map(|n| {
            let dev = std::fs::read_to_string(format!("/sys/block/{n}/dev")).ok()?;
            // Only an attached loop device takes throttle rules.
            let attached = !n.starts_with("loop")
                || std::path::Path::new(&format!("/sys/block/{n}/loop/backing_file")).exists();
            attached.then(|| (n.starts_with("loop"), dev.trim().to_string()))
        })
        .collect();
    disks.sort();
    let dev = disks.into_iter().next().expect("a block device").1;
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let c = sleeper("cg_blkio", |c| {
        c["linux"]["resources"]["blockIO"] = json!({
            "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 1_048_576 }]
        })
    });
    c.create().assert_ok();
    let f = cgroup_file(c.pid(), "blkio", "blkio.throttle.read_bps_device", "io.max");
    let text = std::fs::read_to_string(&f.host).unwrap();
    assert!(
        text.contains(&format!("{dev} 1048576")) || text.contains(&format!("{dev} rbps=1048576")),
        "{}: {text:?}",
        f.host.display()
    );
    c.finish();

    let bad = sleeper("cg_blkio_bad", |c| {
        c["linux"]["resources"]["blockIO"] = json!({ "weight": 5000 })
    });
    bad.create()
        .assert_fails_mentioning(&["linux.resources.blockIO.weight", "5000"]);
    bad.invoke(&["state", bad.id()])
        .assert_fails_mentioning(&["does not exist"]);
    bad.assert_no_leftovers();
}

/// `linux.resources.network` needs net_cls / net_prio v1 hierarchies: where
/// the host has none, create fails naming the field and leaves nothing;
/// where it has them, the class id is written.
#[test]
fn network_class_id_or_a_clear_refusal() {
    let c = sleeper("cg_netcls", |c| {
        c["linux"]["resources"]["network"] = json!({ "classID": 1_048_577 })
    });
    let out = c.create();
    if v1_mount("net_cls").is_some() {
        out.assert_ok();
        let f = cgroup_file(c.pid(), "net_cls", "net_cls.classid", "-");
        assert_eq!(std::fs::read_to_string(&f.host).unwrap().trim(), "1048577");
        c.finish();
    } else {
        out.assert_fails_mentioning(&["linux.resources.network.classID", "net_cls"]);
        c.invoke(&["state", c.id()])
            .assert_fails_mentioning(&["does not exist"]);
        c.assert_no_leftovers();
    }
    let bad =
        sleeper(
            "cg_netbad",
            |c| {
                c["linux"]["resources"]["network"] =
                    json!({ "priorities": [{ "name": "eth0 7\nlo", "priority": 1 }] })
            },
        );
    bad.create()
        .assert_fails_mentioning(&["linux.resources.network.priorities[0].name"]);
    bad.assert_no_leftovers();
}

/// A private mount namespace laid out as systemd lays out a hybrid host: the
/// v1 controllers this kernel has but the host does not mount (here
/// net_cls, net_prio, perf_event) get hierarchies under `/sys/fs/cgroup`,
/// net_cls,net_prio co-mounted with a link per name. Built by
/// `integration/conformance/cgroup-env.sh` (the conformance harness's
/// `CGROUP_ENV=host-systemd` uses the same functions) in a holder process;
/// berth runs in that namespace through a wrapper (`nsenter --mount`), and
/// the test reads the namespace's files through `/proc/<holder>/root`.
struct SystemdLikeNs {
    holder: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    stderr: std::fs::File,
    /// The hierarchies added, as named under /sys/fs/cgroup ("net_cls,net_prio").
    added: Vec<String>,
    wrapper: tempfile::TempDir,
}

impl SystemdLikeNs {
    fn start() -> SystemdLikeNs {
        use std::io::BufRead;
        let script =
            berth_integration::workspace_dir().join("integration/conformance/cgroup-env.sh");
        let stderr = tempfile::tempfile().unwrap();
        let mut holder = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "bash", "-c"])
            .arg(
                "set -u; . \"$1\"; systemd_v1_mount || exit 1; \
                 echo \"added ${SYSTEMD_V1_ADDED:-}\"; read -r _ || true; \
                 systemd_v1_unmount; rc=$?; echo \"unmounted $rc\"; exit $rc",
            )
            .arg("bash")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr.try_clone().unwrap())
            .spawn()
            .expect("unshare");
        let stdin = holder.stdin.take();
        let mut stdout = std::io::BufReader::new(holder.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let mut ns = SystemdLikeNs {
            holder,
            stdin,
            stdout,
            stderr,
            added: Vec::new(),
            wrapper: tempfile::tempdir().unwrap(),
        };
        let Some(added) = line.trim_end().strip_prefix("added ") else {
            panic!(
                "setting up the namespace failed: {line:?}\n{}",
                ns.stderr_text()
            );
        };
        ns.added = added.split_whitespace().map(String::from).collect();
        let bin = ns.wrapper.path().join("berth");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\nexec nsenter --mount=/proc/{}/ns/mnt -- {} \"$@\"\n",
                ns.holder.id(),
                berth_integration::berth_bin().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        ns
    }

    /// berth, run inside the namespace (with a private state root).
    fn runtime(&self) -> Runtime {
        Runtime::other(self.wrapper.path().join("berth"))
    }

    /// A path inside the namespace, seen from here.
    fn path(&self, inside: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/{}/root{inside}", self.holder.id()))
    }

    /// Every cgroup directory (not the roots) in the added hierarchies.
    fn cgroups(&self) -> Vec<std::path::PathBuf> {
        fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    out.push(e.path());
                    walk(&e.path(), out);
                }
            }
        }
        let mut out = Vec::new();
        for h in &self.added {
            walk(&self.path(&format!("/sys/fs/cgroup/{h}")), &mut out);
        }
        out
    }

    fn stderr_text(&self) -> String {
        read_all(&self.stderr)
    }

    /// Tears the namespace down (cgroups removed, hierarchies unmounted) and
    /// returns what the holder printed.
    fn finish(&mut self) -> (String, String) {
        use std::io::Read;
        drop(self.stdin.take());
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let status = self.holder.wait().unwrap();
        assert!(
            status.success(),
            "teardown: {status}\n{rest}\n{}",
            self.stderr_text()
        );
        (rest, self.stderr_text())
    }
}

impl Drop for SystemdLikeNs {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            drop(self.stdin.take());
            let _ = self.holder.wait();
        }
    }
}

fn read_all(f: &std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut f = f.try_clone().unwrap();
    f.rewind().unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s
}

/// The hierarchy id /proc/cgroups gives `controller` (0: no v1 hierarchy),
/// or None if this kernel has no such controller.
fn v1_hierarchy_id(controller: &str) -> Option<u32> {
    std::fs::read_to_string("/proc/cgroups")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&controller) && f.get(3) == Some(&"1"))
                .then(|| f[1].parse().unwrap())
        })
}

/// `linux.resources.network` on a host whose kernel has net_cls and net_prio
/// mounted the way systemd mounts them (this project's host has them but
/// mounts neither; see [`SystemdLikeNs`]): the class id and the interface
/// priorities are written to the container's cgroup, for an absolute and a
/// relative `cgroupsPath`, and seen inside the container under
/// /sys/fs/cgroup/net_cls and net_prio (links to net_cls,net_prio); an
/// interface the host lacks fails naming the field; and afterwards no cgroup
/// is left in those hierarchies, the namespace is gone and the kernel has
/// dropped the hierarchies again.
#[test]
fn network_class_id_and_priorities_on_a_systemd_like_host() {
    const TEST: &str = "runtime_cgroups::network_class_id_and_priorities_on_a_systemd_like_host";
    if v1_mount("net_cls").is_some() {
        // A systemd host: network_class_id_or_a_clear_refusal writes it there.
        return berth_integration::skip(TEST, "the host mounts net_cls itself");
    }
    if v1_hierarchy_id("net_cls").is_none() || v1_hierarchy_id("net_prio").is_none() {
        return berth_integration::skip(
            TEST,
            "no net_cls/net_prio in this kernel (CONFIG_CGROUP_NET_CLASSID/PRIO)",
        );
    }
    if cgroup_mounts().iter().all(|(t, _, _)| t == "cgroup2") {
        return berth_integration::skip(TEST, "a cgroup v2 host: berth uses no v1 hierarchy there");
    }
    let unbound_before = v1_hierarchy_id("net_cls") == Some(0);
    let mut ns = SystemdLikeNs::start();
    assert!(
        ns.added.iter().any(|h| h == "net_cls,net_prio"),
        "net_cls,net_prio co-mounted: {:?}",
        ns.added
    );
    assert_eq!(
        std::fs::read_link(ns.path("/sys/fs/cgroup/net_prio")).unwrap(),
        std::path::Path::new("net_cls,net_prio")
    );
    let rt = ns.runtime();
    let network = json!({
        "classID": 0x10_0001,
        "priorities": [{ "name": "lo", "priority": 7 }]
    });

    // Absolute (default) and relative cgroupsPath.
    for relative in [false, true] {
        let net = network.clone();
        let bundle = Bundle::busybox()
            .args(&["sleep", "100"])
            .with(|c| c["linux"]["resources"]["network"] = net);
        let mut c = Container::new(&rt, bundle, "cg_netcls_sd");
        let path = if relative {
            format!("{}-parent/{}", c.id(), c.id())
        } else {
            format!("/berth/{}", c.id())
        };
        if relative {
            let p = path.clone();
            c.bundle_mut()
                .patch(|config| config["linux"]["cgroupsPath"] = p.into());
        }
        c.create().assert_ok();
        let membership = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap();
        // The test process sits at the root of the new hierarchy, so a
        // relative path lands right under it too.
        let line = membership
            .lines()
            .find(|l| l.split(':').nth(1) == Some("net_cls,net_prio"))
            .unwrap_or_else(|| panic!("no net_cls,net_prio line:\n{membership}"));
        assert!(
            line.ends_with(&format!(":/{}", path.trim_start_matches('/'))),
            "{line}"
        );
        let dir = ns.path(&format!(
            "/sys/fs/cgroup/net_cls/{}",
            path.trim_start_matches('/')
        ));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("net_cls.classid").trim(), "1048577");
        assert!(
            read("net_prio.ifpriomap").lines().any(|l| l == "lo 7"),
            "{}",
            read("net_prio.ifpriomap")
        );
        // Inside: the container's own cgroup, through the links.
        let out = c.invoke(&[
            "exec",
            c.id(),
            "cat",
            "/sys/fs/cgroup/net_cls/net_cls.classid",
            "/sys/fs/cgroup/net_prio/net_prio.ifpriomap",
        ]);
        out.assert_code(0);
        assert!(out.stdout.starts_with("1048577\n"), "{out}");
        assert!(out.stdout.lines().any(|l| l == "lo 7"), "{out}");
        c.finish();
        assert_eq!(
            ns.cgroups(),
            Vec::<std::path::PathBuf>::new(),
            "left in the namespace"
        );
    }

    // An interface the host does not have: the kernel refuses the entry.
    let bad = Container::new(
        &rt,
        Bundle::busybox().args(&["sleep", "100"]).with(|c| {
            c["linux"]["resources"]["network"] =
                json!({ "priorities": [{ "name": "nosuchif0", "priority": 1 }] })
        }),
        "cg_netprio_sd_bad",
    );
    bad.create().assert_fails_mentioning(&[
        "linux.resources.network.priorities[0]",
        "net_prio.ifpriomap",
    ]);
    bad.invoke(&["state", bad.id()])
        .assert_fails_mentioning(&["does not exist"]);
    bad.assert_no_leftovers();
    assert_eq!(
        ns.cgroups(),
        Vec::<std::path::PathBuf>::new(),
        "left in the namespace"
    );

    let (out, err) = ns.finish();
    assert_eq!(out.trim(), "unmounted 0", "{err}");
    // (A wait for the lock is reported too; that is not a failure.)
    assert!(
        !err.contains("cannot") && !err.contains("still alive"),
        "teardown warnings:\n{err}"
    );
    assert!(
        v1_mount("net_cls").is_none() && v1_mount("net_prio").is_none(),
        "nothing mounted on the host"
    );
    if unbound_before {
        // The kernel drops a v1 hierarchy with no mount and no cgroup.
        poll_until("net_cls,net_prio unbound again", PATIENCE, || {
            (v1_hierarchy_id("net_cls") == Some(0) && v1_hierarchy_id("net_prio") == Some(0))
                .then_some(())
        });
    }
}
