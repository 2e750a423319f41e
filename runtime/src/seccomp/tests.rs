//! Tests across the seccomp module: the default profile, compile, explain,
//! lint, and the REAL kernel: a forked child sets no_new_privs, loads the
//! compiled program with [`Program::load`], issues raw syscalls and reports
//! each result over a pipe; the parent compares it with the interpreter's
//! verdict for the same (arch, nr, args).
//!
//! The syscalls issued are harmless when allowed (getppid ignores its
//! arguments but seccomp sees them; clone3/close_range/openat2 get invalid
//! arguments and fail with EINVAL in the kernel), so "allowed" is observable
//! as "the same result as without a filter", measured in the same child
//! before loading.

use super::bpf::Verdict;
use super::compile::{self, Built, Clone3};
use super::enosys::X32_SYSCALL_BIT;
use super::explain::{self, DecidedBy};
use super::lint::lint;
use super::*;
use libseccomp::ScmpArch;
use serde_json::json;

fn profile(v: serde_json::Value) -> spec::Seccomp {
    serde_json::from_value(v).unwrap()
}

fn built(p: &spec::Seccomp, ctx: &Context) -> Built {
    compile::build(p, ctx, "linux.seccomp.").unwrap().unwrap()
}

fn runc_ctx() -> Context {
    let mut c = Context::default();
    c.annotations
        .insert(ENOSYS_ANNOTATION.into(), "runc".into());
    c
}

/// How a syscall reaches the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abi {
    /// `syscall` instruction, AUDIT_ARCH_X86_64.
    X8664,
    /// `syscall` with bit 30: AUDIT_ARCH_X86_64, x32 numbering.
    X32,
    /// `int 0x80` from a 64-bit process: AUDIT_ARCH_I386, i386 numbering.
    I386,
}

impl Abi {
    fn scmp(self) -> ScmpArch {
        match self {
            Abi::X8664 => ScmpArch::X8664,
            Abi::X32 => ScmpArch::X32,
            Abi::I386 => ScmpArch::X86,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Call {
    abi: Abi,
    nr: u32,
    args: [u64; 6],
}

fn call(abi: Abi, nr: u32, args: &[u64]) -> Call {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    Call { abi, nr, args: a }
}

fn named(abi: Abi, name: &str, args: &[u64]) -> Call {
    call(abi, explain::resolve(abi.scmp(), name).unwrap(), args)
}

/// Issue one raw syscall; returns the raw kernel return (-errno on failure).
///
/// # Safety
/// The caller picks syscalls that are harmless with these arguments.
unsafe fn raw(c: &Call) -> i64 {
    match c.abi {
        Abi::X8664 | Abi::X32 => {
            // SAFETY: forwarded from the caller.
            let r = unsafe {
                libc::syscall(
                    c.nr as libc::c_long,
                    c.args[0],
                    c.args[1],
                    c.args[2],
                    c.args[3],
                    c.args[4],
                    c.args[5],
                )
            };
            if r == -1 {
                -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
            } else {
                r
            }
        }
        Abi::I386 => {
            let ret: i64;
            // SAFETY: the i386 entry via int 0x80 takes eax=nr, ebx, ecx, edx,
            // esi, edi, ebp. rbx and rbp cannot be asm operands, so they are
            // saved on the stack and restored; no memory is touched otherwise.
            unsafe {
                std::arch::asm!(
                    "push rbx",
                    "push rbp",
                    "mov ebx, {a0:e}",
                    "mov ebp, {a5:e}",
                    "int 0x80",
                    "pop rbp",
                    "pop rbx",
                    a0 = in(reg) c.args[0] as u32,
                    a5 = in(reg) c.args[5] as u32,
                    inlateout("rax") c.nr as u64 => ret,
                    in("rcx") c.args[1] as u32,
                    in("rdx") c.args[2] as u32,
                    in("rsi") c.args[3] as u32,
                    in("rdi") c.args[4] as u32,
                );
            }
            // The 32-bit entry returns a 32-bit value in eax.
            ret as i32 as i64
        }
    }
}

/// What happened to one call in the filtered child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The raw return value (-errno on failure), next to the unfiltered one.
    Returned { filtered: i64, unfiltered: i64 },
    /// The child died of this signal (SIGSYS for KILL/TRAP).
    Signaled(i32),
}

/// Fork; the child runs every call unfiltered, sets no_new_privs, loads
/// `prog`, runs every call again and writes the pairs to a pipe. A killing
/// verdict ends the child; the outcome of the calls after it is unknown, so
/// callers put at most one killing call last.
fn run_in_child(prog: &Program, calls: &[Call]) -> Vec<Outcome> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: the child only makes raw syscalls and writes to a pipe
    // (async-signal-safe; no allocation, no locks) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: child side, see above.
        unsafe {
            libc::close(rd);
            let mut before = [0i64; 64];
            for (i, c) in calls.iter().enumerate() {
                before[i] = raw(c);
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(101);
            }
            if prog.load().is_err() {
                libc::_exit(102);
            }
            for (i, c) in calls.iter().enumerate() {
                let pair = [before[i], raw(c)];
                let bytes = std::mem::transmute::<[i64; 2], [u8; 16]>(pair);
                if libc::write(wr, bytes.as_ptr().cast(), 16) != 16 {
                    libc::_exit(103);
                }
            }
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(wr) };
    let mut out = Vec::new();
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: reading into a 16-byte buffer.
        let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), 16) };
        if n != 16 {
            break;
        }
        let f = i64::from_ne_bytes(buf[8..].try_into().unwrap());
        let u = i64::from_ne_bytes(buf[..8].try_into().unwrap());
        out.push(Outcome::Returned {
            filtered: f,
            unfiltered: u,
        });
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe {
        libc::close(rd);
        libc::waitpid(pid, &mut status, 0);
    }
    if libc::WIFSIGNALED(status) {
        out.push(Outcome::Signaled(libc::WTERMSIG(status)));
    } else {
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "child failed before the calls"
        );
    }
    out
}

