//! The runtime's executor: every [`RuntimeStep`], one function each, for
//! `create` and `exec` alike. The host phase runs straight through
//! ([`Executor::run_host_phase`]); the runtime steps inside the children's
//! phases run when a child hands them over ([`super::session`]).

use super::Container;
use crate::cgroups::Cgroup;
use crate::init::{self, Channel, Fds};
use crate::plan::{Actor, Plan, RuntimeStep, Step};
use crate::spec::{IdMapping, Resources};
use crate::state::{Proc, Root, State};
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What the runtime steps need, and what they leave behind.
pub struct Executor<'a> {
    pub plan: &'a Plan,
    pub cgroup: &'a Cgroup,
    /// `CreateStateDir`: where to claim the id, and the state to write first.
    pub claim: Option<(&'a Root, State)>,
    /// The claimed container (after `CreateStateDir`).
    pub container: Option<Container>,
    /// `CreateCgroup`: the limits the cgroup enforces.
    pub resources: Option<Resources>,
    /// `ConnectConsole`: the `--console-socket` path.
    pub console_socket: Option<PathBuf>,
    console: Option<OwnedFd>,
    exec_fifo: Option<OwnedFd>,
    /// The runtime's end of the sync socket (after `SpawnStage1`).
    pub channel: Option<Channel>,
    /// Stage 1's pid (after `SpawnStage1`).
    pub stage1: i32,
    /// The container state for the runtime's hooks.
    pub hook_state: Option<serde_json::Value>,
    /// `exec`: the container's init, whose cgroup2 directory the process
    /// joins when the container's own refuses it ([`Cgroup::add_exec_pid`]).
    pub exec_init: Option<i32>,
}

impl<'a> Executor<'a> {
    pub fn new(plan: &'a Plan, cgroup: &'a Cgroup) -> Executor<'a> {
        Executor {
            plan,
            cgroup,
            claim: None,
            container: None,
            resources: None,
            console_socket: None,
            console: None,
            exec_fifo: None,
            channel: None,
            stage1: 0,
            hook_state: None,
            exec_init: None,
        }
    }

    /// Every step of the host phase, in order (it ends with `SpawnStage1`).
    pub fn run_host_phase(&mut self) -> Result<()> {
        for step in self.plan.walked_by(Actor::Runtime) {
            match step {
                Step::Runtime(s) => self.run(s)?,
                Step::Stage1(_) | Step::Init(_) => {
                    bail!(
                        "plan: a child's step in the host phase: {}",
                        step.describe()
                    )
                }
            }
        }
        Ok(())
    }

    /// Perform one runtime step.
    pub fn run(&mut self, step: &RuntimeStep) -> Result<()> {
        match step {
            RuntimeStep::CreateStateDir { dir } => self.create_state_dir(dir),
            RuntimeStep::CreateCgroup { .. } => {
                create_cgroup(self.cgroup)?;
                if let Some(r) = &self.resources {
                    self.cgroup.apply(r)?;
                }
                Ok(())
            }
            RuntimeStep::CreateExecFifo { path } => {
                nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(|e| anyhow!("mkfifo {}: {e}", path.display()))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o622))?;
                self.exec_fifo = Some(sys::open(path, libc::O_PATH, 0)?);
                Ok(())
            }
            RuntimeStep::ConnectConsole => {
                let path = self
                    .console_socket
                    .as_deref()
                    .ok_or_else(|| anyhow!("plan: a console step without --console-socket"))?;
                self.console = Some(connect_console(path)?);
                Ok(())
            }
            RuntimeStep::SpawnStage1 => self.spawn_stage1(),
            RuntimeStep::JoinCgroup => match self.exec_init {
                Some(init) => self.cgroup.add_exec_pid(self.stage1, init),
                None => self.cgroup.add_pid(self.stage1),
            },
            RuntimeStep::WriteIdMaps { uid, gid } => write_id_maps(self.stage1, uid, gid),
            RuntimeStep::OpenMountSources { sources } => {
                // In a child's turn the session holds the channel.
                let ch = self.channel.as_ref().ok_or_else(|| {
                    anyhow!("plan: open_mount_sources outside a child's runtime turn")
                })?;
                super::mount_sources::send(ch, self.stage1, sources)
            }
            RuntimeStep::RuntimeHooks {
                prestart,
                create_runtime,
            } => {
                let state = self.hook_state.clone().unwrap_or_default();
                use crate::hooks::{run, Kind};
                run(Kind::Prestart, prestart, &state, &mut |_| {})?;
                run(Kind::CreateRuntime, create_runtime, &state, &mut |_| {})?;
                Ok(())
            }
        }
    }

    fn create_state_dir(&mut self, dir: &Path) -> Result<()> {
        let (root, state) = self
            .claim
            .take()
            .ok_or_else(|| anyhow!("plan: {} claimed twice", dir.display()))?;
        let (dir, lock) = root.claim(&state.id)?;
        let saved = state.save(&dir);
        // Claimed: from here on a failure is unwound by destroy.
        self.container = Some(Container {
            dir,
            state,
            lock: Some(lock),
        });
        saved
    }

    fn spawn_stage1(&mut self) -> Result<()> {
        let (parent, child) = Channel::pair()?;
        let fds = Fds {
            exec_fifo: self.exec_fifo.as_ref().map(|f| f.as_raw_fd()),
            console: self.console.as_ref().map(|c| c.as_raw_fd()),
        };
        let lock_fd = self
            .container
            .as_ref()
            .and_then(|c| c.lock.as_ref())
            .map(|l| l.raw());
        let pid = sys::fork()?;
        if pid == 0 {
            // The children must not hold the runtime's end of the channel (its
            // EOF is how they notice a dead runtime) nor the state-dir lock.
            drop(parent);
            if let Some(fd) = lock_fd {
                // SAFETY: closing our copy of the lock fd; the runtime keeps its own.
                unsafe { libc::close(fd) };
            }
            init::stage1(self.plan, &child, fds);
        }
        drop(child);
        self.stage1 = pid;
        self.channel = Some(parent);
        if let Some(c) = &mut self.container {
            if let Some(h) = Proc::of(pid) {
                c.state.record.helpers.push(h);
                c.state.save(&c.dir)?;
            }
        }
        Ok(())
    }
}

pub(super) fn connect_console(path: &Path) -> Result<OwnedFd> {
    let s = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("--console-socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// mkdir -p the cgroup. A concurrent `delete` may remove the shared
/// `/berth` parent between our mkdirs (it removes it when empty), so a
/// vanished parent (ENOENT) is retried.
fn create_cgroup(cg: &Cgroup) -> Result<()> {
    let mut tries = 0;
    loop {
        match cg.create() {
            Err(e) if tries < 5 && crate::error::errno_of(&e) == Some(libc::ENOENT) => tries += 1,
            other => return other,
        }
    }
}

fn write_id_maps(pid: i32, uid: &[IdMapping], gid: &[IdMapping]) -> Result<()> {
    let fmt = |m: &[IdMapping]| {
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
