//! Init steps that shape the process: network loopback, sysctls, hostname,
//! console, rlimits, seccomp, capabilities, user, cwd, fds, and finally
//! the wait on exec.fifo and execve.

use super::Ctx;
use crate::hooks::Kind;
use crate::plan::InitStep;
use crate::sys;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

pub(super) fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let field = crate::spec::sysctl_field(key);
    let rel =
        crate::spec::sysctl_path(key).map_err(|e| io::Error::other(format!("{field}: {e}")))?;
    let path = format!("/proc/sys/{rel}");
    std::fs::write(&path, value).map_err(|e| sys::err(format_args!("{field}: write {path}"), e))
}

pub(super) fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live buffer.
    let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if r != 0 {
        return Err(sys::last("setdomainname"));
    }
    Ok(())
}

pub(super) fn chdir_as_root(ctx: &mut Ctx, cwd: &str) -> io::Result<()> {
    match chdir(cwd) {
        Ok(()) => {
            ctx.cwd_done = true;
            Ok(())
        }
        // Denied to root (e.g. a root-squashed or idmapped volume): the
        // user may be allowed, so `Chdir` tries again after setuid.
        Err(e) if matches!(sys::errno(&e), Some(libc::EACCES | libc::EPERM)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Find args[0] in the container and check execve will take the
/// arguments (the plan's last step is the `Exec` that uses them).
pub(super) fn resolve(ctx: &mut Ctx, arg0: &str) -> io::Result<()> {
    let (args, env) = match ctx.plan.steps.last().and_then(|s| s.as_init()) {
        Some(InitStep::Exec { args, env }) => (args.clone(), env.clone()),
        _ => (Vec::new(), Vec::new()),
    };
    let exe = resolve_executable(arg0, &env)?;
    check_exec_size(&exe, &args, &env)?;
    ctx.exe = Some(exe);
    Ok(())
}

pub(super) fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket we close below; ifreq is zeroed then filled.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(sys::last("socket for lo"));
        }
        let s = OwnedFd::from_raw_fd(s);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) != 0 {
            return Err(sys::last("SIOCGIFFLAGS lo"));
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) != 0 {
            return Err(sys::last("SIOCSIFFLAGS lo up"));
        }
    }
    Ok(())
}

pub(super) fn open_console(ctx: &Ctx, uid: u32, rows: u16, cols: u16) -> io::Result<()> {
    let sock = ctx
        .fds
        .console
        .ok_or_else(|| io::Error::other("no console socket"))?;
    let master = sys::open(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY, 0)?;
    let mut n: libc::c_uint = 0;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK/TIOCGPTN take pointers to live ints.
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(sys::last("unlockpt"));
        }
        if libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) != 0 {
            return Err(sys::last("ptsname"));
        }
    }
    let slave_path = format!("/dev/pts/{n}");
    let slave = sys::open(Path::new(&slave_path), libc::O_RDWR | libc::O_NOCTTY, 0)?;
    // SAFETY: plain calls on fds we hold; winsize is a live struct.
    unsafe {
        // Only the owner: the group is the one devpts gives new ptys (its
        // gid= option, 5 = tty in runc's spec), as runc leaves it.
        if libc::fchown(slave.as_raw_fd(), uid, u32::MAX) != 0 {
            return Err(sys::last(format_args!("chown {slave_path}")));
        }
        if rows > 0 || cols > 0 {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
    // runc sends the master with its name as the payload.
    sys::send_fd(sock, b"/dev/ptmx", master.as_raw_fd())?;
    drop(master);
    // SAFETY: session/tty calls on our own process and fds we hold.
    unsafe {
        if libc::setsid() < 0 {
            return Err(sys::last("setsid"));
        }
        if libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) != 0 {
            return Err(sys::last("TIOCSCTTY"));
        }
        for fd in 0..3 {
            if libc::dup2(slave.as_raw_fd(), fd) < 0 {
                return Err(sys::last("dup2 pty"));
            }
        }
    }
    Ok(())
}

