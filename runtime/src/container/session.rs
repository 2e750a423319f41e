//! The runtime's side of the conversation with stage 1 and init, shared
//! by `create` and `exec`: it performs the runtime steps when stage 1 asks
//! and turns everything else into [`Event`]s.

use crate::cgroups::Cgroup;
use crate::init::channel::Received;
use crate::init::{Channel, Msg};
use crate::plan::{Actor, Plan, Step};
use crate::sys::Pidfd;
use anyhow::{anyhow, bail, Result};
use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;

pub enum Event {
    /// Init was forked with this host pid.
    InitPid(i32),
    /// The seccomp listener fd (NOTIFY profiles), copied out of init. The
    /// handler gives it to the agent, then answers with [`Session::go`].
    SeccompFd(OwnedFd),
    /// Init finished every step before exec (reply with [`Session::go`]).
    Created,
}

pub struct Session<'a> {
    pub ch: &'a Channel,
    pub plan: &'a Plan,
    pub cgroup: &'a Cgroup,
    pub stage1: i32,
    /// Where the next run of runtime steps is searched from.
    pub cursor: Cell<usize>,
    /// Init's host pid, once stage 1 reports it.
    pub init_pid: Cell<i32>,
    /// The container state for hooks (set once init's pid is known).
    pub state: RefCell<Option<serde_json::Value>>,
    /// The children whose death ends the wait for a message: stage 1
    /// until it has forked init, then init.
    watch: RefCell<Vec<Pidfd>>,
}

