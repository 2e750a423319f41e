//! Whole profiles in real containers: berth's default profile (with and without a
//! user namespace), the Concourse 7.13-rc incident profile under berth's and runc's
//! verdicts, and the ENOSYS stub per ABI (x86_64, x86 via the i386 probe, x32).
//!
//! Every probe line of a container script is tagged (`tag: ret=… errno=…`) so one
//! container answers many questions.

mod seccomp_common;

use berth_integration::{Container, Runtime};
use seccomp_common::*;
use serde_json::{json, Value};

/// Prints `TAG: ` then runs the rest of the line (a probe prints one line).
const TAGGER: &str = "p() { printf '%s: ' \"$1\"; shift; \"$@\"; }\n";

/// Threads, posix_spawn, fork/exec and getaddrinfo in curl's threaded resolver
/// against a server inside the container's own network namespace.
const THREADS_AND_DNS: &str = "\
p clone3 berth-probe clone3
p thread berth-probe thread
p spawn berth-probe spawn /bin/true
out=$(sh -c 'git --version'); echo \"git: exit=$? first=${out%% *}\"
busybox httpd -p 127.0.0.1:8080 -h /etc
body=$(curl -sS http://berth-test:8080/hostname); echo \"curl: exit=$? body=$body\"
";

/// The checks every working profile must pass: a thread, posix_spawn, git, and
/// curl resolving `berth-test` through its resolver thread.
#[track_caller]
fn assert_threads_and_dns_work(out: &berth_integration::Output) {
    let stdout = &out.stdout;
    let thread = tagged(stdout, "thread");
    assert_eq!(thread["pthread_create"], "0", "{out}");
    assert_eq!(thread["returned"], "1", "{out}");
    let spawn = tagged(stdout, "spawn");
    assert_eq!(
        (spawn["posix_spawn"].as_str(), spawn["child_exit"].as_str()),
        ("0", "0"),
        "{out}"
    );
    let git = tagged(stdout, "git");
    assert_eq!((git["exit"].as_str(), git["first"].as_str()), ("0", "git"));
    let curl = tagged(stdout, "curl");
    assert_eq!(curl["exit"], "0", "curl failed:\n{out}");
    // The httpd served the rootfs's /etc/hostname: a real round trip.
    let hostname = std::fs::read_to_string(bookworm_rootfs().join("etc/hostname")).unwrap();
    assert_eq!(curl["body"], hostname.trim(), "{out}");
}

#[test]
fn default_profile_host_userns_clone3_is_enosys_and_glibc_falls_back() {
    let bundle = bookworm_bundle().sh(&format!("{TAGGER}{THREADS_AND_DNS}"));
    assert!(
        bundle.config()["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["type"] != "user"),
        "berth spec's config has no user namespace"
    );
    let c = Container::new(&Runtime::new(), bundle, "sc_default");
    let out = c.run();
    out.assert_code(0);
    // Host user namespace without CAP_SYS_ADMIN: the profile's clone3 allow
    // resolves to ENOSYS (docs/seccomp.md, clone3) so glibc falls back to clone(2).
    assert_errno(&out.stdout, "clone3", libc::ENOSYS);
    assert_threads_and_dns_work(&out);
    c.finish();
}

#[test]
fn default_profile_own_userns_allows_clone3_and_guards_nested_userns() {
    let host_max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    assert_ne!(host_max.trim(), "0", "the host allows user namespaces");
    let script = format!(
        "{TAGGER}{THREADS_AND_DNS}\
         p newuser berth-probe clone3 0x10000000\n\
         p unshareuser berth-probe unshare-user\n\
         echo \"max: value=$(cat /proc/sys/user/max_user_namespaces)\"\n\
         unshare -U true 2>/dev/null; echo \"unshare: exit=$?\"\n"
    );
    let bundle = bookworm_bundle().sh(&script).with(add_user_namespace);
    let c = Container::new(&Runtime::new(), bundle, "sc_userns");
    let out = c.run();
    out.assert_code(0);
    // The raw clone3 itself succeeded: a child pid, and the child exited 0.
    let clone3 = tagged(&out.stdout, "clone3");
    let ret: i64 = clone3["ret"].parse().unwrap();
    assert!(ret > 0, "raw clone3 returns a pid:\n{out}");
    assert_eq!(clone3["child_exit"], "0", "{out}");
    assert_threads_and_dns_work(&out);
    // clone3's flags are out of seccomp's reach: the guard (max_user_namespaces
    // = 0 inside) makes a nested user namespace fail with ENOSPC…
    assert_errno(&out.stdout, "newuser", libc::ENOSPC);
    // …while unshare(2) without CAP_SYS_ADMIN is the filter's EPERM (group 21).
    assert_errno(&out.stdout, "unshareuser", libc::EPERM);
    assert_eq!(tagged(&out.stdout, "max")["value"], "0", "{out}");
    assert_ne!(tagged(&out.stdout, "unshare")["exit"], "0", "{out}");
    c.finish();
    // The host's limit is untouched, and the host can still make user namespaces.
    let after = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    assert_eq!(after, host_max);
    let status = std::process::Command::new("unshare")
        .args(["-U", "true"])
        .status()
        .expect("running unshare on the host");
    assert!(status.success(), "host unshare -U true: {status}");
}

/// Concourse's profile before its fix (7.12.x, 7.13.0-rc): clone3 unnamed,
/// faccessat2 (439 > 435) named, default EPERM without defaultErrnoRet.
fn concourse_incident_profile() -> Value {
    let mut profile = default_profile();
    remove_name(&mut profile, "clone3");
    profile.as_object_mut().unwrap().remove("defaultErrnoRet");
    profile["defaultAction"] = "SCMP_ACT_ERRNO".into();
    assert!(names(&profile, "faccessat2") && !names(&profile, "clone3"));
    profile
}

#[test]
fn incident_profile_berth_answers_enosys_and_curl_works() {
    let bundle = bookworm_bundle()
        .sh(&format!("{TAGGER}{THREADS_AND_DNS}"))
        .with(|c| c["linux"]["seccomp"] = concourse_incident_profile());
    let c = Container::new(&Runtime::new(), bundle, "sc_incident_berth");
    let out = c.run();
    out.assert_code(0);
    // Fallback-safe denial: unnamed clone3 below the highest name → ENOSYS.
    assert_errno(&out.stdout, "clone3", libc::ENOSYS);
    assert_threads_and_dns_work(&out);
    c.finish();
}

#[test]
fn incident_profile_with_runc_verdicts_reproduces_the_incident() {
    let bundle = bookworm_bundle()
        .sh(&format!(
            "{TAGGER}{THREADS_AND_DNS}p musl berth-probe-musl thread\n"
        ))
        .with(|c| {
            c["linux"]["seccomp"] = concourse_incident_profile();
            c["annotations"] = json!({ "run.berth.seccomp.enosys": "runc" });
        });
    let c = Container::new(&Runtime::new(), bundle, "sc_incident_runc");
    let out = c.run();
    out.assert_code(0);
    // runc's stub only covers numbers above faccessat2 (439): clone3 gets EPERM,
    // glibc does not fall back, threads cannot start.
    assert_errno(&out.stdout, "clone3", libc::EPERM);
    let thread = tagged(&out.stdout, "thread");
    assert_eq!(
        thread["pthread_create"], "1",
        "EPERM from pthread_create:\n{out}"
    );
    // musl creates threads with clone(2), never clone3: unaffected.
    assert_eq!(tagged(&out.stdout, "musl")["pthread_create"], "0", "{out}");
    assert_eq!(tagged(&out.stdout, "curl")["exit"], "6", "{out}");
    assert!(
        out.stderr.contains("getaddrinfo() thread failed to start"),
        "curl's error:\n{out}"
    );
    c.finish();
}

#[test]
fn numbers_above_the_highest_name_are_enosys_per_abi() {
    let profile = default_profile();
    let dir = tempfile::tempdir().unwrap();
    let path = write_profile(dir.path(), "default.json", &profile);
    // x32: x86_64's AUDIT_ARCH with bit 30 set; the kernel has no x32 ABI here, so
    // ask explain for the filter's verdict and hold the kernel to it.
    let x32 = explain(&path, "SCMP_ARCH_X32", "0x400003e8", &[], &[]);
    let script = format!(
        "{TAGGER}\
         p x86_64 berth-probe syscall 1000\n\
         p x86 berth-probe-32 syscall 1000\n\
         p x32 berth-probe syscall 0x400003e8\n\
         p musl berth-probe-musl syscall 1000\n\
         p kexec berth-probe syscall 246\n"
    );
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(profile).sh(&script),
        "sc_stub",
    );
    let out = c.run();
    out.assert_code(0);
    assert_errno(&out.stdout, "x86_64", libc::ENOSYS);
    assert_errno(&out.stdout, "x86", libc::ENOSYS);
    assert_errno(&out.stdout, "musl", libc::ENOSYS);
    assert_eq!(x32["action"], "errno", "{x32}");
    assert_errno(&out.stdout, "x32", x32["errno"].as_i64().unwrap() as i32);
    // Below the boundary and unnamed: the default action (EPERM), not ENOSYS.
    assert_errno(&out.stdout, "kexec", libc::EPERM);
    c.finish();
}

#[test]
fn a_named_but_denied_syscall_gets_the_profiles_errno_on_every_abi() {
    let mut profile = default_profile();
    remove_name(&mut profile, "getppid");
    profile["syscalls"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }));
    let script = format!(
        "{TAGGER}\
         p x86_64 berth-probe syscall 110\n\
         p x86 berth-probe-32 syscall 64\n\
         p getpid berth-probe syscall 39\n"
    );
    let c = Container::new(
        &Runtime::new(),
        busybox_with_profile(profile).sh(&script),
        "sc_named_denied",
    );
    let out = c.run();
    out.assert_code(0);
    assert_errno(&out.stdout, "x86_64", libc::EACCES);
    assert_errno(&out.stdout, "x86", libc::EACCES);
    assert_allowed(&out.stdout, "getpid");
    c.finish();
}