/// What the interpreter predicts the kernel will show for `c`.
fn predict(b: &Built, c: &Call) -> Verdict {
    let arch = if c.abi == Abi::X32 {
        ScmpArch::X32
    } else {
        c.abi.scmp()
    };
    explain::explain(b, arch, c.nr, c.args).unwrap().verdict
}

/// Run `calls` in the kernel and assert each matches the interpreter.
fn kernel_agrees(b: &Built, calls: &[Call]) {
    let (quiet, killing): (Vec<&Call>, Vec<&Call>) = calls.iter().partition(|c| {
        !matches!(
            predict(b, c),
            Verdict::KillThread | Verdict::KillProcess | Verdict::Trap(_)
        )
    });
    let quiet: Vec<Call> = quiet.into_iter().copied().collect();
    let got = run_in_child(&b.program, &quiet);
    assert_eq!(got.len(), quiet.len(), "child died early: {got:?}");
    for (c, o) in quiet.iter().zip(&got) {
        let Outcome::Returned {
            filtered,
            unfiltered,
        } = *o
        else {
            unreachable!()
        };
        match predict(b, c) {
            Verdict::Errno(e) => assert_eq!(filtered, -(e as i64), "{c:?}: want errno {e}"),
            Verdict::Allow | Verdict::Log => {
                assert_eq!(
                    filtered, unfiltered,
                    "{c:?}: allowed, so as without a filter"
                )
            }
            // No tracer attached: the kernel fails the call with ENOSYS.
            Verdict::Trace(_) => assert_eq!(filtered, -(libc::ENOSYS as i64), "{c:?}"),
            v => panic!("{c:?}: unexpected {v}"),
        }
    }
    for c in killing {
        let got = run_in_child(&b.program, &[*c]);
        assert_eq!(got, vec![Outcome::Signaled(libc::SIGSYS)], "{c:?}");
    }
}

/// The old Concourse profile's shape (before PR #9173): x86_64/x86/x32,
/// default EPERM, faccessat2 named, clone3 not named, clone flag rule.
fn concourse_like() -> spec::Seccomp {
    let names = [
        "read",
        "write",
        "close",
        "getppid",
        "getpid",
        "exit_group",
        "faccessat2",
        "openat2",
        "statx",
        "utimes",
        "utimes",
        "personality",
    ];
    profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2080505856u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }))
}

#[test]
fn concourse_incident_enosys_with_berth_eperm_with_runc() {
    let p = concourse_like();
    let berth = built(&p, &Context::default());
    let runc = built(&p, &runc_ctx());
    let clone3 = explain::resolve(ScmpArch::X8664, "clone3").unwrap();
    let e = explain::explain(&berth, ScmpArch::X8664, clone3, [0; 6]).unwrap();
    assert_eq!(e.verdict, Verdict::Errno(libc::ENOSYS as u16));
    assert!(matches!(e.decided_by, DecidedBy::FallbackSafe(f) if f.name == "clone3"));
    let r = explain::explain(&runc, ScmpArch::X8664, clone3, [0; 6]).unwrap();
    assert_eq!(r.verdict, Verdict::Errno(libc::EPERM as u16));
    assert_eq!(r.decided_by, DecidedBy::Default);
    // The stub's boundary is faccessat2 (439) on x86_64 and i386.
    assert_eq!(berth.maxima[0].max, 439);

    // And in the kernel: clone3(NULL, 0) would be EINVAL if it got through.
    for (b, want) in [(&berth, libc::ENOSYS), (&runc, libc::EPERM)] {
        let got = run_in_child(&b.program, &[call(Abi::X8664, clone3, &[0, 0])]);
        assert!(
            matches!(got[0], Outcome::Returned { filtered, .. } if filtered == -(want as i64)),
            "{got:?}"
        );
    }
    // Lint names the runc gap and the duplicate utimes.
    let ws = lint(&p, &Context::default());
    assert!(
        ws.iter()
            .any(|w| w.code == "runc-enosys-gap" && w.msg.starts_with("clone3")),
        "{ws:?}"
    );
    assert!(
        ws.iter()
            .any(|w| w.code == "duplicate" && w.field == "syscalls[0].names[10]"),
        "{ws:?}"
    );
}

