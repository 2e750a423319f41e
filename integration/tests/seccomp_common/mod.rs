//! Helpers shared by the `seccomp_*.rs` tests (a subdirectory module, so cargo does
//! not build it as a test binary of its own). Each test file uses a subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_integration::{berth_bin, fixtures_dir, Bundle, Output};
use serde_json::{json, Value};

/// runc spec's (and `berth spec`'s) default bounding set: no CAP_SYS_ADMIN.
pub const SPEC_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The shared Debian 12 fixture (glibc 2.36, which creates threads with clone3).
pub fn bookworm_rootfs() -> PathBuf {
    let rootfs = fixtures_dir().join("rootfs/bookworm");
    assert!(
        rootfs.join("etc/berth-fixture").exists(),
        "bookworm fixture missing at {} (run `make fixtures` or set BERTH_FIXTURES)",
        rootfs.display()
    );
    rootfs
}

/// The config.json that `berth spec --seccomp default` writes, parsed.
pub fn berth_spec_config() -> Value {
    let dir = tempfile::Builder::new()
        .prefix("berth-itest-spec-")
        .tempdir()
        .expect("creating a dir for berth spec");
    let mut cmd = Command::new(berth_bin());
    cmd.args(["spec", "--seccomp", "default"])
        .current_dir(dir.path());
    let out = Output::of(cmd);
    out.assert_ok();
    let text = std::fs::read_to_string(dir.path().join("config.json"))
        .expect("berth spec wrote config.json");
    serde_json::from_str(&text).expect("berth spec's config.json is JSON")
}

/// `linux.seccomp` as `berth spec --seccomp default` writes it (berth's default profile, resolved
/// for runc's default capabilities).
pub fn default_profile() -> Value {
    let profile = berth_spec_config()["linux"]["seccomp"].clone();
    assert!(
        profile["syscalls"].is_array(),
        "berth spec writes a seccomp profile"
    );
    profile
}

/// A bundle whose config is exactly `berth spec --seccomp default`'s output (default seccomp profile,
/// no user namespace), with the rootfs pointed at the read-only bookworm fixture, no
/// terminal, and `/etc/hosts` bind-mounted from the bundle so that `berth-test`
/// resolves to 127.0.0.1 through glibc's getaddrinfo — curl resolves `localhost`
/// without starting a resolver thread, `berth-test` needs one.
pub fn bookworm_bundle() -> Bundle {
    let spec = berth_spec_config();
    let bundle = Bundle::busybox().with(|c| *c = spec);
    let hosts = bundle.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost berth-test\n").expect("writing hosts");
    let hosts = hosts.to_string_lossy().into_owned();
    let rootfs = bookworm_rootfs().to_string_lossy().into_owned();
    bundle.with(|c| {
        c["root"] = json!({ "path": rootfs, "readonly": true });
        c["process"]["terminal"] = false.into();
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/etc/hosts", "type": "bind", "source": hosts,
            "options": ["rbind", "ro"]
        }));
    })
}

/// A bundle on the busybox fixture (which also carries the probes) whose
/// `linux.seccomp` is `profile`.
pub fn busybox_with_profile(profile: Value) -> Bundle {
    Bundle::busybox().with(|c| c["linux"]["seccomp"] = profile)
}

/// Gives the container its own user namespace, root mapped to host 100000
/// (65536 ids), as an unprivileged CI task gets.
pub fn add_user_namespace(config: &mut Value) {
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user" }));
    let map = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    config["linux"]["uidMappings"] = map.clone();
    config["linux"]["gidMappings"] = map;
}

/// Removes `name` from every rule of `profile`, dropping rules left with no names.
pub fn remove_name(profile: &mut Value, name: &str) {
    let rules = profile["syscalls"].as_array_mut().expect("syscalls[]");
    for rule in rules.iter_mut() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != name);
        }
    }
    rules.retain(|r| r["names"].as_array().is_some_and(|n| !n.is_empty()));
}

/// True when some rule of `profile` names `name`.
pub fn names(profile: &Value, name: &str) -> bool {
    profile["syscalls"]
        .as_array()
        .expect("syscalls[]")
        .iter()
        .any(|r| {
            r["names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|x| x == name))
        })
}

/// One probe output line (`ret=-1 errno=38 err=ENOSYS`) as key → value.
pub fn fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The probe line of `stdout` that starts with `tag:` (scripts print
/// `echo -n "tag: "` before each probe), parsed.
#[track_caller]
pub fn tagged(stdout: &str, tag: &str) -> BTreeMap<String, String> {
    let prefix = format!("{tag}:");
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    // Exactly one: a probe whose call really forked would print twice.
    assert_eq!(
        lines.len(),
        1,
        "expected one line tagged {tag:?} in:\n{stdout}"
    );
    fields(lines[0])
}

/// Asserts that the tagged probe line reports `errno` (with ret=-1).
#[track_caller]
pub fn assert_errno(stdout: &str, tag: &str, errno: i32) {
    let f = tagged(stdout, tag);
    assert_eq!(
        (f.get("ret").map(String::as_str), f.get("errno")),
        (Some("-1"), Some(&errno.to_string())),
        "{tag}: expected errno {errno}, got {f:?}\n{stdout}"
    );
}

/// Asserts that the tagged probe line reports success (ret ≥ 0, errno 0).
#[track_caller]
pub fn assert_allowed(stdout: &str, tag: &str) {
    let f = tagged(stdout, tag);
    let ret: i64 = f["ret"].parse().expect("numeric ret");
    assert!(
        ret >= 0 && f["errno"] == "0",
        "{tag}: expected success, got {f:?}\n{stdout}"
    );
}

/// Writes `profile` to `<dir>/<name>` for the `berth seccomp` tools.
pub fn write_profile(dir: &Path, name: &str, profile: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(profile).unwrap())
        .expect("writing a profile file");
    path
}

/// `berth seccomp explain --json PROFILE NR ARGS… --arch ARCH EXTRA…`, parsed.
pub fn explain(profile: &Path, arch: &str, nr: &str, args: &[String], extra: &[&str]) -> Value {
    let mut cmd = Command::new(berth_bin());
    cmd.args(["seccomp", "explain", "--json"])
        .arg(profile)
        .arg(nr)
        // `--` would be needed for negative args; keep them unsigned hex instead.
        .args(args)
        .args(["--arch", arch])
        .args(extra);
    let out = Output::of(cmd);
    out.assert_ok();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("explain --json is not JSON ({e}):\n{out}"))
}
