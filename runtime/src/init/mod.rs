//! Inside the sandbox: the step executor for stage 1 and init.
//!
//! Both processes walk the same [`Plan`] the runtime printed: stage 1 the
//! namespaces phase, init the rootfs, process and start phases
//! ([`Plan::walked_by`]). When a child meets a runtime step (joining the
//! cgroup, writing id maps, prestart hooks) it asks the runtime to do the
//! run of them and waits. Each executor matches its actor's step enum
//! exhaustively, one step → one function in [`namespaces`], [`rootfs`],
//! [`devices`] and [`process`].

pub mod channel;
pub mod devices;
pub mod namespaces;
pub mod process;
pub mod rootfs;

pub use channel::{Channel, Msg};

use crate::error::ChildFailure;
use crate::plan::{Actor, InitStep, Plan, Stage1Step, Step};
use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};

/// The fds a child inherits from the runtime (all opened before fork).
#[derive(Debug, Clone, Copy)]
pub struct Fds {
    /// O_PATH fd of `<state>/exec.fifo` (none for `exec`).
    pub exec_fifo: Option<RawFd>,
    /// Connected `--console-socket`, if any.
    pub console: Option<RawFd>,
}

/// What init carries from one step to the next.
pub struct Ctx<'a> {
    pub plan: &'a Plan,
    pub ch: &'a Channel,
    pub fds: Fds,
    /// O_PATH fd of the rootfs (before pivot) or of `/` (after).
    pub root: Option<OwnedFd>,
    /// args[0] resolved in the container's PATH.
    pub exe: Option<CString>,
    /// The container state JSON (sent by the runtime), for init's hooks.
    pub state: Option<String>,
    /// process.cwd is already the cwd (set by `ChdirAsRoot`).
    pub cwd_done: bool,
    /// The host's `/proc`, kept by `ChrootWithoutMountNamespace`: the
    /// rootfs has no procfs then, and the exec fifo is reopened through it.
    pub host_proc: Option<OwnedFd>,
}

/// Run stage 1, then exit. Never returns.
pub fn stage1(plan: &Plan, ch: &Channel, fds: Fds) -> ! {
    let code = match run_stage1(plan, ch, fds) {
        Ok(()) => 0,
        Err(e) => {
            let errno = e
                .chain()
                .find_map(|c| c.downcast_ref::<std::io::Error>())
                .and_then(crate::sys::errno)
                .unwrap_or(0);
            let _ = ch.send(&Msg::Error {
                msg: format!("stage 1: {e:#}"),
                errno,
                kind: ChildFailure::Step,
            });
            ch.drain();
            1
        }
    };
    // SAFETY: _exit skips Rust destructors and atexit handlers, which belong
    // to the runtime process this one was forked from.
    unsafe { libc::_exit(code) }
}

