//! The runtime's side of the conversation with stage 1 and init, shared
//! by `create` and `exec`: it performs the runtime steps when stage 1 asks
//! and turns everything else into [`Event`]s.

use crate::cgroups::Cgroup;
use crate::init::{Channel, Msg};
use crate::plan::{Actor, Plan, Step};
use crate::sys;
use anyhow::{anyhow, bail, Result};
use std::os::fd::OwnedFd;

pub enum Event {
    /// Init was forked with this host pid.
    InitPid(i32),
    /// The seccomp listener fd (NOTIFY profiles).
    SeccompFd(OwnedFd),
    /// Init finished every step before exec (reply with [`Session::go`]).
    Created,
}

pub struct Session<'a> {
    pub ch: &'a Channel,
    pub plan: &'a Plan,
    pub cgroup: &'a Cgroup,
    pub stage1: i32,
}

impl Session<'_> {
    /// Wait for the next event; runtime steps are done on the way.
    pub fn next(&self) -> Result<Event> {
        loop {
            match self.ch.recv().map_err(|e| anyhow!("container init: {e}"))? {
                Msg::Stage1Ready { .. } => {
                    self.runtime_steps()?;
                    self.go()?;
                }
                Msg::InitPid { pid } => return Ok(Event::InitPid(pid)),
                Msg::SeccompFd => return Ok(Event::SeccompFd(sys::recv_fd(self.ch.raw())?.1)),
                Msg::Created => return Ok(Event::Created),
                Msg::Error { msg } => bail!("{msg}"),
                Msg::Go => bail!("unexpected message from container init"),
            }
        }
    }

    pub fn go(&self) -> Result<()> {
        Ok(self.ch.send(&Msg::Go)?)
    }

    /// The run of runtime steps that sits between stage 1's own.
    fn runtime_steps(&self) -> Result<()> {
        let after_spawn = self
            .plan
            .steps
            .iter()
            .skip_while(|s| !matches!(s, Step::SpawnStage1))
            .skip(1);
        for step in after_spawn
            .skip_while(|s| s.actor() != Actor::Runtime)
            .take_while(|s| s.actor() == Actor::Runtime)
        {
            match step {
                Step::JoinCgroup => self.cgroup.add_pid(self.stage1)?,
                Step::WriteIdMaps { uid, gid } => write_id_maps(self.stage1, uid, gid)?,
                _ => {}
            }
        }
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
