//! Every seccomp action, argument operator and filter flag in a real container
//! (small custom OCI profiles on the busybox rootfs), and profile errors that must
//! stop `create` before anything exists.

mod seccomp_common;

use berth_integration::{Container, Runtime};
use seccomp_common::*;
use serde_json::{json, Value};

/// All three x86 ABIs, so the i386 probe is filtered too instead of killed.
const ARCHES: [&str; 3] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];

/// `defaultAction: ALLOW` plus `rules`.
fn allow_but(rules: Value) -> Value {
    json!({ "defaultAction": "SCMP_ACT_ALLOW", "architectures": ARCHES, "syscalls": rules })
}

/// Prints `TAG: ` then runs the rest of the line.
const TAGGER: &str = "p() { printf '%s: ' \"$1\"; shift; \"$@\"; }\n";

fn run_script(profile: Value, script: &str, tag: &str) -> (Container, berth_integration::Output) {
    let bundle = busybox_with_profile(profile).sh(&format!("{TAGGER}{script}"));
    let c = Container::new(&Runtime::new(), bundle, tag);
    let out = c.run();
    (c, out)
}

#[test]
fn kill_actions_kill_the_process_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        let profile = allow_but(json!([{ "names": ["getppid"], "action": action }]));
        let bundle = busybox_with_profile(profile).args(&["berth-probe", "syscall", "110"]);
        let c = Container::new(&Runtime::new(), bundle, "sc_kill");
        let out = c.run();
        // `run` exits 128 + the signal that killed the container's process.
        out.assert_code(128 + libc::SIGSYS);
        assert!(
            !out.stdout.contains("ret="),
            "{action}: the probe never got to print:\n{out}"
        );
        c.finish();
    }
}

#[test]
fn trap_sends_sigsys_with_the_syscall_and_arch() {
    // Not getppid: busybox sh calls it at startup and would die of the SIGSYS.
    let profile = allow_but(json!([{ "names": ["sched_yield"], "action": "SCMP_ACT_TRAP" }]));
    let (c, out) = run_script(
        profile,
        "p x86_64 berth-probe sigsys 24\np x86 berth-probe-32 sigsys 158\n",
        "sc_trap",
    );
    out.assert_code(0);
    let x86_64 = tagged(&out.stdout, "x86_64");
    assert_eq!(
        (x86_64["sigsys"].as_str(), x86_64["si_syscall"].as_str()),
        ("1", "24"),
        "{out}"
    );
    assert_eq!(x86_64["si_arch"], "0xc000003e", "AUDIT_ARCH_X86_64");
    let x86 = tagged(&out.stdout, "x86");
    assert_eq!(
        (x86["sigsys"].as_str(), x86["si_syscall"].as_str()),
        ("1", "158"),
        "{out}"
    );
    assert_eq!(x86["si_arch"], "0x40000003", "AUDIT_ARCH_I386");
    c.finish();
}

