//! The runtime's side of the conversation with stage 1 and init, shared
//! by `create` and `exec`: when a child hands over a run of runtime steps
//! the [`Executor`] performs it; everything else becomes an [`Event`].

use super::executor::Executor;
use crate::init::channel::Received;
use crate::init::{Channel, Msg};
use crate::plan::Plan;
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
    /// Performs the runtime steps; holds the runtime's end of the socket.
    ex: RefCell<Executor<'a>>,
    ch: Channel,
    stage1: i32,
    /// How many runtime turns the children have taken so far.
    turns_done: Cell<usize>,
    /// Init's host pid, once stage 1 reports it.
    init_pid: Cell<i32>,
    /// The children whose death ends the wait for a message: stage 1
    /// until it has forked init, then init.
    watch: RefCell<Vec<Pidfd>>,
}

impl<'a> Session<'a> {
    /// Talk to the stage 1 that `ex` spawned (its host phase is done).
    pub fn new(mut ex: Executor<'a>) -> Result<Session<'a>> {
        let ch = ex
            .channel
            .take()
            .ok_or_else(|| anyhow!("plan: stage 1 was not spawned"))?;
        let stage1 = ex.stage1;
        let watch = vec![Pidfd::open(stage1)?];
        Ok(Session {
            ex: RefCell::new(ex),
            ch,
            stage1,
            turns_done: Cell::new(0),
            init_pid: Cell::new(0),
            watch: RefCell::new(watch),
        })
    }

    pub fn plan(&self) -> &'a Plan {
        self.ex.borrow().plan
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
    pub fn set_state(&self, state: serde_json::Value) {
        self.ex.borrow_mut().hook_state = Some(state);
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
            if let Some(prog) = &self.plan().seccomp {
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
        let state = self.ex.borrow().hook_state.as_ref().map(|s| s.to_string());
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

    /// The next run of runtime steps: the children walk the same plan and
    /// hand over at the first step of each run ([`Plan::runtime_turns`]).
    fn runtime_steps(&self) -> Result<()> {
        let plan = self.plan();
        let turns = plan.runtime_turns();
        let n = self.turns_done.get();
        let turn = turns.get(n).ok_or_else(|| {
            anyhow!(
                "a child asked for runtime turn {} of {}",
                n + 1,
                turns.len()
            )
        })?;
        self.turns_done.set(n + 1);
        let mut ex = self.ex.borrow_mut();
        for step in turn {
            match step {
                // The fds go to stage 1 over the socket this session holds.
                crate::plan::RuntimeStep::OpenMountSources { sources } => {
                    super::mount_sources::send(&self.ch, self.stage1, sources)?
                }
                _ => ex.run(step)?,
            }
        }
        Ok(())
    }
}
