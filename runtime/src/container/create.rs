//! `create`: the runtime side of a container start.
//!
//! Order matters for crash safety: the state directory is claimed and
//! written first, each resource is recorded in it *before* it is made, and
//! any failure unwinds through [`super::delete::destroy`] — the same code
//! `delete --force` runs — so a failed create leaves nothing behind.

use super::executor::Executor;
use super::session::{Event, Session};
use super::Container;
use crate::cgroups;
use crate::init;
use crate::plan::{Options, Plan};
use crate::spec::{NsKind, Spec, SpecError};
use crate::state::{Proc, Root, State, Status};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// `create` flags.
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// `--pidfd-socket`: receives a pidfd of init (see [`super::pidfd`]).
    pub pidfd_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

/// Everything decided before the first host resource exists.
pub struct Prepared {
    pub bundle: PathBuf,
    pub spec: Spec,
    pub plan: Plan,
    pub cgroup: cgroups::Cgroup,
}

/// Read the bundle and plan the container: all checks that need no host
/// changes happen here, so bad input never leaves a trace.
pub fn prepare(root: &Root, o: &CreateOpts) -> Result<Prepared> {
    crate::state::validate_id(&o.id)?;
    let bundle = std::fs::canonicalize(&o.bundle)
        .with_context(|| format!("--bundle {}", o.bundle.display()))?;
    let spec = Spec::load(&bundle)?;
    let linux = spec.linux();
    for (i, ns) in linux.namespaces.iter().enumerate() {
        if let (Some(kind), Some(path)) = (NsKind::parse(&ns.typ), &ns.path) {
            init::namespaces::check_ns_path(kind, path).map_err(|e| {
                SpecError::new(format!("linux.namespaces[{i}].path"), e.to_string())
            })?;
        }
    }
    // A network namespace joined by path may be the host's own: its net.*
    // sysctls are the host's then (runc refuses the same).
    match crate::spec::sysctl_net_path_is_host(&spec) {
        Ok(None) => {}
        Ok(Some(key)) => {
            return Err(SpecError::new(
                crate::spec::sysctl_field(&key),
                format!(
                    "sysctl {key:?} not allowed in host network namespace: \
                     linux.namespaces joins berth's own network namespace"
                ),
            )
            .into())
        }
        Err(e) => {
            return Err(
                SpecError::new("linux.namespaces", format!("network namespace path: {e}")).into(),
            )
        }
    }
    let rootfs_rel = spec
        .root
        .as_ref()
        .map(|r| r.path.clone())
        .unwrap_or_default();
    let rootfs = if rootfs_rel.is_absolute() {
        rootfs_rel
    } else {
        bundle.join(rootfs_rel)
    };
    if !rootfs.is_dir() {
        return Err(SpecError::new(
            "root.path",
            format!("{}: not a directory or does not exist", rootfs.display()),
        )
        .into());
    }
    let cgroup_path = cgroups::resolve_path(linux.cgroups_path.as_deref(), &o.id)?;
    let layout = cgroups::detect()?;
    let cgroup = cgroups::Cgroup::new(layout, &cgroup_path);
    if let Some(r) = &linux.resources {
        cgroup.check(r)?;
    }
    let process = spec.process.clone().unwrap_or_default();
    let program = super::compile_seccomp(root, &spec, &process)?;
    let opts = Options {
        id: o.id.clone(),
        bundle: bundle.clone(),
        state_dir: root.container_dir(&o.id),
        no_pivot: o.no_pivot,
        console_socket: o.console_socket.is_some(),
        preserve_fds: o.preserve_fds,
        no_new_keyring: o.no_new_keyring,
        cgroup_path,
        cgroup_binds: cgroup.container_mounts(),
        cgroup_symlinks: cgroup.container_symlinks(),
    };
    let plan = Plan::new(&spec, &opts, program)?;
    if root.container_dir(&o.id).exists() {
        return Err(crate::error::Error::AlreadyExists(o.id.clone()).into());
    }
    Ok(Prepared {
        bundle,
        spec,
        plan,
        cgroup,
    })
}

