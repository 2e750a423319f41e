//! Bad input: every one must give a non-zero exit, a message that names the field
//! or argument (on stderr and as the last `"level":"error"` line of the JSON log,
//! where containerd looks), and leave nothing behind.

use berth_integration::{Bundle, Container, Output, Runtime};
use serde_json::json;

/// Runs `create`, which must fail naming every one of `needles`, with no
/// container left (`state` says it does not exist, no leftovers on the host).
#[track_caller]
fn assert_create_refused(c: &Container, needles: &[&str]) -> Output {
    let out = c.create();
    check_refused(c, &out, needles);
    out
}

#[track_caller]
fn check_refused(c: &Container, out: &Output, needles: &[&str]) {
    // Shown with --nocapture: the messages are worth reading.
    println!("{out}");
    out.assert_fails_mentioning(needles);
    let last_error = c
        .log_lines()
        .into_iter()
        .rev()
        .find(|l| l["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in the JSON log for:\n{out}"));
    let msg = last_error["msg"].as_str().expect("log line has a msg");
    berth_integration::assert_mentions(msg, needles);
    c.invoke(&["state", c.id()])
        .assert_fails_mentioning(&["does not exist"]);
    c.assert_no_leftovers();
}

fn refused(tag: &str, bundle: Bundle, needles: &[&str]) {
    let c = Container::new(&Runtime::new(), bundle, tag);
    assert_create_refused(&c, needles);
}

#[test]
fn missing_config_json() {
    let bundle = Bundle::busybox();
    bundle.remove_config();
    refused("no_config", bundle, &["config.json"]);
}

#[test]
fn config_json_is_not_json() {
    let bundle = Bundle::busybox();
    bundle.write_raw("{ this is not json");
    refused("bad_json", bundle, &["config.json"]);
}

#[test]
fn config_json_is_not_an_object() {
    let bundle = Bundle::busybox();
    bundle.write_raw("[1, 2, 3]");
    refused("json_array", bundle, &["config.json"]);
}

#[test]
fn wrong_type_for_process_args() {
    refused(
        "args_type",
        Bundle::busybox().with(|c| c["process"]["args"] = "sh".into()),
        &["process.args"],
    );
}

#[test]
fn wrong_type_for_root_readonly() {
    refused(
        "readonly_type",
        Bundle::busybox().with(|c| c["root"]["readonly"] = "yes".into()),
        &["root.readonly"],
    );
}

#[test]
fn wrong_type_for_uid() {
    refused(
        "uid_type",
        Bundle::busybox().with(|c| c["process"]["user"]["uid"] = (-1).into()),
        &["process.user.uid"],
    );
}

#[test]
fn unknown_oci_version() {
    // runc 1.1 accepts any version string; berth refuses a major it does not know.
    refused(
        "oci_version",
        Bundle::busybox().with(|c| c["ociVersion"] = "9.0.0".into()),
        &["ociVersion", "9.0.0"],
    );
}

#[test]
fn missing_process() {
    let bundle = Bundle::busybox().with(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    refused("no_process", bundle, &["process"]);
}

#[test]
fn empty_args() {
    refused(
        "empty_args",
        Bundle::busybox().with(|c| c["process"]["args"] = json!([])),
        &["args"],
    );
}

#[test]
fn missing_rootfs() {
    let missing = format!("/nonexistent/{}", berth_integration::unique_id("rootfs"));
    let value = missing.clone();
    refused(
        "no_rootfs",
        Bundle::busybox().with(|c| c["root"]["path"] = value.into()),
        &[&missing],
    );
}

#[test]
fn program_not_found() {
    refused(
        "no_program",
        Bundle::busybox().args(&["no-such-program-xyz"]),
        &["no-such-program-xyz"],
    );
}

#[test]
fn relative_cwd() {
    refused(
        "relative_cwd",
        Bundle::busybox().with(|c| c["process"]["cwd"] = "tmp".into()),
        &["cwd"],
    );
}

#[test]
fn bad_mount_type() {
    let bundle = Bundle::busybox().with(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "destination": "/home", "type": "nosuchfs", "source": "none" }));
    });
    refused("mount_type", bundle, &["/home"]);
}

#[test]
fn namespace_path_that_is_not_a_namespace() {
    let mut bundle = Bundle::busybox();
    let not_ns = bundle.path().join("not-a-namespace");
    std::fs::write(&not_ns, "plain file").unwrap();
    let path = not_ns.to_string_lossy().into_owned();
    let value = path.clone();
    bundle.patch(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = value.clone().into();
            }
        }
    });
    refused("ns_path", bundle, &[&path]);
}