impl<'a> Session<'a> {
    pub fn new(
        ch: &'a Channel,
        plan: &'a Plan,
        cgroup: &'a Cgroup,
        stage1: i32,
    ) -> Result<Session<'a>> {
        let watch = vec![Pidfd::open(stage1)?];
        let after_spawn = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::SpawnStage1))
            .map_or(0, |i| i + 1);
        Ok(Session {
            ch,
            plan,
            cgroup,
            stage1,
            cursor: Cell::new(after_spawn),
            init_pid: Cell::new(0),
            state: RefCell::new(None),
            watch: RefCell::new(watch),
        })
    }

    /// The next message from stage 1 or init. Their end of the socket
    /// only closes when *both* are gone, so each one's death is watched
    /// too (pidfd): a child that dies without a word is an error naming
    /// how it ended, never a hang.
    fn recv(&self) -> Result<Msg> {
        loop {
            let mut fds: Vec<_> = self.watch.borrow().iter().map(|p| p.raw()).collect();
            // A foreground `run` also wakes up for SIGTERM/SIGINT/...
            let abort = crate::container::wait::abort_fd();
            fds.extend(abort);
            let got = self.ch.recv_watching(&fds).map_err(|e| self.init_gone(e))?;
            let i = match got {
                Received::Msg(m) => return Ok(m),
                Received::Died(i) if abort.is_some() && i == fds.len() - 1 => {
                    crate::container::wait::check_interrupted()?;
                    continue;
                }
                Received::Died(i) => i,
            };
            let dead = self.watch.borrow_mut().remove(i);
            let how = crate::sys::peek_exit(dead.pid).unwrap_or_else(|| "exited".into());
            if dead.pid == self.stage1 {
                if self.init_pid.get() > 0 {
                    continue; // its job is done once init is forked
                }
                bail!("stage 1 (pid {}) {how} before forking init", dead.pid);
            }
            bail!("container init (pid {}) {how} during setup", dead.pid);
        }
    }

    /// Record the state hooks will see; it travels to init with each `Go`.
    pub fn set_state(&self, state: serde_json::Value) -> Result<()> {
        *self.state.borrow_mut() = Some(state);
        Ok(())
    }

    /// Wait for the next event; runtime steps are done on the way.
    pub fn next(&self) -> Result<Event> {
        loop {
            match self.recv()? {
                Msg::RuntimeTurn { .. } => {
                    self.runtime_steps()?;
                    self.go()?;
                }
                Msg::InitPid { pid } => {
                    self.init_pid.set(pid);
                    // Init may already be gone (then its pid is not ours to watch).
                    if let Ok(p) = Pidfd::open(pid) {
                        self.watch.borrow_mut().push(p);
                    }
                    return Ok(Event::InitPid(pid));
                }
                Msg::SeccompFd { fd } => {
                    let init = self.init_pid.get();
                    let got = crate::seccomp::notify::take_fd(init, fd).map_err(|e| {
                        anyhow!("copying the seccomp listener out of init (pid {init}): {e}")
                    })?;
                    return Ok(Event::SeccompFd(got));
                }
                Msg::Created => return Ok(Event::Created),
                Msg::Error { msg, errno, kind } => {
                    return Err(crate::error::Error::Child { msg, errno, kind }.into())
                }
                Msg::Go { .. } | Msg::MountSources { .. } => {
                    bail!("unexpected message from container init")
                }
            }
        }
    }

    /// After the last `Go` of an exec: wait until the child's end of the
    /// socket closes (it is close-on-exec, so: the process has exec'd) or
    /// the process dies, whichever comes first.
    pub fn wait_exec(&self) {
        loop {
            let fds: Vec<_> = self.watch.borrow().iter().map(|p| p.raw()).collect();
            match self.ch.recv_watching(&fds) {
                // Stage 1 exits once init is forked: keep waiting for init.
                Ok(Received::Died(i)) if self.watch.borrow()[i].pid == self.stage1 => {
                    self.watch.borrow_mut().remove(i);
                }
                _ => return,
            }
        }
    }

    /// Init closed the socket without a word. With a seccomp filter that
    /// kills syscalls init needs after loading it, that is the likely cause:
    /// say so instead of only "the other side … is gone".
    fn init_gone(&self, e: std::io::Error) -> anyhow::Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            if let Some(prog) = &self.plan.seccomp {
                let killed = prog.kills_init_needs();
                if !killed.is_empty() {
                    return anyhow!(
                        "container init: killed by the seccomp filter (bad system call): \
                         linux.seccomp kills {}, which init needs after loading the filter, \
                         before the program starts ({e})",
                        killed.join(", ")
                    );
                }
            }
        }
        anyhow!("container init: {e}")
    }

    pub fn go(&self) -> Result<()> {
        let state = self.state.borrow().as_ref().map(|s| s.to_string());
        if let Err(e) = self.ch.send(&Msg::Go { state }) {
            // The child is gone: report its last word if it left one (it
            // is queued before the child's end closes, so never wait).
            if let Ok(Some(Msg::Error { msg, errno, kind })) = self.ch.try_recv() {
                return Err(crate::error::Error::Child { msg, errno, kind }.into());
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// The next run of runtime steps (the children walk the same plan and
    /// hand over at each run).
    fn runtime_steps(&self) -> Result<()> {
        let steps = &self.plan.steps;
        let mut i = self.cursor.get();
        while i < steps.len() && steps[i].actor() != Actor::Runtime {
            i += 1;
        }
        while i < steps.len() && steps[i].actor() == Actor::Runtime {
            match &steps[i] {
                Step::JoinCgroup => self.cgroup.add_pid(self.stage1)?,
                Step::WriteIdMaps { uid, gid } => write_id_maps(self.stage1, uid, gid)?,
                Step::OpenMountSources { sources } => {
                    super::mount_sources::send(self.ch, self.stage1, sources)?
                }
                Step::RuntimeHooks {
                    prestart,
                    create_runtime,
                } => {
                    let state = self.state.borrow().clone().unwrap_or_default();
                    use crate::hooks::{run, Kind};
                    run(Kind::Prestart, prestart, &state, &mut |_| {})?;
                    run(Kind::CreateRuntime, create_runtime, &state, &mut |_| {})?;
                }
                _ => {}
            }
            i += 1;
        }
        self.cursor.set(i);
        Ok(())
    }
}

fn write_id_maps(
    pid: i32,
    uid: &[crate::spec::IdMapping],
    gid: &[crate::spec::IdMapping],
) -> Result<()> {
    let fmt = |m: &[crate::spec::IdMapping]| {
        m.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect::<String>()
    };
    for (file, maps, field) in [
        ("uid_map", uid, "linux.uidMappings"),
        ("gid_map", gid, "linux.gidMappings"),
    ] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, fmt(maps)).map_err(|e| anyhow!("{field}: writing {path}: {e}"))?;
    }
    Ok(())
}
