//! `exec`: runc's flags. Without `--process`, the container's own process
//! config is the base and the flags adjust it (as runc does).

use crate::container::exec::{self, ExecOpts};
use crate::container::Container;
use crate::spec::Process;
use crate::state::Root;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A process.json (runtime-spec `process` object) to run instead of COMMAND.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY (sent to --console-socket, or proxied by berth in the foreground).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the process (runc 1.2's
    /// message "setns" with the fd in SCM_RIGHTS).
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gid, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_X), repeatable.
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Return once the process runs.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Pass N extra fds (3 … 3+N-1).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Exec even if the container is paused.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Accepted for runc compatibility (SELinux is not supported).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility (AppArmor is not supported).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Join a sub-cgroup of the container's: PATH (every hierarchy) or
    /// CTRL[,CTRL]:PATH (cgroup v1 hierarchies), repeatable.
    #[arg(long)]
    pub cgroup: Vec<String>,
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn process(root: &Root, a: &ExecArgs) -> Result<Process> {
    if let Some(path) = &a.process {
        let data = std::fs::read(path).with_context(|| format!("--process {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_slice(&data);
        let p: Process = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner()))?;
        if p.args.is_empty() {
            bail!("{}: args: must not be empty", path.display());
        }
        return Ok(p);
    }
    if a.command.is_empty() {
        bail!("exec: a COMMAND or --process is required");
    }
    let c = Container::load(root, &a.id)?;
    let mut p = exec::container_spec(&c)?.process.unwrap_or_default();
    p.args = a.command.clone();
    p.terminal = a.tty;
    p.env.extend(a.env.iter().cloned());
    if let Some(cwd) = &a.cwd {
        p.cwd = cwd.clone();
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        p.user.uid = uid
            .parse()
            .with_context(|| format!("--user {u}: bad uid"))?;
        if !gid.is_empty() {
            p.user.gid = gid
                .parse()
                .with_context(|| format!("--user {u}: bad gid"))?;
        }
    }
    p.user
        .additional_gids
        .extend(a.additional_gids.iter().copied());
    if !a.cap.is_empty() {
        let caps = p.capabilities.get_or_insert_with(Default::default);
        for cap in &a.cap {
            if cap.parse::<caps::Capability>().is_err() {
                bail!("--cap: unknown capability {cap:?}");
            }
            for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
                if !set.contains(cap) {
                    set.push(cap.clone());
                }
            }
        }
    }
    if a.no_new_privs {
        p.no_new_privileges = true;
    }
    Ok(p)
}

pub fn run(root: &Root, a: ExecArgs) -> Result<i32> {
    let p = process(root, &a)?;
    if p.terminal && a.console_socket.is_none() && a.detach {
        // runc's wording: only a foreground exec can hold the pty itself.
        bail!("--tty: cannot allocate tty if runc will detach without setting console socket (pass --console-socket)");
    }
    exec::exec(
        root,
        &ExecOpts {
            id: a.id.clone(),
            process: p,
            console_socket: a.console_socket.clone(),
            pidfd_socket: a.pidfd_socket.clone(),
            pid_file: a.pid_file.clone(),
            detach: a.detach,
            preserve_fds: a.preserve_fds,
            ignore_paused: a.ignore_paused,
            sub_cgroups: a.cgroup.clone(),
        },
    )
}
