//! The runtime's side of the conversation with stage 1 and init, shared
//! by `create` and `exec`: it performs the runtime steps when stage 1 asks
//! and turns everything else into [`Event`]s.

use crate::cgroups::Cgroup;
use crate::init::{Channel, Msg};
use crate::plan::{Actor, Plan, Step};
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
}

impl<'a> Session<'a> {
    pub fn new(ch: &'a Channel, plan: &'a Plan, cgroup: &'a Cgroup, stage1: i32) -> Session<'a> {
        let after_spawn = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::SpawnStage1))
            .map_or(0, |i| i + 1);
        Session {
            ch,
            plan,
            cgroup,
            stage1,
            cursor: Cell::new(after_spawn),
            init_pid: Cell::new(0),
            state: RefCell::new(None),
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
            match self.ch.recv().map_err(|e| self.init_gone(e))? {
                Msg::RuntimeTurn { .. } => {
                    self.runtime_steps()?;
                    self.go()?;
                }
                Msg::InitPid { pid } => {
                    self.init_pid.set(pid);
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
                Msg::Error { msg } => bail!("{msg}"),
                Msg::Go { .. } => bail!("unexpected message from container init"),
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
            // The child is gone: report its last word if it left one.
            if let Ok(Msg::Error { msg }) = self.ch.recv() {
                bail!("{msg}");
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
