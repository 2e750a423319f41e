//! `delete`: stop what is left of a container and remove every trace.
//! [`destroy`] is also how a failed `create` unwinds.

use super::Container;
use crate::state::{Root, Status};
use anyhow::{bail, Result};
use std::time::{Duration, Instant};

pub fn delete(root: &Root, id: &str, force: bool) -> Result<()> {
    let mut c = match Container::load_locked(root, id) {
        Ok(c) => c,
        // `delete --force` of a missing container succeeds, as with runc.
        Err(e) if force && crate::error::is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let status = c.status();
    // runtime-spec (runtime.md §delete): deleting a container that is not
    // stopped MUST fail — `created` included. runc and crun kill and remove a
    // created container here; berth follows the spec (docs/conformance.md),
    // `--force` still removes it.
    if !force && status != Status::Stopped {
        bail!(
            "cannot delete container {id} that is not stopped: {}",
            status.as_str()
        );
    }
    let hooks = c.state.record.hooks.clone().unwrap_or_default();
    let state_json = c.state.oci_json(&c.dir);
    destroy(&mut c)?;
    // Poststop hooks run after the container is gone; a failing one is
    // logged, not fatal (runtime-spec: "the runtime MUST log a warning").
    crate::hooks::run_warn(crate::hooks::Kind::Poststop, &hooks.poststop, &state_json);
    Ok(())
}

/// Kill every process, remove the cgroup, remove the state dir. Idempotent:
/// each piece that is already gone is skipped, so it can finish the work of
/// a `delete` or `create` that was killed half-way.
pub fn destroy(c: &mut Container) -> Result<()> {
    let rec = c.state.record.clone();
    let cgroup = c.cgroup()?;
    if let Some(cg) = &cgroup {
        // A frozen process cannot die: thaw first.
        let _ = cg.thaw();
    }
    for p in rec.init.iter().chain(rec.helpers.iter()) {
        if p.alive() {
            // SAFETY: kill(2) on a pid whose start time we just checked.
            unsafe { libc::kill(p.pid, libc::SIGKILL) };
        }
    }
    // Without its own pid namespace, init's death does not take the other
    // processes with it: kill everything in the cgroup and its sub-cgroups
    // (frozen while listing, so nothing forks past us), until it is empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Some(cg) = &cgroup {
        loop {
            let pids = cg.pids().unwrap_or_default();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            let _ = cg.kill_all(libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for p in rec.init.iter().chain(rec.helpers.iter()) {
        // Reap it if it is our child (`run`); otherwise wait until it is gone.
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(p.pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        while p.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(p.pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
    }
    // The leaves `destroy` just removed are not tried again below, nor are
    // the `/berth` parents the record already names (each retry is an
    // ENOENT syscall per hierarchy).
    let mut removed = Vec::new();
    if let Some(cg) = &cgroup {
        cg.destroy()?;
        removed = cg.leaves();
    }
    for d in rec.cgroup_dirs.iter().rev() {
        if !removed.contains(d) {
            let _ = std::fs::remove_dir(d);
        }
    }
    if let Some(cg) = &cgroup {
        remove_berth_parent(cg, &rec.cgroup_dirs);
    }
    match std::fs::remove_dir_all(&c.dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("removing {}: {e}", c.dir.display())),
    }
}

/// `/berth` is berth's own parent for default cgroup paths. Only the
/// container that created it recorded it, and its rmdir fails while others
/// still live there; so every delete tries again, and the last one out
/// removes it (rmdir only succeeds on an empty cgroup).
fn remove_berth_parent(cg: &crate::cgroups::Cgroup, tried: &[std::path::PathBuf]) {
    if !cg.path.starts_with("/berth/") {
        return;
    }
    for mount in cg.layout.mounts() {
        let parent = mount.join("berth");
        if !tried.contains(&parent) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