fn run_stage1(plan: &Plan, ch: &Channel, fds: Fds) -> anyhow::Result<()> {
    // --debug lines carry runc's wording where runc's suite and users grep
    // for it (debug.bats, exec.bats: "nsexec container setup", …); stage 1
    // is berth's counterpart of runc's nsexec.
    crate::log::debug("stage 1: => nsexec container setup");
    // Open every namespace to join before joining any, as runc's nsexec
    // does (join_namespaces: open all, then setns in order). Once stage 1
    // is in the container's user namespace (joined first), the other
    // /proc/<pid>/ns files of a container whose init is still on its way to
    // execve (non-dumpable until then, as `run -d` can return just before)
    // are no longer stage 1's to open: EACCES, an `exec` failing at random.
    // An open's error is still reported at its own step, in plan order.
    let mut ns_fds: Vec<(&std::path::Path, std::io::Result<OwnedFd>)> = plan
        .walked_by(Actor::Stage1)
        .iter()
        .filter_map(|s| match s {
            Step::Stage1(Stage1Step::JoinNamespace { path, .. }) => {
                Some((path.as_path(), crate::sys::open(path, libc::O_RDONLY, 0)))
            }
            _ => None,
        })
        .collect();
    let mut turn = RuntimeTurns::default();
    for step in plan.walked_by(Actor::Stage1) {
        let step = match step {
            Step::Runtime(_) => {
                turn.hand_over(ch, &mut None)?;
                continue;
            }
            Step::Stage1(s) => s,
            Step::Init(s) => anyhow::bail!("plan: init step in stage 1's phase: {}", s.describe()),
        };
        turn.back();
        use crate::sys;
        let done = match step {
            Stage1Step::SetParentDeathSignal { signal } => sys::prctl(
                libc::PR_SET_PDEATHSIG,
                *signal as libc::c_ulong,
                "PR_SET_PDEATHSIG",
            ),
            Stage1Step::SetNotDumpable => sys::prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE 0"),
            Stage1Step::JoinNamespace { kind, path } => {
                let i = ns_fds.iter().position(|(p, _)| *p == path.as_path());
                match i.map(|i| ns_fds.remove(i).1) {
                    Some(fd) => fd.and_then(|fd| namespaces::join(*kind, path, &fd)),
                    None => crate::sys::open(path, libc::O_RDONLY, 0)
                        .and_then(|fd| namespaces::join(*kind, path, &fd)),
                }
            }
            Stage1Step::UnshareUserNamespace => sys::unshare(libc::CLONE_NEWUSER),
            Stage1Step::BecomeRoot => namespaces::become_root(),
            Stage1Step::Unshare { kinds } => namespaces::unshare(kinds),
            Stage1Step::ForkInit => {
                // Init shares the socket with us, and the runtime needs init's pid
                // before any message of init's (to copy a seccomp listener out of
                // it, to record it before `created`). Init waits on this pipe until
                // `InitPid` is sent; without it a descheduled stage 1 let init's
                // `Created` arrive first, and `start` found no init recorded.
                let (hold, release) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| anyhow::anyhow!("pipe2: {e}"))?;
                let pid = sys::fork_sibling()?;
                if pid == 0 {
                    drop(release);
                    if !sys::read_one_byte(&hold) {
                        // Stage 1 died before reporting us: the runtime will say so.
                        // SAFETY: _exit in a forked child.
                        unsafe { libc::_exit(1) };
                    }
                    drop(hold);
                    run_init(plan, ch, fds);
                }
                drop(hold);
                stall_for_tests();
                crate::log::debug(&format!(
                    "stage 1: <= nsexec container setup (init is pid {pid})"
                ));
                ch.send(&Msg::InitPid { pid })?;
                sys::write_one_byte(&release)?;
                return Ok(());
            }
        };
        done.map_err(|e| anyhow::anyhow!("{}: {e}", step.describe()))?;
    }
    Ok(())
}