#[test]
fn errno_log_and_allow_rules() {
    let profile = allow_but(json!([
        { "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 },
        { "names": ["getpid"], "action": "SCMP_ACT_LOG" },
        { "names": ["getuid"], "action": "SCMP_ACT_ALLOW" },
        // ERRNO without errnoRet: EPERM (OCI's default errno).
        { "names": ["getgid"], "action": "SCMP_ACT_ERRNO" }
    ]));
    let (c, out) = run_script(
        profile,
        "p errno berth-probe syscall 110\n\
         p log berth-probe syscall 39\n\
         p allow berth-probe syscall 102\n\
         p eperm berth-probe syscall 104\n",
        "sc_errno_log",
    );
    out.assert_code(0);
    assert_errno(&out.stdout, "errno", libc::EACCES);
    assert_allowed(&out.stdout, "log");
    assert_allowed(&out.stdout, "allow");
    assert_errno(&out.stdout, "eperm", libc::EPERM);
    c.finish();
}

#[test]
fn default_errno_ret_and_its_absence() {
    // berth's default profile is an allowlist: kexec_load (246) is unnamed and
    // below the ENOSYS boundary, so the default action answers it.
    for (default_errno, want) in [(Some(95), 95), (None, libc::EPERM)] {
        let mut profile = default_profile();
        match default_errno {
            Some(e) => profile["defaultErrnoRet"] = e.into(),
            None => {
                profile.as_object_mut().unwrap().remove("defaultErrnoRet");
            }
        }
        let (c, out) = run_script(
            profile,
            "p kexec berth-probe syscall 246\np getppid berth-probe syscall 110\n",
            "sc_default_errno",
        );
        out.assert_code(0);
        assert_errno(&out.stdout, "kexec", want);
        assert_allowed(&out.stdout, "getppid");
        c.finish();
    }
}

/// One rule per operator, each on a syscall that ignores its arguments (seccomp
/// still sees the registers) and answering its own errno.
fn operator_profile() -> Value {
    let rule = |name: &str, errno: u32, args: Value| json!({ "names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno, "args": args });
    let cmp =
        |index: u32, value: u64, op: &str| json!({ "index": index, "value": value, "op": op });
    allow_but(json!([
        rule("getppid", 201, json!([cmp(0, 7, "SCMP_CMP_EQ")])),
        rule("getpid", 202, json!([cmp(0, 7, "SCMP_CMP_NE")])),
        rule("getuid", 203, json!([cmp(0, 10, "SCMP_CMP_LT")])),
        rule("getgid", 204, json!([cmp(0, 10, "SCMP_CMP_LE")])),
        rule("geteuid", 205, json!([cmp(0, 10, "SCMP_CMP_GT")])),
        rule("getegid", 206, json!([cmp(0, 10, "SCMP_CMP_GE")])),
        // runc's MASKED_EQ: (arg & value) == valueTwo.
        rule(
            "gettid",
            207,
            json!([
                { "index": 0, "value": 0xff0, "valueTwo": 0x120, "op": "SCMP_CMP_MASKED_EQ" }
            ])
        ),
        // Two arguments: AND.
        rule(
            "sched_yield",
            208,
            json!([cmp(0, 1, "SCMP_CMP_EQ"), cmp(1, 2, "SCMP_CMP_EQ")])
        ),
        // The same argument twice: OR (runc/crun split it into two rules).
        rule(
            "getpgrp",
            209,
            json!([cmp(0, 1, "SCMP_CMP_EQ"), cmp(0, 2, "SCMP_CMP_EQ")])
        ),
        // personality: the real syscall the default profile checks this way.
        rule(
            "personality",
            210,
            json!([cmp(0, 0x0040000, "SCMP_CMP_EQ")])
        ),
    ]))
}

/// (tag, x86_64 nr, args, expected errno or None for allowed).
const OPERATOR_CASES: &[(&str, u32, &str, Option<i32>)] = &[
    ("eq_hit", 110, "7", Some(201)),
    ("eq_miss", 110, "8", None),
    ("eq_high_word", 110, "0x100000007", None),
    ("ne_hit", 39, "8", Some(202)),
    ("ne_miss", 39, "7", None),
    ("lt_hit", 102, "9", Some(203)),
    ("lt_miss", 102, "10", None),
    ("lt_unsigned", 102, "-1", None),
    ("le_hit", 104, "10", Some(204)),
    ("le_miss", 104, "11", None),
    ("gt_hit", 107, "11", Some(205)),
    ("gt_high_word", 107, "0x100000000", Some(205)),
    ("gt_miss", 107, "10", None),
    ("ge_hit", 108, "10", Some(206)),
    ("ge_miss", 108, "9", None),
    ("masked_hit", 186, "0x123", Some(207)),
    ("masked_hit2", 186, "0x712f", Some(207)),
    ("masked_miss", 186, "0x223", None),
    ("and_hit", 24, "1 2", Some(208)),
    ("and_miss", 24, "1 3", None),
    ("or_first", 111, "1", Some(209)),
    ("or_second", 111, "2", Some(209)),
    ("or_miss", 111, "3", None),
    ("personality_hit", 135, "0x0040000", Some(210)),
    ("personality_query", 135, "0xffffffff", None),
];

#[test]
fn argument_operators() {
    let script: String = OPERATOR_CASES
        .iter()
        .map(|(tag, nr, args, _)| format!("p {tag} berth-probe syscall {nr} {args}\n"))
        .collect();
    let (c, out) = run_script(operator_profile(), &script, "sc_operators");
    out.assert_code(0);
    for (tag, _, _, want) in OPERATOR_CASES {
        match want {
            Some(errno) => assert_errno(&out.stdout, tag, *errno),
            None => assert_allowed(&out.stdout, tag),
        }
    }
    c.finish();
}

#[test]
fn accepted_flags_load_the_filter() {
    for flags in [
        json!(["SECCOMP_FILTER_FLAG_LOG"]),
        json!(["SECCOMP_FILTER_FLAG_TSYNC"]),
        json!(["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
        json!([]),
    ] {
        let mut profile = allow_but(json!([
            { "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }
        ]));
        profile["flags"] = flags.clone();
        let (c, out) = run_script(
            profile,
            "p status berth-probe status\np getppid berth-probe syscall 110\n",
            "sc_flags",
        );
        out.assert_code(0);
        let status = tagged(&out.stdout, "status");
        assert_eq!(status["seccomp"], "2", "flags {flags}: filter mode\n{out}");
        assert_errno(&out.stdout, "getppid", libc::EACCES);
        c.finish();
    }
}

/// `create` with `profile` must fail naming every one of `needles`, and leave no
/// state dir, cgroup, mount or process behind.
#[track_caller]
fn assert_create_rejects(profile: Value, needles: &[&str]) {
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(profile),
        "sc_bad_input",
    );
    c.create().assert_fails_mentioning(needles);
    c.assert_no_leftovers();
}

#[test]
fn bad_profiles_fail_create_naming_the_field() {
    let base = || allow_but(json!([{ "names": ["getppid"], "action": "SCMP_ACT_ERRNO" }]));

    let mut p = base();
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_BOGUS"]);
    assert_create_rejects(p, &["linux.seccomp.flags[1]", "SECCOMP_FILTER_FLAG_BOGUS"]);

    let mut p = base();
    p["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "names": ["getpid"], "action": "SCMP_ACT_BOGUS" }));
    assert_create_rejects(p, &["linux.seccomp.syscalls[1].action", "SCMP_ACT_BOGUS"]);

    let mut p = base();
    p["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "names": ["getpid", "clonee"], "action": "SCMP_ACT_ERRNO" }));
    assert_create_rejects(p, &["linux.seccomp.syscalls[1].names[1]", "clonee"]);

    let mut p = base();
    p["defaultAction"] = "SCMP_ACT_MAYBE".into();
    assert_create_rejects(p, &["linux.seccomp.defaultAction"]);

    let mut p = base();
    p["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"]);
    assert_create_rejects(p, &["linux.seccomp.architectures[1]"]);

    let mut p = base();
    p["syscalls"][0]["args"] = json!([{ "index": 0, "value": 1, "op": "SCMP_CMP_ALMOST" }]);
    assert_create_rejects(p, &["linux.seccomp.syscalls[0].args[0]", "SCMP_CMP_ALMOST"]);

    let mut p = base();
    p["syscalls"][0]["args"] = json!([{ "index": 6, "value": 1, "op": "SCMP_CMP_EQ" }]);
    assert_create_rejects(p, &["linux.seccomp.syscalls[0].args[0]"]);

    // berth deviations from runc (docs/seccomp.md): errno on an action without one…
    let p = allow_but(json!([{ "names": ["getppid"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5 }]));
    assert_create_rejects(p, &["linux.seccomp.syscalls[0]", "errnoRet"]);

    // …and WAIT_KILLABLE_RECV without any NOTIFY rule.
    let mut p = base();
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    assert_create_rejects(p, &["linux.seccomp.flags", "WAIT_KILLABLE_RECV", "NOTIFY"]);
}

#[test]
fn exec_processes_get_the_containers_filter() {
    // A process joined with `exec` must be filtered like the container's init
    // (runc loads the same profile in `runc exec`).
    let profile = allow_but(json!([
        { "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }
    ]));
    let bundle = busybox_with_profile(profile).args(&["sleep", "100"]);
    let c = Container::new(&Runtime::new(), bundle, "sc_exec");
    c.create_and_start();
    let out = c.invoke(&["exec", c.id(), "sh", "-c", &format!("{TAGGER}p x86_64 berth-probe syscall 110\np x86 berth-probe-32 syscall 64\np status berth-probe status\n")]);
    out.assert_code(0);
    assert_errno(&out.stdout, "x86_64", libc::EACCES);
    assert_errno(&out.stdout, "x86", libc::EACCES);
    assert_eq!(tagged(&out.stdout, "status")["seccomp"], "2", "{out}");
    c.kill("KILL").assert_ok();
    c.wait_stopped();
    c.finish();
}

/// With no_new_privs the filter loads as late as possible: init makes no
/// prctl after it, so a profile that denies prctl(PR_SET_PDEATHSIG) still
/// starts (runc starts it too). Found by this suite: berth used to clear its
/// parent-death signal after the filter.
#[test]
fn a_late_filter_denying_prctl_still_starts() {
    let profile = allow_but(json!([{
        "names": ["prctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 204,
        "args": [{ "index": 0, "value": 1, "op": "SCMP_CMP_EQ" }]
    }]));
    let bundle = busybox_with_profile(profile).args(&["true"]);
    let c = Container::new(&Runtime::new(), bundle, "sc_prctl");
    c.run().assert_code(0);
    c.finish();
}
