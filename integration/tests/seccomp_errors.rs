//! Seccomp errors and warnings a user can act on: conflicting rules name both
//! rules, a denied execve or a filter that kills init says so, skipped names and
//! an empty profile are logged at create, lint finds duplicates in Docker-format
//! profiles, and the user-namespace guard stays on under the runc annotation.

mod seccomp_common;

use std::process::Command;

use berth_integration::{berth_bin, workspace_dir, Container, Output, Runtime};
use seccomp_common::*;
use serde_json::{json, Value};

const ARCHES: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

fn allow_but(rules: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ARCHES, "syscalls": rules})
}

fn warnings(c: &Container) -> Vec<String> {
    c.log_lines()
        .into_iter()
        .filter(|l| l["level"] == "warning")
        .map(|l| l["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// (a) Same syscall, same argument conditions, different actions: libseccomp
/// says EEXIST ("Failure regarding the existence of argument"); berth names
/// the rule and the earlier one it conflicts with.
#[test]
fn conflicting_rules_name_the_earlier_rule() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ARCHES,
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["read", "getppid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(profile),
        "sc_conflict",
    );
    c.create().assert_fails_mentioning(&[
        "linux.seccomp.syscalls[2].names[0]",
        "conflicts with the earlier rule linux.seccomp.syscalls[1].names[1]",
        "getppid",
    ]);
    c.assert_no_leftovers();
}

/// (b) A profile that denies execve: the error says the filter denied the
/// container's execve and names the action, for an errno and for KILL
/// (which would otherwise be a silent SIGSYS).
#[test]
fn denied_execve_names_the_filter_and_the_action() {
    for (action, shown) in [
        ("SCMP_ACT_ERRNO", "SCMP_ACT_ERRNO, EPERM"),
        ("SCMP_ACT_KILL", "SCMP_ACT_KILL"),
    ] {
        let profile = allow_but(json!([{"names": ["execve", "execveat"], "action": action}]));
        let c = Container::new(
            &Runtime::new(),
            busybox_with_profile(profile).args(&["true"]),
            "sc_execve",
        );
        let out = c.run();
        out.assert_code(127);
        berth_integration::assert_mentions(
            &out.stderr,
            &["the seccomp filter denied the container's execve", shown],
        );
        c.finish();
    }
}

/// (b) A filter that kills a syscall init needs after loading it (here capset,
/// loaded early because noNewPrivileges is false): init dies without a word;
/// create says the filter killed it and which syscall.
#[test]
fn filter_that_kills_init_is_named_at_create() {
    let profile = allow_but(json!([{"names": ["capset"], "action": "SCMP_ACT_KILL"}]));
    let bundle =
        busybox_with_profile(profile).with(|c| c["process"]["noNewPrivileges"] = false.into());
    let c = Container::new(&Runtime::new(), bundle, "sc_init_killed");
    c.create()
        .assert_fails_mentioning(&["killed by the seccomp filter", "capset (SCMP_ACT_KILL)"]);
    c.assert_no_leftovers();
}

/// (c) A name too new for the installed libseccomp (2.5.4 on the CI machine)
/// is skipped like runc does, and create logs a warning naming the field; an
/// empty `linux.seccomp: {}` disables seccomp with a warning.
#[test]
fn skipped_names_and_an_empty_profile_are_warned_at_create() {
    let profile =
        allow_but(json!([{"names": ["getppid", "uretprobe"], "action": "SCMP_ACT_ERRNO"}]));
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(profile),
        "sc_warn_skip",
    );
    c.create().assert_ok();
    let w = warnings(&c);
    assert!(
        w.iter()
            .any(|m| m.contains("linux.seccomp.syscalls[0].names[1]")
                && m.contains("uretprobe")
                && m.contains("skipped")),
        "a warning for the skipped name: {w:?}"
    );
    c.finish();

    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(json!({})),
        "sc_warn_empty",
    );
    c.create().assert_ok();
    let w = warnings(&c);
    assert!(
        w.iter()
            .any(|m| m.starts_with("linux.seccomp:") && m.contains("seccomp is disabled")),
        "a warning for the empty profile: {w:?}"
    );
    c.finish();
}

