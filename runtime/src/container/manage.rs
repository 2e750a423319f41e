//! Operations on a running container's cgroup: pause, resume, ps, update,
//! events. Each loads the recorded cgroup path and acts on it.

use super::Container;
use crate::cgroups::Cgroup;
use crate::spec::Resources;
use crate::state::{Root, Status};
use anyhow::{anyhow, bail, Result};

fn cgroup_of(c: &Container) -> Result<Cgroup> {
    c.cgroup()?
        .ok_or_else(|| anyhow!("container {} has no cgroup", c.state.id))
}

/// Freeze every process (v1 freezer, v2 cgroup.freeze).
pub fn pause(root: &Root, id: &str) -> Result<()> {
    let c = Container::load_locked(root, id)?;
    match c.status() {
        Status::Running => {}
        Status::Paused => bail!("container {id} is already paused"),
        other => bail!("container {id} is not running: {}", other.as_str()),
    }
    cgroup_of(&c)?.freeze()
}

pub fn resume(root: &Root, id: &str) -> Result<()> {
    let c = Container::load_locked(root, id)?;
    if c.status() != Status::Paused {
        bail!("container {id} is not paused");
    }
    cgroup_of(&c)?.thaw()
}

/// Host pids of every process in the container.
pub fn pids(root: &Root, id: &str) -> Result<Vec<i32>> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        return Ok(Vec::new());
    }
    cgroup_of(&c)?.pids()
}

/// Change the limits of a running container.
pub fn update(root: &Root, id: &str, r: &Resources) -> Result<()> {
    let mut c = Container::load_locked(root, id)?;
    if c.status() == Status::Stopped {
        bail!("container {id} is not running");
    }
    cgroup_of(&c)?.update(r)?;
    // Keep the recorded config in step, as runc does, so `exec` and
    // later reads see the new limits.
    if let Some(cfg) = c.state.record.config.as_mut() {
        let mut spec: crate::spec::Spec = serde_json::from_str(cfg.get())?;
        let linux = spec.linux.get_or_insert_with(Default::default);
        merge_resources(linux.resources.get_or_insert_with(Default::default), r);
        *cfg = crate::state::config_json(&spec)?;
        c.state.save(&c.dir)?;
    }
    Ok(())
}

fn merge_resources(into: &mut Resources, r: &Resources) {
    if r.memory.is_some() {
        into.memory = r.memory.clone();
    }
    if r.cpu.is_some() {
        into.cpu = r.cpu.clone();
    }
    if r.pids.is_some() {
        into.pids = r.pids.clone();
    }
    if r.block_io.is_some() {
        into.block_io = r.block_io.clone();
    }
    if !r.unified.is_empty() {
        into.unified = r.unified.clone();
    }
}

/// One line of `events`: runc's `types.Event`, keys in runc's order
/// (`{"type":"stats","id":…,"data":…}`, `{"type":"oom","id":…}`):
/// runc's suite and some clients match the text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&line)
    }
}

/// runc's `events --stats` object: `{"type":"stats","id":…,"data":…}`.
pub fn stats(root: &Root, id: &str) -> Result<Event> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        bail!("container {id} is not running");
    }
    let data = serde_json::to_value(cgroup_of(&c)?.stats()?)?;
    Ok(Event {
        kind: "stats",
        id: id.to_string(),
        data: Some(data),
    })
}

/// Is the container still there and not stopped?
pub fn alive(root: &Root, id: &str) -> bool {
    Container::load(root, id)
        .map(|c| c.status() != Status::Stopped)
        .unwrap_or(false)
}

/// Watch for OOM kills in the container's cgroup (v1 eventfd, v2 memory.events).
pub fn oom_watcher(root: &Root, id: &str) -> Result<crate::cgroups::OomWatcher> {
    let c = Container::load(root, id)?;
    crate::cgroups::OomWatcher::new(&cgroup_of(&c)?)
}