#[test]
fn kernel_agrees_with_interpreter_many_cases() {
    let p = concourse_like();
    for ctx in [Context::default(), runc_ctx()] {
        let b = built(&p, &ctx);
        let x = |n: &str, a: &[u64]| named(Abi::X8664, n, a);
        let i = |n: &str, a: &[u64]| named(Abi::I386, n, a);
        let mut calls = vec![
            x("getppid", &[]),
            x("getppid", &[1, 2, 3, 4, 5, 6]),
            x("clone3", &[0, 0]),
            x("close_range", &[10, 5, 0]),
            x("openat2", &[u64::MAX, 0, 0, 0]),
            x("faccessat2", &[u64::MAX, 0, 0, 0x4000_0000]),
            x("personality", &[0xffff_ffff]),
            // clone with CLONE_SIGHAND but no CLONE_VM is EINVAL in the kernel.
            x("clone", &[libc::CLONE_SIGHAND as u64]),
            x(
                "clone",
                &[(libc::CLONE_SIGHAND | libc::CLONE_NEWUSER) as u64],
            ),
            x(
                "clone",
                &[(libc::CLONE_SIGHAND | libc::CLONE_NEWCGROUP) as u64],
            ),
            x("getrandom", &[0, 0, 0]),
            x("kill", &[0, 0]),
            call(Abi::X8664, 400, &[]),  // hole below max: the default
            call(Abi::X8664, 440, &[]),  // just above: ENOSYS
            call(Abi::X8664, 1000, &[]), // far future
            call(Abi::X8664, 439 + 7331, &[]),
            // x32 numbers: seccomp sees them even when the kernel lacks the x32 ABI.
            call(Abi::X32, X32_SYSCALL_BIT | 110, &[]), // x32 getppid
            call(Abi::X32, X32_SYSCALL_BIT | 1000, &[]),
            call(Abi::X32, X32_SYSCALL_BIT | 436, &[]), // x32 hole below inflated max
        ];
        assert!(
            ia32_emulation(),
            "the i386 cases need int 0x80 (CONFIG_IA32_EMULATION, not ia32_emulation=0)"
        );
        calls.extend([
            i("getppid", &[]),
            i("clone3", &[0, 0]),
            i("statx", &[u64::MAX as u32 as u64, 0, 0, 0, 0]),
            call(Abi::I386, 1000, &[]),
            call(Abi::I386, 440, &[]),
        ]);
        kernel_agrees(&b, &calls);
    }
}

/// Is `int 0x80` available (CONFIG_IA32_EMULATION, not disabled at boot)?
fn ia32_emulation() -> bool {
    let got = run_in_child(
        &Program {
            insns: vec![Insn::stmt(bpf::BPF_RET | bpf::BPF_K, bpf::RET_ALLOW)],
            stub_len: 0,
            flags: 0,
            optional_flags: 0,
            notify: false,
            listener_path: None,
            listener_metadata: None,
            guard_user_namespaces: false,
            summary: String::new(),
        },
        &[call(Abi::I386, 20, &[])], // i386 getpid
    );
    matches!(got[..], [Outcome::Returned { filtered, .. }] if filtered > 0)
}

#[test]
fn every_action_in_the_kernel() {
    let ppid = |a: &str, errno: Option<u32>| {
        let mut rule = json!({"names": ["getppid"], "action": a});
        if let Some(e) = errno {
            rule["errnoRet"] = e.into();
        }
        profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 77,
            "syscalls": [{"names": ["exit_group", "write", "getpid"], "action": "SCMP_ACT_ALLOW"}, rule]
        }))
    };
    let getppid = named(Abi::X8664, "getppid", &[]);
    for (action, errno) in [
        ("SCMP_ACT_ALLOW", None),
        ("SCMP_ACT_LOG", None),
        ("SCMP_ACT_ERRNO", Some(55)),
        ("SCMP_ACT_ERRNO", None),
        ("SCMP_ACT_TRACE", Some(3)),
        ("SCMP_ACT_KILL", None),
        ("SCMP_ACT_KILL_THREAD", None),
        ("SCMP_ACT_KILL_PROCESS", None),
        ("SCMP_ACT_TRAP", None),
    ] {
        let b = built(&ppid(action, errno), &Context::default());
        kernel_agrees(&b, &[named(Abi::X8664, "getpid", &[]), getppid]);
    }
    // defaultErrnoRet: an unnamed harmless call gets 77.
    let b = built(&ppid("SCMP_ACT_ALLOW", None), &Context::default());
    let got = run_in_child(&b.program, &[named(Abi::X8664, "getuid", &[])]);
    assert!(
        matches!(got[0], Outcome::Returned { filtered: -77, .. }),
        "{got:?}"
    );
}