pub(super) fn set_rlimit(name: &str, soft: u64, hard: u64) -> io::Result<()> {
    let res =
        crate::plan::rlimit_resource(name).ok_or_else(|| io::Error::other("unknown rlimit"))?;
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads a live struct.
    if unsafe { libc::setrlimit(res as _, &lim) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a live struct.
    unsafe { libc::getrlimit(res as _, &mut cur) };
    if crate::sys::errno(&e) == Some(libc::EPERM) && hard > cur.rlim_max {
        return Err(io::Error::new(
            e.kind(),
            format!(
                "setrlimit: {e}: the hard limit {hard} is above berth's own hard limit {} and raising it needs CAP_SYS_RESOURCE",
                cur.rlim_max
            ),
        ));
    }
    Err(sys::err("setrlimit", e))
}

pub(super) fn load_seccomp(ctx: &Ctx) -> io::Result<()> {
    let prog = ctx
        .plan
        .seccomp
        .as_ref()
        .ok_or_else(|| io::Error::other("no compiled seccomp program"))?;
    if let Some(fd) = prog.load().map_err(|e| sys::err("seccomp", e))? {
        hand_over_listener(ctx.ch.raw(), fd)?;
    }
    Ok(())
}

/// Between loading a NOTIFY filter and the agent holding its fd, any
/// syscall the filter sends to the (absent) agent would hang init: so no
/// allocation here — the message is formatted on the stack, sent with one
/// write(2), and the reply read into a stack buffer.
fn hand_over_listener(sock: i32, fd: i32) -> io::Result<()> {
    let mut msg = [0u8; 48];
    let head = br#"{"type":"seccomp_fd","fd":"#;
    msg[..head.len()].copy_from_slice(head);
    let mut n = head.len();
    let mut digits = [0u8; 10];
    let mut len = 0;
    let mut v = fd as u32;
    loop {
        digits[len] = b'0' + (v % 10) as u8;
        len += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in (0..len).rev() {
        msg[n] = digits[i];
        n += 1;
    }
    msg[n] = b'}';
    n += 1;
    // SAFETY: write/read on our socket with stack buffers of the given sizes.
    unsafe {
        if libc::write(sock, msg.as_ptr().cast(), n) != n as isize {
            return Err(sys::last("write the seccomp listener fd number"));
        }
        // The runtime answers Go once the agent has the fd; a longer Go is
        // truncated, which is fine: only its arrival matters here.
        let mut reply = [0u8; 256];
        if libc::read(sock, reply.as_mut_ptr().cast(), reply.len()) <= 0 {
            return Err(sys::last(
                "wait for the runtime to hand the listener to the agent",
            ));
        }
        libc::close(fd);
    }
    Ok(())
}

fn cap_bits(names: &[String]) -> io::Result<u64> {
    let mut bits = 0u64;
    for n in names {
        let c: caps::Capability = n
            .parse()
            .map_err(|_| io::Error::other(format!("unknown capability {n}")))?;
        bits |= 1u64 << c.index();
    }
    Ok(bits)
}

/// The highest capability number the running kernel knows.
fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

pub(super) fn drop_bounding(keep: &[String]) -> io::Result<()> {
    let keep = cap_bits(keep)?;
    for cap in 0..=last_cap() {
        if keep & (1 << cap) == 0 {
            sys::prctl(
                libc::PR_CAPBSET_DROP,
                cap as libc::c_ulong,
                "PR_CAPBSET_DROP",
            )?;
        }
    }
    Ok(())
}

pub(super) fn switch_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    sys::prctl(libc::PR_SET_KEEPCAPS, 1, "PR_SET_KEEPCAPS")?;
    // SAFETY: setgroups reads `groups`, a live slice; the others take ints.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(sys::last(format_args!("setgroups {groups:?}")));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(sys::last(format_args!("setgid {gid}")));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(sys::last(format_args!("setuid {uid}")));
        }
    }
    // A credential change clears the parent-death signal: the plan's next
    // step sets it again.
    sys::prctl(libc::PR_SET_KEEPCAPS, 0, "PR_SET_KEEPCAPS 0")
}