/// `$BERTH_TEST_STAGE1_STALL_MS`: stage 1 sleeps that long between forking
/// init and reporting its pid, as a descheduled stage 1 does under load
/// (runtime_stress.rs makes the race deterministic with it). Unset: nothing.
fn stall_for_tests() {
    if let Some(ms) = std::env::var("BERTH_TEST_STAGE1_STALL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// A child walking the plan hands each run of runtime steps to the runtime
/// (once per run) and waits until it is done.
#[derive(Default)]
struct RuntimeTurns {
    handed: bool,
}

impl RuntimeTurns {
    fn hand_over(&mut self, ch: &Channel, state: &mut Option<String>) -> std::io::Result<()> {
        if !self.handed {
            ch.send(&Msg::RuntimeTurn {
                pid: std::process::id() as i32,
            })?;
            ch.expect_go(state)?;
            self.handed = true;
        }
        Ok(())
    }

    fn back(&mut self) {
        self.handed = false;
    }
}

/// The container init: run every init step; the last one execs.
fn run_init(plan: &Plan, ch: &Channel, fds: Fds) -> ! {
    let mut ctx = Ctx {
        plan,
        ch,
        fds,
        root: None,
        exe: None,
        state: None,
        cwd_done: false,
        host_proc: None,
    };
    crate::log::debug("init: child process in init()");
    let mut turn = RuntimeTurns::default();
    for step in plan.walked_by(Actor::Init) {
        let step = match step {
            Step::Runtime(r) => {
                if let Err(e) = turn.hand_over(ch, &mut ctx.state) {
                    fail(ch, format!("{}: {e}", r.describe()), &e, ChildFailure::Step);
                }
                continue;
            }
            Step::Init(s) => s,
            Step::Stage1(s) => fail(
                ch,
                s.describe(),
                &std::io::Error::other("plan: stage 1 step in init's phases"),
                ChildFailure::Step,
            ),
        };
        turn.back();
        if let InitStep::ReportCreated = step {
            // runc's last words before init hands over (standard_init for
            // create/run, setns_init for exec).
            crate::log::debug(if ctx.fds.exec_fifo.is_some() {
                "init: closing the pipe to signal completion"
            } else {
                "setns_init: about to exec"
            });
        }
        if let Err(e) = run_step(&mut ctx, step) {
            let msg = format!("{}: {e}", step_label(step));
            if matches!(
                step,
                InitStep::Exec { .. } | InitStep::StartContainerHooks { .. }
            ) {
                // Past the point of reporting to the runtime: say it on stderr.
                eprintln!("berth: {msg}");
                let code = if crate::sys::errno(&e) == Some(libc::EACCES) {
                    126
                } else {
                    127
                };
                // SAFETY: see stage1.
                unsafe { libc::_exit(code) }
            }
            fail(ch, msg, &e, failure_kind(step, &e));
        }
    }
    // SAFETY: see stage1 (Exec never returns on success).
    unsafe { libc::_exit(127) }
}

/// Report a failed step to the runtime (or, once it is gone, on stderr)
/// and exit.
fn fail(ch: &Channel, msg: String, e: &std::io::Error, kind: ChildFailure) -> ! {
    let sent = ch.send(&Msg::Error {
        msg: msg.clone(),
        errno: crate::sys::errno(e).unwrap_or(0),
        kind,
    });
    if sent.is_err() {
        // The runtime is gone (it returns after `created`): the
        // container's stderr is the only place left to say it.
        eprintln!("berth: {msg}");
    }
    ch.drain();
    // SAFETY: see stage1.
    unsafe { libc::_exit(1) }
}

/// What kind of failure to report: a program that cannot be run is told
/// apart from other failed steps by its step and the error's kind, so the
/// runtime never has to read the message.
fn failure_kind(step: &InitStep, e: &std::io::Error) -> ChildFailure {
    match (step, e.kind()) {
        (InitStep::ResolveExecutable { .. }, std::io::ErrorKind::NotFound) => {
            ChildFailure::ProgramNotFound
        }
        (InitStep::ResolveExecutable { .. }, std::io::ErrorKind::PermissionDenied) => {
            ChildFailure::ProgramNotExecutable
        }
        _ => ChildFailure::Step,
    }
}

/// How an init error names the step: the config field where there is one.
fn step_label(step: &InitStep) -> String {
    match step {
        InitStep::Mount(m) => format!("mounts[{}] ({})", m.index, step.describe()),
        InitStep::Rlimit {
            index,
            name,
            soft,
            hard,
        } => {
            format!("process.rlimits[{index}] ({name} soft={soft} hard={hard})")
        }
        _ => step.describe(),
    }
}

/// Init's executor: every init step, one function each.
fn run_step(ctx: &mut Ctx, step: &InitStep) -> std::io::Result<()> {
    use crate::sys;
    use InitStep::*;
    match step {
        ClearUmask => {
            // SAFETY: umask cannot fail.
            unsafe { libc::umask(0) };
            Ok(())
        }
        JoinSessionKeyring { name } => process::join_session_keyring(name),
        SetRootPropagation { flags } | SetNewRootPropagation { flags } => {
            rootfs::set_propagation(*flags)
        }
        BindRootfs { rootfs } => rootfs::bind_rootfs(ctx, rootfs),
        Mount(m) => rootfs::mount(rootfs::root(ctx)?, m, ctx.ch.take_mount_source(m.index)),
        MountCgroups {
            readonly,
            destination,
            binds,
            symlinks,
        } => rootfs::mount_cgroups(rootfs::root(ctx)?, destination, binds, symlinks, *readonly),
        CreateDevice(d) => devices::create(ctx, d),
        Symlink { target, link } => rootfs::symlink(rootfs::root(ctx)?, target, link),
        CreateContainerHooks { hooks } => {
            process::init_hooks(ctx, crate::hooks::Kind::CreateContainer, hooks)
        }
        PivotRoot => rootfs::pivot_root(ctx),
        ChrootNoPivot => rootfs::chroot_no_pivot(ctx),
        ChrootWithoutMountNamespace { rootfs } => rootfs::chroot_without_mountns(ctx, rootfs),
        BringUpLoopback => process::loopback_up(),
        Sysctl { key, value } => process::sysctl(key, value),
        SetHostname { name } => {
            nix::unistd::sethostname(name).map_err(|e| sys::err("sethostname", e.into()))
        }
        SetDomainname { name } => process::set_domainname(name),
        RemountReadonly { path } => rootfs::remount_readonly_in_root(ctx, path),
        MaskPath { path } => rootfs::mask(rootfs::root(ctx)?, path),
        ReadonlyPath { path } => rootfs::readonly(rootfs::root(ctx)?, path),
        ReadonlyRoot => rootfs::remount_ro(std::path::Path::new("/")),
        OpenConsole {
            uid, rows, cols, ..
        } => process::open_console(ctx, *uid, *rows, *cols),
        Rlimit {
            name, soft, hard, ..
        } => process::set_rlimit(name, *soft, *hard),
        OomScoreAdj { value } => std::fs::write("/proc/self/oom_score_adj", value.to_string())
            .map_err(|e| sys::err("process.oomScoreAdj: write /proc/self/oom_score_adj", e)),
        LimitUserNamespaces => std::fs::write("/proc/sys/user/max_user_namespaces", "0")
            .map_err(|e| sys::err("write /proc/sys/user/max_user_namespaces", e)),
        LoadSeccomp { .. } => process::load_seccomp(ctx),
        DropBoundingCaps { keep } => process::drop_bounding(keep),
        SwitchUser {
            uid,
            gid,
            additional_gids,
        } => process::switch_user(*uid, *gid, additional_gids),
        RestoreParentDeathSignal { signal } => sys::prctl(
            libc::PR_SET_PDEATHSIG,
            *signal as libc::c_ulong,
            "PR_SET_PDEATHSIG",
        ),
        SetCapabilities {
            effective,
            permitted,
            inheritable,
            ambient,
        } => process::set_caps(effective, permitted, inheritable, ambient),
        NoNewPrivileges => sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS"),
        Umask { mask } => {
            // SAFETY: umask cannot fail.
            unsafe { libc::umask(*mask as libc::mode_t) };
            Ok(())
        }
        ChdirAsRoot { cwd } => process::chdir_as_root(ctx, cwd),
        Chdir { cwd } if !ctx.cwd_done => process::chdir(cwd),
        Chdir { .. } => Ok(()),
        ResolveExecutable { arg0 } => process::resolve(ctx, arg0),
        CloseHostFds { keep_up_to } => process::close_host_fds(*keep_up_to),
        ClearParentDeathSignal => sys::prctl(libc::PR_SET_PDEATHSIG, 0, "PR_SET_PDEATHSIG 0"),
        ReportCreated => {
            ctx.ch.send(&Msg::Created)?;
            ctx.ch.expect_go(&mut ctx.state)
        }
        WaitExecFifo => process::wait_exec_fifo(ctx.fds.exec_fifo, ctx.host_proc.as_ref()),
        StartContainerHooks { hooks } => {
            process::init_hooks(ctx, crate::hooks::Kind::StartContainer, hooks)
        }
        ResetSignals => {
            process::reset_signals();
            Ok(())
        }
        Exec { args, env } => process::exec(ctx.exe.as_ref(), args, env, ctx.plan.seccomp.as_ref()),
    }
}