#[test]
fn every_operator_in_the_kernel() {
    // getppid ignores its arguments; seccomp still compares them.
    type Case<'a> = (&'a str, u64, Option<u64>, &'a [u64], &'a [u64]);
    let cases: [Case; 7] = [
        ("SCMP_CMP_EQ", 5, None, &[5], &[4, 6, 5 | 1 << 32]),
        ("SCMP_CMP_NE", 5, None, &[4, 1 << 40], &[5]),
        ("SCMP_CMP_LT", 5, None, &[0, 4], &[5, 1 << 33]),
        ("SCMP_CMP_LE", 5, None, &[5, 0], &[6, u64::MAX]),
        (
            "SCMP_CMP_GE",
            1 << 35,
            None,
            &[1 << 35, u64::MAX],
            &[5, (1 << 35) - 1],
        ),
        ("SCMP_CMP_GT", 5, None, &[6, 1 << 32], &[5, 0]),
        // runc meaning: (arg & value) == valueTwo.
        (
            "SCMP_CMP_MASKED_EQ",
            0xff00,
            Some(0x1200),
            &[0x1234, 0xff12ff],
            &[0x2234, 0xff],
        ),
    ];
    for (op, value, value_two, yes, no) in cases {
        let mut arg = json!({"index": 2, "value": value, "op": op});
        if let Some(v2) = value_two {
            arg["valueTwo"] = v2.into();
        }
        let p = profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 77,
            "syscalls": [
                {"names": ["exit_group", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [arg]}]
        }));
        let b = built(&p, &Context::default());
        let mut calls = Vec::new();
        for (set, allowed) in [(yes, true), (no, false)] {
            for v in set {
                let c = named(Abi::X8664, "getppid", &[0, 0, *v]);
                assert_eq!(predict(&b, &c) == Verdict::Allow, allowed, "{op} {v:#x}");
                calls.push(c);
            }
        }
        kernel_agrees(&b, &calls);
    }
}

#[test]
fn flags_and_notify_agent() {
    // LOG and SPEC_ALLOW load; TSYNC is accepted and ignored (as runc).
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9}]
    }));
    let b = built(&p, &Context::default());
    assert_eq!(
        b.program.flags,
        compile::FLAG_LOG | compile::FLAG_SPEC_ALLOW
    );
    kernel_agrees(&b, &[named(Abi::X8664, "getppid", &[])]);
    let mut empty = p.clone();
    empty.flags = Some(vec![]);
    let b0 = built(&empty, &Context::default());
    assert_eq!(b0.program.flags, 0);
    // flags == 0 takes the prctl(PR_SET_SECCOMP) path, as runc does.
    kernel_agrees(&b0, &[named(Abi::X8664, "getppid", &[])]);

    // NOTIFY + WAIT_KILLABLE_RECV: flags 40 (runc bats: "seccomp filter flags: 40").
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let b = built(&p, &Context::default());
    assert_eq!(b.program.flags, 8 | 32);
    assert!(b.program.notify);
    if kernel_at_least(5, 19) {
        assert_eq!(notify_roundtrip(&b.program), 42);
    } else {
        // An older kernel (the matrix's 5.10 and 6.1, docs/kernels.md) refuses
        // the flag; the error says which kernel is needed.
        // SAFETY: the child only loads the filter and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let code = match b.program.load() {
                    Err(e) if e.to_string().contains("needs Linux >= 5.19") => 0,
                    _ => 1,
                };
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "load() names the kernel that added WAIT_KILLABLE_RECV: {status}"
        );
    }
}

/// The running kernel is at least `major.minor` (from uname's release).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let u = nix::sys::utsname::uname().expect("uname");
    let release = u.release().to_string_lossy().into_owned();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let maj: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let min: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (maj, min) >= (major, minor)
}

/// The child loads a NOTIFY filter and sends the listener fd number over a
/// pipe (the only syscall between load and hand-off, as runc); the parent
/// takes the fd with pidfd_getfd (runc does the same) and answers the
/// child's getppid with 42.
fn notify_roundtrip(prog: &Program) -> i64 {
    let (mut to_parent, mut result) = ([0; 2], [0; 2]);
    // SAFETY: pipe2 fills the arrays.
    unsafe {
        assert_eq!(libc::pipe2(to_parent.as_mut_ptr(), libc::O_CLOEXEC), 0);
        assert_eq!(libc::pipe2(result.as_mut_ptr(), libc::O_CLOEXEC), 0);
    }
    // SAFETY: the child makes raw syscalls only, then _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: child side.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let fd = match prog.load() {
                Ok(Some(fd)) => fd,
                _ => libc::_exit(102),
            };
            libc::write(to_parent[1], (&fd as *const i32).cast(), 4);
            let r = libc::syscall(libc::SYS_getppid);
            libc::write(result[1], (&r as *const i64).cast(), 8);
            libc::_exit(0);
        }
    }
    // SAFETY: parent side: plain fd syscalls and the seccomp notify ioctls
    // with correctly sized libc structs.
    unsafe {
        libc::close(to_parent[1]);
        libc::close(result[1]);
        let mut child_fd = 0i32;
        assert_eq!(
            libc::read(to_parent[0], (&mut child_fd as *mut i32).cast(), 4),
            4
        );
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        assert!(pidfd >= 0);
        let fd = libc::syscall(libc::SYS_pidfd_getfd, pidfd, child_fd, 0) as i32;
        assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
        let mut req: libc::seccomp_notif = std::mem::zeroed();
        assert_eq!(libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req), 0);
        assert_eq!(req.data.nr, libc::SYS_getppid as i32);
        let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
        resp.id = req.id;
        resp.val = 42;
        assert_eq!(
            libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp),
            0
        );
        let mut r = 0i64;
        assert_eq!(libc::read(result[0], (&mut r as *mut i64).cast(), 8), 8);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        for f in [fd, pidfd, to_parent[0], result[0]] {
            libc::close(f);
        }
        r
    }
}

