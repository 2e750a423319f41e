//! Inside the sandbox: the step executor for stage 1 and init.
//!
//! Both processes walk the same [`Plan`] the runtime printed. Stage 1 runs
//! the namespace steps; when it meets a runtime step (joining the cgroup,
//! writing id maps) it asks the runtime to do it and waits. Init runs the
//! rest, one step → one function, in [`namespaces`], [`rootfs`],
//! [`devices`] and [`process`].

pub mod channel;
pub mod devices;
pub mod namespaces;
pub mod process;
pub mod rootfs;

pub use channel::{Channel, Msg};

use crate::error::ChildFailure;
use crate::plan::{Actor, Plan, Step};
use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};

/// The fds a child inherits from the runtime (all opened before fork).
#[derive(Debug, Clone, Copy)]
pub struct Fds {
    /// O_PATH fd of `<state>/exec.fifo`.
    pub exec_fifo: RawFd,
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
    crate::sys::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        "PR_SET_PDEATHSIG",
    )?;
    // CVE-2019-5736: until execve this process (and init, which inherits
    // the flag) is the host's berth binary. Non-dumpable, its
    // /proc/<pid>/exe cannot be opened by container processes, so they
    // cannot reach — and overwrite — the host binary through it. execve
    // of the container program resets the flag.
    crate::sys::prctl(libc::PR_SET_DUMPABLE, 0, "PR_SET_DUMPABLE 0")?;
    let start = plan
        .steps
        .iter()
        .position(|s| matches!(s, Step::SpawnStage1))
        .map_or(0, |i| i + 1);
    let mut turn = RuntimeTurns::default();
    for step in &plan.steps[start..] {
        match step.actor() {
            Actor::Runtime => {
                turn.hand_over(ch, &mut None)?;
                continue;
            }
            Actor::Stage1 => turn.back(),
            Actor::Init => break,
        }
        if let Step::ForkInit = step {
            let pid = crate::sys::fork_sibling()?;
            if pid == 0 {
                run_init(plan, ch, fds);
            }
            crate::log::debug(&format!(
                "stage 1: <= nsexec container setup (init is pid {pid})"
            ));
            ch.send(&Msg::InitPid { pid })?;
            return Ok(());
        }
        namespaces::run(step).map_err(|e| anyhow::anyhow!("{}: {e}", step.describe()))?;
    }
    Ok(())
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
    };
    // Files created while building the rootfs get exactly the modes asked
    // for; the process umask is set by its own step later.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    let start = plan
        .steps
        .iter()
        .position(|s| matches!(s, Step::ForkInit))
        .map_or(0, |i| i + 1);
    crate::log::debug("init: child process in init()");
    let mut turn = RuntimeTurns::default();
    for step in &plan.steps[start..] {
        if let Step::ReportCreated = step {
            // runc's last words before init hands over (standard_init for
            // create/run, setns_init for exec).
            let creating = plan.steps.iter().any(|s| matches!(s, Step::WaitExecFifo));
            crate::log::debug(if creating {
                "init: closing the pipe to signal completion"
            } else {
                "setns_init: about to exec"
            });
        }
        let result = match step.actor() {
            Actor::Runtime => turn.hand_over(ch, &mut ctx.state),
            _ => {
                turn.back();
                run_step(&mut ctx, step)
            }
        };
        if let Err(e) = result {
            let msg = format!("{}: {e}", step_label(step));
            if matches!(step, Step::Exec { .. } | Step::StartContainerHooks { .. }) {
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
            let sent = ch.send(&Msg::Error {
                msg: msg.clone(),
                errno: crate::sys::errno(&e).unwrap_or(0),
                kind: failure_kind(step, &e),
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
    }
    // SAFETY: see stage1 (Exec never returns on success).
    unsafe { libc::_exit(127) }
}

/// What kind of failure to report: a program that cannot be run is told
/// apart from other failed steps by its step and the error's kind, so the
/// runtime never has to read the message.
fn failure_kind(step: &Step, e: &std::io::Error) -> ChildFailure {
    match (step, e.kind()) {
        (Step::ResolveExecutable { .. }, std::io::ErrorKind::NotFound) => {
            ChildFailure::ProgramNotFound
        }
        (Step::ResolveExecutable { .. }, std::io::ErrorKind::PermissionDenied) => {
            ChildFailure::ProgramNotExecutable
        }
        _ => ChildFailure::Step,
    }
}

/// How an init error names the step: the config field where there is one.
fn step_label(step: &Step) -> String {
    match step {
        Step::Mount(m) => format!("mounts[{}] ({})", m.index, step.describe()),
        Step::Rlimit {
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

fn run_step(ctx: &mut Ctx, step: &Step) -> std::io::Result<()> {
    use Step::*;
    match step {
        SetRootPropagation { .. }
        | SetNewRootPropagation { .. }
        | BindRootfs { .. }
        | Mount(_)
        | MountCgroups { .. }
        | PivotRoot
        | ChrootNoPivot
        | MaskPath { .. }
        | RemountReadonly { .. }
        | ReadonlyPath { .. }
        | ReadonlyRoot
        | Symlink { .. } => rootfs::run(ctx, step),
        CreateDevice { .. } => devices::run(ctx, step),
        _ => process::run(ctx, step),
    }
}