pub(super) fn set_caps(
    eff: &[String],
    perm: &[String],
    inh: &[String],
    amb: &[String],
) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let (e, p, i) = (cap_bits(eff)?, cap_bits(perm)?, cap_bits(inh)?);
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    }; // _LINUX_CAPABILITY_VERSION_3
    let data = [
        Data {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        Data {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: capset reads a v3 header and two data structs, all live.
    if unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) } != 0 {
        return Err(sys::last("capset"));
    }
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        "clear ambient caps",
    )?;
    // An ambient cap must also be permitted and inheritable. `runc spec`
    // lists ambient caps without inheritable ones; runc then only warns, so a
    // raise the kernel refuses is skipped here too.
    let a = cap_bits(amb)?;
    for cap in (0..64u64).filter(|c| a & (1 << c) != 0) {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE, cap, 0, 0) };
    }
    Ok(())
}

pub(super) fn chdir(cwd: &str) -> io::Result<()> {
    std::env::set_current_dir(cwd)
        .map_err(|e| sys::err(format_args!("process.cwd: chdir {cwd}"), e))?;
    // CVE-2024-21626: a cwd reached through a leaked host fd
    // (/proc/self/fd/N) resolves outside our root and getcwd says so.
    let now = std::env::current_dir().map_err(|e| sys::err("getcwd", e))?;
    if !now.is_absolute() || now.to_string_lossy().starts_with("(unreachable)") {
        return Err(io::Error::other(format!(
            "process.cwd {cwd:?} is outside the container"
        )));
    }
    Ok(())
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn is_executable(p: &Path) -> bool {
    let Ok(c) = sys::cstr(p.as_os_str()) else {
        return false;
    };
    // SAFETY: valid C string.
    let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
    ok && p.metadata().map(|m| m.is_file()).unwrap_or(false)
}

/// Find args[0] like execvp would, but now, so a missing program fails
/// `create` (runc's wording: `exec: "x": executable file not found in $PATH`).
fn resolve_executable(arg0: &str, env: &[String]) -> io::Result<CString> {
    if arg0.contains('/') {
        let p = Path::new(arg0);
        return match p.metadata() {
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("exec: {arg0:?}: stat {arg0}: {e}"),
            )),
            Ok(_) if !is_executable(p) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("exec: {arg0:?}: permission denied"),
            )),
            Ok(_) => sys::cstr(arg0),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if is_executable(&cand) {
            return sys::cstr(cand.as_os_str());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("exec: {arg0:?}: executable file not found in $PATH"),
    ))
}

/// Will execve take this many arguments and environment strings? The
/// kernel allows a quarter of RLIMIT_STACK (at least 128 KiB, at most 6 MiB)
/// for the strings and their pointers (fs/exec.c, bprm_stack_limits); past
/// that execve fails with E2BIG after `start`. Checked here, with init's own
/// stack limit, so `create` fails instead, naming the fields.
fn check_exec_size(exe: &CString, args: &[String], env: &[String]) -> io::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a live struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) } != 0 {
        return Err(sys::last("getrlimit RLIMIT_STACK"));
    }
    const ARG_MAX: u64 = 32 * 4096;
    const STK_LIM: u64 = 8 << 20;
    let limit = (STK_LIM / 4 * 3).min(lim.rlim_cur / 4).max(ARG_MAX);
    let strings = |v: &[String]| v.iter().map(|s| s.len() as u64 + 1).sum::<u64>();
    let ptrs = (args.len().max(1) + env.len()) as u64 * 8;
    let need = strings(args) + strings(env) + ptrs + exe.as_bytes().len() as u64 + 1;
    if need > limit {
        return Err(io::Error::other(format!(
            "process.args and process.env: {need} bytes for execve, above the kernel's limit of {limit} (a quarter of RLIMIT_STACK {})",
            lim.rlim_cur
        )));
    }
    Ok(())
}