#[test]
fn default_profile_resolves_without_duplicates_or_unknown_names() {
    let contexts = [
        Context::default(),
        Context {
            caps: [
                "CAP_SYS_ADMIN",
                "CAP_BPF",
                "CAP_PERFMON",
                "CAP_SYSLOG",
                "CAP_SYS_PTRACE",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        },
        Context {
            arch: Some("SCMP_ARCH_AARCH64".into()),
            ..Default::default()
        },
    ];
    for ctx in contexts {
        let p = default_profile_for(&ctx);
        let mut seen = std::collections::HashSet::new();
        for s in &p.syscalls {
            assert!(
                s.comment.is_some(),
                "every group has a comment: {:?}",
                s.names
            );
            for n in &s.names {
                assert!(
                    seen.insert((n.clone(), serde_json::to_string(&s.args).unwrap())),
                    "{n} twice for {ctx:?}"
                );
            }
        }
        let ws = lint(&p, &ctx);
        assert!(
            ws.iter().all(|w| w.code == "clone3-unguarded"),
            "unexpected lint warnings for {ctx:?}: {ws:?}"
        );
        if ctx.arch.is_none() {
            assert!(built(&p, &ctx).program.insns.len() < bpf::MAX_INSNS);
        }
    }
    // berth spec's profile: runc's default caps → no mount, clone3 allowed, clone flag rule.
    let p = default_profile();
    let has = |n: &str| p.syscalls.iter().any(|s| s.names.iter().any(|x| x == n));
    assert!(has("clone3") && has("clone") && !has("mount") && !has("unshare"));
    assert!(p.syscalls.iter().all(|s| s.action == "SCMP_ACT_ALLOW"
        || (s.action == "SCMP_ACT_ERRNO" && s.errno_ret == Some(38))));
}

#[test]
fn clone3_decision_by_context() {
    let p = default_profile();
    let clone3 = explain::resolve(ScmpArch::X8664, "clone3").unwrap();
    let admin = Context {
        caps: vec!["CAP_SYS_ADMIN".into()],
        ..Default::default()
    };
    let userns = Context {
        own_userns: true,
        ..Default::default()
    };
    let cases = [
        (
            Context::default(),
            Clone3::Enosys,
            Verdict::Errno(38),
            false,
        ),
        (userns, Clone3::AllowedWithGuard, Verdict::Allow, true),
        (admin, Clone3::AllowedSysAdmin, Verdict::Allow, false),
        (runc_ctx(), Clone3::AsProfile, Verdict::Allow, false),
    ];
    for (ctx, decision, verdict, guard) in cases {
        let b = built(&p, &ctx);
        assert_eq!(b.clone3, decision);
        assert_eq!(b.program.guard_user_namespaces, guard);
        assert_eq!(
            explain::explain(&b, ScmpArch::X8664, clone3, [0; 6])
                .unwrap()
                .verdict,
            verdict
        );
        // In the kernel too (clone3(NULL, 0) is EINVAL when allowed).
        kernel_agrees(&b, &[call(Abi::X8664, clone3, &[0, 0])]);
    }
    let ws = lint(&p, &Context::default());
    assert!(ws.iter().any(|w| w.code == "clone3-unguarded"), "{ws:?}");
}

#[test]
fn stub_and_fallback_on_the_default_profile() {
    let b = built(&default_profile(), &Context::default());
    let x = |n: u32| explain::explain(&b, ScmpArch::X8664, n, [0; 6]).unwrap();
    // futex_requeue (456) is the highest name libseccomp 2.5.4 knows.
    let max = b
        .maxima
        .iter()
        .find(|m| m.arch == ScmpArch::X8664)
        .unwrap()
        .max;
    assert!(max >= 456);
    assert!(matches!(x(max + 1).decided_by, DecidedBy::Stub { .. }));
    assert_eq!(x(1000).verdict, Verdict::Errno(38));
    // pidfd_getfd is only allowed with CAP_SYS_PTRACE; otherwise the profile
    // itself says ENOSYS (so runc gives the same answer).
    let e = x(explain::resolve(ScmpArch::X8664, "pidfd_getfd").unwrap());
    assert_eq!(e.verdict, Verdict::Errno(38));
    assert!(matches!(e.decided_by, DecidedBy::Rule { .. }), "{e:?}");
    // A deliberately blocked old syscall keeps EPERM.
    let e = x(explain::resolve(ScmpArch::X8664, "kexec_load").unwrap());
    assert_eq!(
        (e.verdict, e.decided_by),
        (Verdict::Errno(1), DecidedBy::Default)
    );
    // x32 call: x32 is in Docker's archMap, the rule applies.
    let e = explain::explain(&b, ScmpArch::X32, X32_SYSCALL_BIT | 110, [0; 6]).unwrap();
    assert_eq!(e.verdict, Verdict::Allow);
    // A foreign arch: bad arch.
    let e = explain::explain(&b, ScmpArch::Aarch64, 100, [0; 6]).unwrap();
    assert_eq!(
        (e.verdict, e.decided_by),
        (Verdict::KillThread, DecidedBy::BadArch)
    );
    kernel_agrees(
        &b,
        &[
            call(Abi::X8664, 1000, &[]),
            named(Abi::X8664, "pidfd_getfd", &[u64::MAX, 0, 0]),
            named(Abi::X8664, "getppid", &[]),
            named(Abi::X8664, "personality", &[0xffff_ffff]),
        ],
    );
    // READ_IMPLIES_EXEC: denied. (Alone: the unfiltered baseline run sets it.)
    let c = named(Abi::X8664, "personality", &[0x0040_0000]);
    assert_eq!(predict(&b, &c), Verdict::Errno(1));
    kernel_agrees(&b, &[c]);
}

#[test]
fn x32_not_in_profile_is_bad_arch_in_kernel() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getppid", "exit_group", "write"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let b = built(&p, &Context::default());
    let c = call(Abi::X32, X32_SYSCALL_BIT | 110, &[]);
    assert_eq!(predict(&b, &c), Verdict::KillThread);
    kernel_agrees(&b, &[c, named(Abi::X8664, "getppid", &[])]);
}