/// Create the container; returns its init pid. Init waits on exec.fifo.
pub fn create(root: &Root, o: &CreateOpts) -> Result<Container> {
    let p = prepare(root, o)?;
    check_cgroup_unused(&p.cgroup)?;
    let mut state = State::new(&o.id, &p.bundle, &p.plan.rootfs);
    state.annotations = p.spec.annotations.clone();
    state.record.cgroup_path = Some(p.cgroup.path.clone());
    state.record.cgroup_dirs = p.cgroup.dirs();
    state.record.cgroup = Some(p.cgroup.clone());
    state.record.own_pidns = p.plan.own_pidns;
    state.record.hooks = p.spec.hooks.clone();
    state.record.config = crate::state::config_json(&p.spec).ok();
    let pidfd_socket = o
        .pidfd_socket
        .as_deref()
        .map(super::pidfd::connect)
        .transpose()?;
    let mut ex = Executor::new(&p.plan, &p.cgroup);
    ex.claim = Some((root, state));
    ex.resources = effective_resources(&p.spec);
    ex.console_socket = o.console_socket.clone();
    let host = ex.run_host_phase();
    // Nothing to undo before the state dir is claimed.
    let Some(mut c) = ex.container.take() else {
        host?;
        bail!("plan: no state dir was claimed");
    };
    let result = host.and_then(|()| drive(&mut c, o, ex, pidfd_socket.as_ref()));
    match result {
        Ok(()) => Ok(c),
        Err(e) => {
            let cleanup = super::delete::destroy(&mut c);
            match cleanup {
                Ok(()) => Err(e),
                Err(ce) => Err(e.context(format!("(cleanup also failed: {ce:#})"))),
            }
        }
    }
}

/// runc's checks of a pre-existing cgroup, before anything is claimed: a
/// frozen one is refused (the container's processes would hang in it), a
/// non-empty one is joined with a warning (runc 1.1's words, which its
/// suite and clients match).
fn check_cgroup_unused(cg: &cgroups::Cgroup) -> Result<()> {
    let (pids, frozen) = cg.preexisting()?;
    if let Some(dir) = frozen {
        bail!(
            "linux.cgroupsPath: container's cgroup unexpectedly frozen ({} is frozen; thaw it or use another cgroup)",
            dir.display()
        );
    }
    if !pids.is_empty() {
        crate::log::warn(&format!(
            "container's cgroup is not empty: {} process(es) found",
            pids.len()
        ));
    }
    Ok(())
}

/// The devices every container may use whatever `resources.devices`
/// says, appended after the spec's rules as runc's specconv does
/// (`AllowedDevices`): mknod of anything, the default nodes, ptys, tun.
/// The last field is the node's path, for the default nodes.
type AllowedDevice = (
    &'static str,
    Option<i64>,
    Option<i64>,
    &'static str,
    &'static str,
);
const ALWAYS_ALLOWED: [AllowedDevice; 11] = [
    ("c", None, None, "m", ""),
    ("b", None, None, "m", ""),
    ("c", Some(1), Some(3), "rwm", "/dev/null"),
    ("c", Some(1), Some(8), "rwm", "/dev/random"),
    ("c", Some(1), Some(7), "rwm", "/dev/full"),
    ("c", Some(5), Some(0), "rwm", "/dev/tty"),
    ("c", Some(1), Some(5), "rwm", "/dev/zero"),
    ("c", Some(1), Some(9), "rwm", "/dev/urandom"),
    ("c", Some(136), None, "rwm", ""),     // /dev/pts/*
    ("c", Some(5), Some(2), "rwm", ""),    // /dev/ptmx
    ("c", Some(10), Some(200), "rwm", ""), // /dev/net/tun
];

