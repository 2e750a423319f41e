//! `exec`: run another process inside a running container.
//!
//! The same machinery as `create`, with a different plan
//! ([`Plan::for_exec`]): stage 1 joins the init's namespaces, the runtime
//! puts it in the container's cgroup, and the forked process goes through
//! the container's seccomp, capabilities, user and no_new_privs steps.

use super::executor::Executor;
use super::session::{Event, Session};
use super::Container;
use crate::plan::{Options, Plan};
use crate::seccomp;
use crate::spec::{Process, Spec};
use crate::state::{Root, Status};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub id: String,
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    /// `--pidfd-socket`: receives a pidfd of the process (see [`super::pidfd`]).
    pub pidfd_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub detach: bool,
    pub preserve_fds: i32,
    pub ignore_paused: bool,
    /// `--cgroup` arguments: sub-cgroups to join (see
    /// [`crate::cgroups::Cgroup::with_sub_cgroups`]).
    pub sub_cgroups: Vec<String>,
}

/// The container's config as recorded at create.
pub fn container_spec(c: &Container) -> Result<Spec> {
    let raw = c
        .state
        .record
        .config
        .as_ref()
        .ok_or_else(|| anyhow!("container {} has no recorded config", c.state.id))?;
    Ok(serde_json::from_str(raw.get())?)
}

/// Run the process; returns its exit status (0 at once with `detach`).
pub fn exec(root: &Root, o: &ExecOpts) -> Result<i32> {
    let c = Container::load(root, &o.id)?;
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused if o.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        Status::Stopped | Status::Creating => bail!("cannot exec in a stopped container"),
    }
    let init = c
        .state
        .record
        .init
        .ok_or_else(|| anyhow!("container has no init process"))?;
    let spec = container_spec(&c)?;
    let program = super::compile_seccomp(root, &spec, &o.process)?;
    // `exec -t` in the foreground without --console-socket: like runc, berth
    // receives the pty master itself and copies it to its own stdio.
    let server = if o.process.terminal && o.console_socket.is_none() && !o.detach {
        Some(super::console::ConsoleServer::new(&o.id)?)
    } else {
        None
    };
    let console_path = o
        .console_socket
        .clone()
        .or_else(|| server.as_ref().map(|s| s.path()));
    let opts = Options {
        id: o.id.clone(),
        console_socket: console_path.is_some(),
        preserve_fds: o.preserve_fds,
        ..Default::default()
    };
    let plan = Plan::for_exec(&spec, &o.process, init.pid, &opts, program)?;
    let cgroup = c
        .cgroup()?
        .ok_or_else(|| anyhow!("container {} has no cgroup", o.id))?
        .with_sub_cgroups(&o.sub_cgroups)?;

    let pidfd_socket = o
        .pidfd_socket
        .as_deref()
        .map(super::pidfd::connect)
        .transpose()?;
    let mut ex = Executor::new(&plan, &cgroup);
    ex.console_socket = console_path;
    ex.exec_init = Some(init.pid);
    ex.run_host_phase()?;
    let stage1 = ex.stage1;
    let mut pid = 0;
    let result = (|| -> Result<()> {
        let session = Session::new(ex)?;
        loop {
            match session.next()? {
                Event::InitPid(p) => pid = p,
                // Each process loads its own filter, so the agent gets
                // this listener too (as runc does for exec).
                Event::SeccompFd(fd) => {
                    if let Some(prog) = plan.seccomp.as_ref().filter(|p| p.listener_path.is_some())
                    {
                        let mut state = c.state.oci_json(&c.dir);
                        state["status"] = "running".into();
                        let msg = seccomp::notify::process_state(
                            pid,
                            prog.listener_metadata.as_deref(),
                            state,
                        );
                        let path = prog
                            .listener_path
                            .as_deref()
                            .unwrap_or(std::path::Path::new(""));
                        seccomp::notify::send_to_agent(path, fd.as_raw_fd(), &msg)
                            .map_err(|e| anyhow!(e))?;
                    }
                    session.go()?;
                }
                Event::Created => {
                    if let Some(pf) = &o.pid_file {
                        super::create::write_pid_file(pf, pid)?;
                    }
                    if let (Some(sock), Some(path)) = (&pidfd_socket, &o.pidfd_socket) {
                        super::pidfd::send(sock, path, pid, "setns")?;
                    }
                    session.go()?;
                    // Like runc: return once the process has exec'd.
                    session.wait_exec();
                    // Only init and the process it became hold the console
                    // connection now: dropping the session closes ours, so a
                    // console server sees EOF once the process has its pty.
                    return Ok(());
                }
            }
        }
    })();
    if result.is_err() {
        // Stage 1 may still wait for our answer (e.g. joining the cgroup
        // failed): it would wait forever, and so would we in waitpid.
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(stage1, libc::SIGKILL) };
    }
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(stage1), None);
    if let Err(e) = result {
        if pid > 0 {
            // SAFETY: kill(2) on the process we just forked, which failed to start.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        return Err(e).context("exec failed");
    }
    if o.detach {
        return Ok(0);
    }
    let proxy = match &server {
        Some(s) => Some(super::console::proxy(s.master()?)?),
        None => None,
    };
    let code = super::wait::wait_forwarding(pid);
    if let Some(p) = proxy {
        p.finish();
    }
    code
}