#[test]
fn disassembly_shows_stub_rules_and_names() {
    let b = built(&concourse_like(), &Context::default());
    let text = cli::disassemble(&b);
    assert!(text.contains("; ---- berth ENOSYS stub"), "{text}");
    assert!(text.contains("; ---- libseccomp program"));
    assert!(
        text.contains("faccessat2  ← syscalls[0] SCMP_ACT_ALLOW"),
        "{text}"
    );
    assert!(
        text.contains("clone3  ← berth fallback-safe ENOSYS"),
        "{text}"
    );
    assert!(text.contains("AUDIT_ARCH_I386"));
    // The disassembly lists exactly the program's instructions.
    let lines = text.lines().filter(|l| !l.starts_with(';')).count();
    assert_eq!(lines, b.program.insns.len());
}

#[test]
fn cache_hit_returns_the_same_program() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Context {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let p = concourse_like();
    let cold = compile(&p, &ctx).unwrap().unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let warm = compile(&p, &ctx).unwrap().unwrap();
    assert_eq!(cold.insns, warm.insns);
    assert_eq!(
        (cold.flags, cold.stub_len, &cold.summary),
        (warm.flags, warm.stub_len, &warm.summary)
    );
    // A different context decision is a different entry.
    let mut runc = ctx.clone();
    runc.annotations
        .insert(ENOSYS_ANNOTATION.into(), "runc".into());
    let r = compile(&p, &runc).unwrap().unwrap();
    assert_ne!(r.insns, cold.insns);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn compile_errors() {
    let e = compile(
        &profile(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "write", "close"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["a"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["b"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone", "clonee"], "action": "SCMP_ACT_ALLOW"}]})),
        &Context::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "config.json: linux.seccomp.syscalls[1].names[0]: unknown syscall \"a\""
    );
    let mut ctx = Context::default();
    ctx.annotations
        .insert(ENOSYS_ANNOTATION.into(), "crun".into());
    let e = compile(&profile(json!({"defaultAction": "SCMP_ACT_ERRNO"})), &ctx).unwrap_err();
    assert_eq!(
        e.to_string(),
        "config.json: annotations.run.berth.seccomp.enosys: \"crun\" is neither \"runc\" nor \"berth\""
    );
    // libseccomp refuses identical conditions with different actions (EEXIST).
    let e = compile(
        &profile(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_LOG", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]})),
        &Context::default(),
    )
    .unwrap_err();
    // berth names the earlier rule instead of libseccomp's text.
    assert!(e.to_string().starts_with("config.json: linux.seccomp.syscalls[1].names[0]: SCMP_ACT_LOG for \"getppid\" conflicts with the earlier rule linux.seccomp.syscalls[0].names[0] (SCMP_ACT_ALLOW for \"getppid\")"), "{e}");
    // Disabled.
    assert!(compile(&profile(json!({})), &Context::default())
        .unwrap()
        .is_none());
}

#[test]
fn lint_rules() {
    let p = profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "listenerPath": "/x",
        "syscalls": [
            {"names": ["read", "read", "clonee"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["read"], "action": "SCMP_ACT_LOG"},
            {"names": ["statx"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["close"], "action": "SCMP_ACT_ALLOW", "errnoRet": 3},
            {"names": ["clone3", "faccessat2"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let ws = lint(&p, &Context::default());
    let has = |code: &str, field: &str| ws.iter().any(|w| w.code == code && w.field == field);
    assert!(has("duplicate", "syscalls[0].names[1]"), "{ws:#?}");
    assert!(has("duplicate", "syscalls[1].names[0]"), "{ws:#?}");
    assert!(has("unknown-syscall", "syscalls[0].names[2]"), "{ws:#?}");
    assert!(has("same-as-default", "syscalls[2].names[0]"), "{ws:#?}");
    assert!(has("fallback-sensitive", "syscalls[2].names[0]"), "{ws:#?}");
    assert!(has("errno-on-action", "syscalls[3].errnoRet"), "{ws:#?}");
    assert!(has("notify", "listenerPath"), "{ws:#?}");
    assert!(
        ws.iter()
            .any(|w| w.code == "runc-enosys-gap" && w.msg.starts_with("close_range")),
        "{ws:#?}"
    );
    // clone3-unguarded needs a compilable profile; the unknown name prevents that here.
    let ok = profile(json!({"defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["clone3"], "action": "SCMP_ACT_ALLOW"}]}));
    assert!(lint(&ok, &Context::default())
        .iter()
        .any(|w| w.code == "clone3-unguarded"));
    let userns = Context {
        own_userns: true,
        ..Default::default()
    };
    assert!(!lint(&ok, &userns)
        .iter()
        .any(|w| w.code == "clone3-unguarded"));
}

#[test]
fn explain_text_for_learners() {
    let text = explain::explain_profile(
        &concourse_like(),
        &Context::default(),
        ScmpArch::X8664,
        "clone3",
        [0; 6],
        false,
    )
    .unwrap();
    assert!(text.contains("verdict:    ERRNO 38 (ENOSYS)"), "{text}");
    assert!(text.contains("fallback-safe denial"), "{text}");
    assert!(text.contains("runc:       ERRNO 1 (EPERM)"), "{text}");
    let text = explain::explain_profile(
        &concourse_like(),
        &Context::default(),
        ScmpArch::X86,
        "1000",
        [0; 6],
        false,
    )
    .unwrap();
    assert!(
        text.contains("the ENOSYS stub: 1000 is above 439"),
        "{text}"
    );
    let j: serde_json::Value = serde_json::from_str(
        &explain::explain_profile(
            &concourse_like(),
            &Context::default(),
            ScmpArch::X8664,
            "clone3",
            [0; 6],
            true,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(j["action"], "errno");
    assert_eq!(j["errno"], 38);
    assert_eq!(j["decided_by"], "fallback-safe");
    assert_eq!(j["runc_ret"], bpf::RET_ERRNO | 1);
}

#[test]
fn docs_list_every_fallback_safe_syscall() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/seccomp.md"))
        .unwrap();
    let table = doc
        .split("The table: ")
        .nth(1)
        .and_then(|t| t.split(". (A unit test").next())
        .expect("docs/seccomp.md has the fallback-safe table");
    let listed: Vec<&str> = table.split(',').map(|s| s.trim()).collect();
    let code: Vec<&str> = enosys::FALLBACK_SAFE.iter().map(|f| f.name).collect();
    assert_eq!(
        listed, code,
        "docs/seccomp.md and enosys::FALLBACK_SAFE differ"
    );
}

#[test]
fn cli_convert_lint_and_compile() {
    use cli::{run, CtxArgs, SeccompCmd};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("oci.json");
    let code = run(SeccompCmd::Convert {
        from: "docker".into(),
        input: concat!(env!("CARGO_MANIFEST_DIR"), "/../profiles/default.json").into(),
        output: out.clone(),
        arch: Some("amd64".into()),
        ctx: CtxArgs {
            caps: vec!["sys_admin".into()],
            ..Default::default()
        },
    })
    .unwrap();
    assert_eq!(code, 0);
    let oci: spec::Seccomp = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert!(oci
        .syscalls
        .iter()
        .any(|s| s.names.iter().any(|n| n == "mount")));
    assert_eq!(
        oci.architectures,
        ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    );

    // Lint: warnings (an unknown name) are not fatal; unparseable JSON is.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clonee"],"action":"SCMP_ACT_ALLOW"}]}"#).unwrap();
    let lint = |p: &std::path::Path| {
        run(SeccompCmd::Lint {
            profile: p.into(),
            ctx: CtxArgs::default(),
        })
    };
    assert_eq!(lint(&bad).unwrap(), 0);
    std::fs::write(&bad, "{not json").unwrap();
    assert!(lint(&bad).is_err());

    // Compile --out writes the exact program.
    let bpf_out = dir.path().join("p.bpf");
    run(SeccompCmd::Compile {
        profile: out.clone(),
        arch: None,
        disasm: false,
        out: Some(bpf_out.clone()),
        ctx: CtxArgs::default(),
    })
    .unwrap();
    let bytes = std::fs::read(&bpf_out).unwrap();
    let b = built(&oci, &Context::default());
    assert_eq!(bytes, b.program.to_bytes());
}

/// docs/seccomp.md on real libseccomp output: for every ABI and every
/// number up to far beyond the tables, stub + P equals P alone at or below
/// max[arch], and is ENOSYS above it; foreign arches see P's verdict.
#[test]
fn stub_invariants_on_real_programs() {
    let mut runc = runc_ctx();
    runc.own_userns = true;
    for p in [concourse_like(), default_profile()] {
        let b = built(&p, &runc);
        let full = &b.program.insns;
        let alone = &full[b.program.stub_len..];
        let run = |prog: &[Insn], arch: ScmpArch, nr: u32| {
            bpf::run(prog, &explain::data_for(arch, nr, [0; 6]))
                .unwrap()
                .ret
        };
        for arch in [
            ScmpArch::X8664,
            ScmpArch::X86,
            ScmpArch::X32,
            ScmpArch::Aarch64,
        ] {
            let max = b.maxima.iter().find(|m| m.arch == arch).map(|m| m.max);
            let bit = if arch == ScmpArch::X32 {
                X32_SYSCALL_BIT
            } else {
                0
            };
            for n in (0..1200u32).chain([7331, 0xffff, 0x3fff_ffff]) {
                let nr = bit | n;
                let (with, without) = (run(full, arch, nr), run(alone, arch, nr));
                match max {
                    Some(m) if nr > m => assert_eq!(with, enosys::RET_ENOSYS, "{arch:?} {nr:#x}"),
                    _ => assert_eq!(with, without, "{arch:?} {nr:#x}"),
                }
                assert_ne!(
                    (with, without == bpf::RET_ALLOW),
                    (bpf::RET_ALLOW, false),
                    "the stub never allows what P denies"
                );
            }
        }
    }
}

/// Write `data` to `path` with raw syscalls (for forked children).
///
/// # Safety
/// `path` must be NUL-terminated.
unsafe fn write_file(path: &[u8], data: &[u8]) -> bool {
    // SAFETY: forwarded from the caller; fd closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
        libc::close(fd);
        ok
    }
}

/// In a forked child: a new user namespace mapping root to root, optionally
/// the guard, then try to create a nested user namespace. Returns the errno
/// of the nested unshare (0 = it worked).
fn nested_userns_errno(guard: bool) -> i32 {
    // SAFETY: the child uses raw syscalls only and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: child side.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER) != 0
                || !write_file(b"/proc/self/setgroups\0", b"deny")
                || !write_file(b"/proc/self/gid_map\0", b"0 0 1")
                || !write_file(b"/proc/self/uid_map\0", b"0 0 1")
            {
                libc::_exit(200);
            }
            if guard && guard_user_namespaces().is_err() {
                libc::_exit(201);
            }
            if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                libc::_exit(0);
            }
            libc::_exit(*libc::__errno_location());
        }
    }
    let mut status = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WEXITSTATUS(status)
}

#[test]
fn userns_guard_blocks_nested_user_namespaces_only_inside() {
    let host = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap();
    assert_eq!(
        nested_userns_errno(false),
        0,
        "control: nesting works without the guard"
    );
    assert_eq!(nested_userns_errno(true), libc::ENOSPC);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap(),
        host,
        "the host's limit is untouched"
    );
}

#[test]
fn newer_syscalls_are_skipped_typos_are_fatal() {
    // Docker's current default profile names syscalls newer than libseccomp
    // 2.5.4 (mseal, listmount, …): berth must still run it, as runc does.
    let p = profile(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["getppid", "mseal", "listmount", "exit_group", "write"], "action": "SCMP_ACT_ALLOW"}]}));
    let b = built(&p, &Context::default());
    assert!(b.checked.rules.iter().all(|r| r.name != "mseal"));
    let ws = lint(&p, &Context::default());
    assert!(
        ws.iter().any(|w| w.code == "unknown-syscall"
            && w.field == "syscalls[0].names[1]"
            && w.msg.contains("skipped, as runc does")),
        "{ws:?}"
    );
    // mseal (462 on x86_64) is above every known name: ENOSYS from the stub.
    kernel_agrees(
        &b,
        &[
            call(Abi::X8664, 462, &[0, 0, 0]),
            named(Abi::X8664, "getppid", &[]),
        ],
    );
    let e = explain::explain(&b, ScmpArch::X8664, 462, [0; 6]).unwrap();
    assert!(matches!(e.decided_by, DecidedBy::Stub { .. }));
}