#[test]
fn namespace_path_that_does_not_exist() {
    let path = format!("/run/netns/{}", berth_integration::unique_id("nonexistent"));
    let value = path.clone();
    let bundle = Bundle::busybox().with(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = value.clone().into();
            }
        }
    });
    refused("ns_missing", bundle, &[&path]);
}

#[test]
fn unknown_namespace_type() {
    let bundle = Bundle::busybox().with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "type": "nosuchns" }))
    });
    refused("ns_type", bundle, &["nosuchns"]);
}

fn with_user_ns(c: &mut serde_json::Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user" }));
}

#[test]
fn user_namespace_without_mappings() {
    refused(
        "maps_missing",
        Bundle::busybox().with(with_user_ns),
        &["mapping"],
    );
}

#[test]
fn user_namespace_with_uid_but_no_gid_mappings() {
    let bundle = Bundle::busybox().with(|c| {
        with_user_ns(c);
        c["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    });
    refused("maps_no_gid", bundle, &["gid"]);
}

#[test]
fn user_namespace_with_a_zero_size_mapping() {
    let bundle = Bundle::busybox().with(|c| {
        with_user_ns(c);
        c["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 0 }]);
        c["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    });
    refused("maps_zero", bundle, &["uidMappings"]);
}

#[test]
fn user_namespace_with_overlapping_mappings() {
    let bundle = Bundle::busybox().with(|c| {
        with_user_ns(c);
        c["linux"]["uidMappings"] = json!([
            { "containerID": 0, "hostID": 100000, "size": 1000 },
            { "containerID": 500, "hostID": 200000, "size": 1000 }
        ]);
        c["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    });
    refused("maps_overlap", bundle, &["uidMappings"]);
}

#[test]
fn rlimit_soft_above_hard() {
    let bundle = Bundle::busybox().with(|c| {
        c["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 4096, "hard": 1024 }])
    });
    let c = Container::new(&Runtime::new(), bundle, "rlimit_soft_hard");
    let out = c.create();
    check_refused(&c, &out, &["rlimit"]);
    // Name which one: runc says "rlimit type 7", berth names RLIMIT_NOFILE.
    let text = out.text();
    assert!(text.contains("NOFILE") || text.contains("type 7"), "{out}");
}

#[test]
fn unknown_rlimit_type() {
    let bundle = Bundle::busybox().with(|c| {
        c["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOSUCH", "soft": 1, "hard": 1 }])
    });
    // runc 1.1 says `failed to map rlimit`, without the name.
    refused("rlimit_type", bundle, &["RLIMIT_NOSUCH"]);
}

#[test]
fn unknown_capability() {
    let bundle = Bundle::busybox()
        .with(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_NO_SUCH_THING"]));
    refused("cap_name", bundle, &["CAP_NO_SUCH_THING"]);
}

#[test]
fn hostname_without_a_uts_namespace() {
    let bundle = Bundle::busybox().with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "uts");
        c["hostname"] = "not-allowed".into();
    });
    refused("hostname_no_uts", bundle, &["hostname"]);
}

#[test]
fn bundle_that_does_not_exist() {
    let rt = Runtime::new();
    let c = Container::new(&rt, Bundle::busybox(), "no_bundle");
    let missing = format!("/nonexistent/{}", c.id());
    let out = c.invoke(&["create", "--bundle", &missing, c.id()]);
    out.assert_fails_mentioning(&[&missing]);
    c.assert_no_leftovers();
}

#[test]
fn bad_container_ids() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox();
    let unique = berth_integration::unique_id("escape");
    for id in [
        format!("../{unique}"),
        format!("a/{unique}"),
        format!("{unique}/.."),
        ".".to_string(),
        "..".to_string(),
    ] {
        let out = rt.run(&["create", "--bundle", &bundle.path_str(), &id]);
        // runc: "invalid id format: <id>".
        out.assert_fails_mentioning(&["id"]);
        assert!(out.text().contains(&id), "names the id {id:?}: {out}");
    }
    assert!(
        !rt.root().join("..").join(&unique).exists(),
        "no state dir outside the root"
    );
    assert!(!std::path::Path::new("/run").join(&unique).exists());
    berth_integration::leftovers(rt.root(), &unique, bundle.path()).assert_empty(&unique);
}

#[test]
fn empty_container_id() {
    let rt = Runtime::new();
    let bundle = Bundle::busybox();
    let out = rt.run(&["create", "--bundle", &bundle.path_str(), ""]);
    assert!(!out.success(), "{out}");
    assert!(out.text().to_lowercase().contains("id"), "{out}");
}

#[test]
fn unknown_signal() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["sleep", "100"]),
        "bad_signal",
    );
    c.create_and_start();
    for sig in ["SIGNOSUCH", "NOSUCH", "999"] {
        c.kill(sig).assert_fails_mentioning(&[sig]);
    }
    assert_eq!(
        c.status(),
        "running",
        "a refused kill leaves the container running"
    );
    c.finish();
}

#[test]
fn missing_container_id_argument() {
    let rt = Runtime::new();
    for verb in ["state", "start", "delete", "kill"] {
        let out = rt.run(&[verb]);
        assert!(!out.success(), "{out}");
        assert!(!out.stderr.is_empty(), "says why: {out}");
    }
}

#[test]
fn unknown_verb_and_flag() {
    let rt = Runtime::new();
    rt.run(&["no-such-verb"])
        .assert_fails_mentioning(&["no-such-verb"]);
    rt.run(&["list", "--no-such-flag"])
        .assert_fails_mentioning(&["no-such-flag"]);
}

/// A host sysctl, restored on drop: if berth ever wrote it again (the bug these
/// tests guard against), the test fails without leaving the host changed.
struct HostSysctl(&'static str, String);

impl HostSysctl {
    fn save(path: &'static str) -> HostSysctl {
        HostSysctl(path, Self::read(path))
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(path).expect("reading a host sysctl")
    }

    #[track_caller]
    fn assert_unchanged(&self) {
        assert_eq!(Self::read(self.0), self.1, "the host's {} changed", self.0);
    }
}

impl Drop for HostSysctl {
    fn drop(&mut self) {
        if Self::read(self.0) != self.1 {
            let _ = std::fs::write(self.0, &self.1);
        }
    }
}

const KEEPALIVE: &str = "/proc/sys/net/ipv4/tcp_keepalive_time";

fn without_netns(c: &mut serde_json::Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
}

/// A sysctl outside the container's own namespaces would be the host's: refused at
/// create, naming the key, and the host's value is untouched. (berth used to write
/// net.ipv4.tcp_keepalive_time on the host for a config without a network namespace.)
#[test]
fn sysctl_of_the_host_network_namespace_is_refused() {
    let host = HostSysctl::save(KEEPALIVE);
    let other = if host.1.trim() == "7201" {
        "7202"
    } else {
        "7201"
    };
    let bundle = Bundle::busybox().with(|c| {
        without_netns(c);
        c["linux"]["sysctl"] = json!({ "net.ipv4.tcp_keepalive_time": other });
    });
    refused(
        "sysctl_hostnet",
        bundle,
        &[
            "linux.sysctl[\"net.ipv4.tcp_keepalive_time\"]",
            "host network namespace",
        ],
    );
    host.assert_unchanged();
}

#[test]
fn sysctl_with_a_joined_host_network_namespace_is_refused() {
    let host = HostSysctl::save(KEEPALIVE);
    let other = if host.1.trim() == "7203" {
        "7204"
    } else {
        "7203"
    };
    let bundle = Bundle::busybox().with(|c| {
        without_netns(c);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "network", "path": "/proc/self/ns/net"}));
        c["linux"]["sysctl"] = json!({ "net.ipv4.tcp_keepalive_time": other });
    });
    refused(
        "sysctl_joined_hostnet",
        bundle,
        &["linux.sysctl[\"net.ipv4.tcp_keepalive_time\"]"],
    );
    host.assert_unchanged();
}

#[test]
fn sysctl_not_in_any_namespace_is_refused() {
    // The value written is the host's own, so even a runtime that wrongly
    // writes it changes nothing; the refusal is what is checked.
    let host = HostSysctl::save("/proc/sys/kernel/core_pattern");
    let same = host.1.trim().to_string();
    for (tag, key) in [
        ("sysctl_core", "kernel.core_pattern"),
        ("sysctl_climb", "net.//.kernel.core_pattern"),
        ("sysctl_hostname", "kernel.hostname"),
    ] {
        let bundle = Bundle::busybox().with(|c| c["linux"]["sysctl"] = json!({ key: same }));
        refused(tag, bundle, &[&format!("linux.sysctl[{key:?}]")]);
    }
    host.assert_unchanged();
}