pub(super) fn close_host_fds(keep_up_to: i32) -> io::Result<()> {
    for fd in 3..=keep_up_to {
        // SAFETY: clearing FD_CLOEXEC on a preserved fd number.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    sys::cloexec_from(keep_up_to + 1)
}

pub(super) fn wait_exec_fifo(fifo: Option<i32>) -> io::Result<()> {
    let fifo =
        fifo.ok_or_else(|| io::Error::other("no exec.fifo (an exec'd process runs at once)"))?;
    let path = format!("/proc/self/fd/{fifo}");
    // Blocks until `berth start` opens the other end.
    let fd = sys::open(Path::new(&path), libc::O_WRONLY, 0)
        .map_err(|e| sys::err("open exec.fifo (is /proc mounted?)", e))?;
    // SAFETY: writing one byte from a static buffer.
    if unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) } != 1 {
        return Err(sys::last("write exec.fifo"));
    }
    // SAFETY: the O_PATH fd is no longer needed.
    unsafe { libc::close(fifo) };
    Ok(())
}

/// Give the container program the signal state a fresh process has: an
/// ignored signal stays ignored across execve, and Rust ignores SIGPIPE at
/// start-up, so without this `yes | head` would misbehave in a container.
pub(super) fn reset_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to the default has no preconditions.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set, then unblocking it for this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

pub(super) fn exec(
    exe: Option<&CString>,
    args: &[String],
    env: &[String],
    seccomp: Option<&crate::seccomp::Program>,
) -> io::Result<()> {
    let exe = exe.ok_or_else(|| io::Error::other("executable not resolved"))?;
    let argv: Vec<CString> = args.iter().map(sys::cstr).collect::<io::Result<_>>()?;
    let envp: Vec<CString> = env.iter().map(sys::cstr).collect::<io::Result<_>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    if let Some(prog) = seccomp {
        // The filter is loaded: ask it (berth's interpreter on the same
        // bytes, with the same registers) what execve will get. A denial
        // would otherwise be a bare EPERM, or a silent SIGSYS.
        use crate::seccomp::bpf::Verdict;
        let regs = [
            exe.as_ptr() as u64,
            argv_p.as_ptr() as u64,
            envp_p.as_ptr() as u64,
            0,
            0,
            0,
        ];
        let v = prog.verdict(libc::SYS_execve, regs);
        if matches!(
            v,
            Verdict::KillThread | Verdict::KillProcess | Verdict::Trap(_) | Verdict::Errno(_)
        ) {
            return Err(io::Error::other(format!(
                "the seccomp filter denied the container's execve ({}): linux.seccomp must allow \
                 execve for the program to start",
                crate::seccomp::action_name(v)
            )));
        }
    }
    // SAFETY: NULL-terminated arrays of valid C strings that live until execve.
    unsafe { libc::execve(exe.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    Err(sys::last(format_args!("exec {}", exe.to_string_lossy())))
}

/// createContainer and startContainer hooks run in the container's
/// namespaces, so init runs them (runtime-spec §hooks). createContainer
/// hooks run before pivot_root with the rootfs as their working directory,
/// as runc does (`./lib/…` in a hook means the container's /lib).
pub(super) fn init_hooks(ctx: &Ctx, kind: Kind, hooks: &[crate::spec::Hook]) -> io::Result<()> {
    let state: serde_json::Value = ctx
        .state
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(serde_json::Value::Null);
    if kind == Kind::CreateContainer {
        if let Some(root) = &ctx.root {
            nix::unistd::fchdir(root)
                .map_err(|e| sys::err("chdir to the rootfs for createContainer hooks", e.into()))?;
        }
    }
    crate::hooks::run(kind, hooks, &state, &mut |_| {}).map_err(io::Error::other)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING). Kernels without keys, or a user
/// namespace that may not use them, say ENOSYS/EACCES: like runc, go on.
pub(super) fn join_session_keyring(name: &str) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let c = sys::cstr(name)?;
    // SAFETY: keyctl with a valid C string; returns a key serial or -1.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, c.as_ptr()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EACCES) | Some(libc::EPERM)
        ) {
            return Err(sys::err("join session keyring", e));
        }
    }
    Ok(())
}