/// `linux.resources` as the cgroup will enforce it: the spec's device
/// rules, then the always-allowed list. As in runc, `linux.devices`
/// entries get *no* rule of their own (the node exists, access is what
/// `resources.devices` says: runc's dev.bats "device cgroup deny"), and a
/// default node the spec lists itself loses its default rule
/// (`createDevices`: "the spec one takes priority").
pub fn effective_resources(spec: &Spec) -> Option<crate::spec::Resources> {
    let linux = spec.linux();
    let mut r = linux.resources.clone()?;
    if r.devices.is_empty() {
        return Some(r);
    }
    for (typ, major, minor, access, path) in ALWAYS_ALLOWED {
        if !path.is_empty() && linux.devices.iter().any(|d| d.path == Path::new(path)) {
            continue;
        }
        r.devices.push(crate::spec::DeviceRule {
            allow: true,
            typ: Some(typ.to_string()),
            major,
            minor,
            access: Some(access.to_string()),
        });
    }
    Some(r)
}

/// Answer the children's messages until init reports `created`, then reap
/// stage 1.
fn drive(
    c: &mut Container,
    o: &CreateOpts,
    ex: Executor,
    pidfd_socket: Option<&OwnedFd>,
) -> Result<()> {
    let stage1 = ex.stage1;
    let session = Session::new(ex)?;
    let result = answer(c, o, &session, pidfd_socket);
    // Reap stage 1 whatever happened (it exits once init is forked, or
    // with the runtime's end of the socket, which `session` holds).
    drop(session);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(stage1), None);
    c.state.record.helpers.clear();
    // No save here: `answer` only returns Ok after `Created`, whose save
    // already recorded the state as it is now (helpers cleared).
    result
}

fn answer(
    c: &mut Container,
    o: &CreateOpts,
    session: &Session,
    pidfd_socket: Option<&OwnedFd>,
) -> Result<()> {
    loop {
        match session.next()? {
            Event::InitPid(pid) => {
                let proc = Proc::of(pid)
                    .ok_or_else(|| anyhow!("container init (pid {pid}) exited during create"))?;
                c.state.record.init = Some(proc);
                c.state.pid = pid;
                c.state.save(&c.dir)?;
                let mut st = c.state.oci_json(&c.dir);
                st["status"] = "creating".into();
                st["pid"] = pid.into();
                session.set_state(st);
            }
            Event::SeccompFd(fd) => {
                seccomp_agent(c, session.plan(), &fd)?;
                session.go()?;
            }
            Event::Created => {
                c.state.status = Status::Created;
                c.state.record.helpers.clear();
                c.state.save(&c.dir)?;
                if let Some(pf) = &o.pid_file {
                    write_pid_file(pf, c.state.pid)?;
                }
                if let (Some(sock), Some(path)) = (pidfd_socket, &o.pidfd_socket) {
                    super::pidfd::send(sock, path, c.state.pid, "standard")?;
                }
                return session.go();
            }
        }
    }
}

/// The pid file: decimal, no newline (go-runc parses it with Atoi), written
/// atomically so a client polling for it never reads it half-written.
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string())
        .with_context(|| format!("--pid-file {}", path.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("--pid-file {}", path.display()))?;
    Ok(())
}

/// Hand the seccomp listener to the agent at `listenerPath`: one container
/// process state JSON with the fd attached (runtime-spec §seccomp).
fn seccomp_agent(c: &Container, plan: &Plan, fd: &OwnedFd) -> Result<()> {
    let Some(prog) = &plan.seccomp else {
        return Ok(());
    };
    let Some(path) = &prog.listener_path else {
        return Ok(());
    };
    let mut state = c.state.oci_json(&c.dir);
    state["status"] = "creating".into();
    state["pid"] = c.state.pid.into();
    let msg = crate::seccomp::notify::process_state(
        c.state.pid,
        prog.listener_metadata.as_deref(),
        state,
    );
    crate::seccomp::notify::send_to_agent(path, fd.as_raw_fd(), &msg).map_err(|e| anyhow!(e))
}

/// Is `fd` open by the caller? (Used to check --preserve-fds; berth's own
/// log fd, opened before the check, does not count.)
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only queries.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 && !crate::log::owns_fd(fd) }
}
