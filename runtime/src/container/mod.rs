//! The host side of a container's life: one file per operation.

pub mod console;
pub mod create;
pub mod delete;
pub mod exec;
pub mod executor;
pub mod kill;
pub mod manage;
pub mod mount_sources;
pub mod pidfd;
pub mod session;
pub mod start;
pub mod wait;

use crate::state::{Lock, Root, State, Status};
use anyhow::Result;
use std::path::PathBuf;

/// A container as the runtime sees it: its state dir and record.
pub struct Container {
    pub dir: PathBuf,
    pub state: State,
    /// Held while a mutating command runs.
    pub lock: Option<Lock>,
}

impl Container {
    /// Load an existing container (without locking).
    pub fn load(root: &Root, id: &str) -> Result<Container> {
        let state = root.load(id)?;
        Ok(Container {
            dir: root.container_dir(id),
            state,
            lock: None,
        })
    }

    /// Load and take the container's lock; re-read state under it.
    pub fn load_locked(root: &Root, id: &str) -> Result<Container> {
        root.load(id)?;
        let dir = root.container_dir(id);
        let lock = Lock::take(&dir)?;
        let state = root.load(id)?;
        Ok(Container {
            dir,
            state,
            lock: Some(lock),
        })
    }

    pub fn status(&self) -> Status {
        self.state.status(&self.dir)
    }

    /// The container's cgroup, as recorded at create.
    pub fn cgroup(&self) -> Result<Option<crate::cgroups::Cgroup>> {
        let rec = &self.state.record;
        if let Some(cg) = &rec.cgroup {
            return Ok(Some(cg.clone()));
        }
        // Killed before the cgroup was recorded in full: the path is enough.
        match &rec.cgroup_path {
            Some(path) => Ok(Some(crate::cgroups::Cgroup::new(
                crate::cgroups::detect()?,
                path,
            ))),
            None => Ok(None),
        }
    }
}

/// Compile the container's seccomp profile for a process of it (in the
/// runtime, before any fork — the child only loads the bytes).
pub fn compile_seccomp(
    root: &crate::state::Root,
    spec: &crate::spec::Spec,
    process: &crate::spec::Process,
) -> Result<Option<crate::seccomp::Program>> {
    let linux = spec.linux();
    let Some(profile) = &linux.seccomp else {
        return Ok(None);
    };
    for w in crate::seccomp::create_warnings(profile) {
        crate::log::warn(&w);
    }
    let ctx = crate::seccomp::Context {
        caps: process
            .capabilities
            .as_ref()
            .map(|c| c.bounding.clone())
            .unwrap_or_default(),
        own_userns: linux.namespaces.iter().any(|n| n.typ == "user"),
        annotations: spec.annotations.clone(),
        cache_dir: Some(seccomp_cache_dir(root)),
        ..Default::default()
    };
    Ok(crate::seccomp::compile(profile, &ctx)?)
}

/// Compiled filters are cached by profile hash beside the state root (not
/// inside it, which holds only containers): `/run/berth` → `/run/berth-cache/seccomp`.
pub fn seccomp_cache_dir(root: &crate::state::Root) -> PathBuf {
    let name = root
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "berth".into());
    root.dir
        .with_file_name(format!("{name}-cache"))
        .join("seccomp")
}