fn lint(profile: &std::path::Path) -> Output {
    let mut cmd = Command::new(berth_bin());
    cmd.args(["seccomp", "lint"]).arg(profile);
    let out = Output::of(cmd);
    out.assert_ok();
    out
}

/// `seccomp lint` finds duplicate names in a Docker-format profile (the
/// format of profiles/default.json): resolving merges them, so they must be
/// found in the source, with the source's field paths. Entries that differ
/// in includes/excludes are variants, not duplicates.
#[test]
fn lint_finds_duplicates_in_docker_format_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let docker = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [
            {"names": ["read", "write", "utimes"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid", "utimes"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL"},
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_BPF"]}}
        ]
    });
    let path = write_profile(dir.path(), "docker.json", &docker);
    let out = lint(&path);
    let dups: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("warning[duplicate]"))
        .collect();
    assert!(
        dups.iter().any(|l| l.contains("syscalls[1].names[1]")
            && l.contains("\"utimes\" is already listed in syscalls[0].names[2]")),
        "{out}"
    );
    assert!(
        dups.iter()
            .any(|l| l.contains("syscalls[3].names[0]") && l.contains("conflicts")),
        "{out}"
    );
    assert!(
        !out.stdout.contains("\"bpf\""),
        "variants are no duplicates:\n{out}"
    );
    assert_eq!(dups.len(), 2, "{out}");

    // berth's own default profile (Docker format) has none.
    let out = lint(&workspace_dir().join("profiles/default.json"));
    assert!(!out.stdout.contains("warning[duplicate]"), "{out}");
}

/// (d) The user-namespace guard is not a verdict: it stays on under the runc
/// annotation. `explain --runc` says so, and a container with the annotation
/// and its own user namespace cannot create a nested one with raw clone3.
#[test]
fn userns_guard_stays_on_under_the_runc_annotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(dir.path(), "default.json", &default_profile());
    let native = "SCMP_ARCH_X86_64";
    let v = explain(&path, native, "clone3", &[], &["--userns", "--runc"]);
    assert_eq!(
        (v["action"].as_str(), v["userns_guard"].as_bool()),
        (Some("allow"), Some(true)),
        "{v}"
    );
    let v = explain(&path, native, "clone3", &[], &["--runc"]);
    assert_eq!(
        (v["action"].as_str(), v["userns_guard"].as_bool()),
        (Some("allow"), Some(false)),
        "{v}"
    );
    let v = explain(&path, native, "clone3", &[], &[]);
    assert_eq!(
        (v["action"].as_str(), v["errno"].as_u64()),
        (Some("errno"), Some(libc::ENOSYS as u64)),
        "{v}"
    );

    let script = "p() { printf '%s: ' \"$1\"; shift; \"$@\"; }\n\
                  p newuser berth-probe clone3 0x10000000\n\
                  echo \"max: value=$(cat /proc/sys/user/max_user_namespaces)\"\n";
    let bundle = bookworm_bundle().sh(script).with(|c| {
        add_user_namespace(c);
        c["annotations"] = json!({"run.berth.seccomp.enosys": "runc"});
    });
    let c = Container::new(&Runtime::new(), bundle, "sc_runc_guard");
    let out = c.run();
    out.assert_code(0);
    assert_errno(&out.stdout, "newuser", libc::ENOSPC);
    assert_eq!(tagged(&out.stdout, "max")["value"], "0", "{out}");
    c.finish();
}

/// A profile that denies getcwd (runtime-tools `linux_seccomp`) does not stop
/// the container from starting: init enters and checks process.cwd before it
/// loads the filter, also when noNewPrivileges is false (filter loaded early).
#[test]
fn a_profile_denying_getcwd_still_starts_the_container() {
    for nnp in [false, true] {
        let profile = allow_but(json!([{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]));
        let bundle = busybox_with_profile(profile)
            .args(&["true"])
            .with(|c| c["process"]["noNewPrivileges"] = nnp.into());
        let c = Container::new(&Runtime::new(), bundle, "sc_getcwd");
        let out = c.run();
        out.assert_code(0);
        c.finish();
    }
}
