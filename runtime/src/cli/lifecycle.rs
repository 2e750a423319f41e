//! create, start, run, kill, delete, state: runc's flags, runc's exit codes.

use crate::container::{self, create::CreateOpts, Container};
use crate::state::Root;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct IdArg {
    /// The container id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid here (decimal, no newline).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is set.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of init (runc 1.2's message
    /// "standard" with the fd in SCM_RIGHTS).
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (ramdisk roots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3 … 3+N-1) into the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return after start instead of waiting for the container.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Do not delete the container after it exits (it stays "stopped",
    /// cgroup included, until `delete`).
    #[arg(long = "keep")]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal every process in the container (runc: deprecated, still used by clients).
    #[arg(short = 'a', long)]
    pub all: bool,
    pub id: String,
    /// Signal number or name (9, KILL, SIGKILL). Default SIGTERM.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first; succeed if it does not exist.
    #[arg(short = 'f', long)]
    pub force: bool,
    pub id: String,
}

fn opts(a: &CreateArgs) -> Result<CreateOpts> {
    if a.preserve_fds < 0 {
        anyhow::bail!("--preserve-fds: must not be negative");
    }
    for fd in 3..3 + a.preserve_fds {
        if !container::create::fd_is_open(fd) {
            anyhow::bail!("--preserve-fds {}: fd {fd} is not open", a.preserve_fds);
        }
    }
    Ok(CreateOpts {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        pidfd_socket: a.pidfd_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    })
}

pub fn create(root: &Root, a: CreateArgs) -> Result<i32> {
    container::create::create(root, &opts(&a)?)?;
    Ok(0)
}

pub fn start(root: &Root, a: IdArg) -> Result<i32> {
    container::start::start(root, &a.id)?;
    Ok(0)
}

pub fn run(root: &Root, a: RunArgs) -> Result<i32> {
    let mut o = opts(&a.create)?;
    if !a.detach {
        // Block signals now, not after start: one that arrives while the
        // container is being made is then forwarded instead of killing
        // berth. Init unblocks everything before execve.
        container::wait::block_forwarded_signals()?;
        // Until the container runs, SIGTERM/SIGINT/... abort the create
        // instead (cleaned up, exit 128+N); later ones are forwarded.
        container::wait::watch_for_abort()?;
    }
    // A terminal without --console-socket: berth holds the pty itself.
    // Only a foreground run without --console-socket may need berth's own
    // pty; only then read config.json here (create reads it anyway).
    let wants_tty = || {
        crate::spec::Spec::load(&o.bundle)
            .ok()
            .and_then(|s| s.process)
            .is_some_and(|p| p.terminal)
    };
    let console = if o.console_socket.is_none() && !a.detach && wants_tty() {
        let server = container::console::ConsoleServer::new(&o.id)?;
        o.console_socket = Some(server.path());
        Some(server)
    } else {
        None
    };
    let mut c = match container::create::create(root, &o) {
        Ok(c) => c,
        Err(e) if interrupted(&e).is_some() => return aborted(e),
        // A program that cannot be run: 127 or 126, chosen from the kind
        // init reported (see crate::error::start_exit_code).
        Err(e) => return fail(e, crate::error::start_exit_code),
    };
    let pid = c.state.pid;
    c.lock = None;
    if let Err(e) = container::start::start(root, &o.id) {
        // runc's --keep keeps a container whose start failed too.
        if !a.keep {
            let _ = container::delete::destroy(&mut c);
        }
        if interrupted(&e).is_some() {
            return aborted(e);
        }
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let proxy = match &console {
        Some(server) => Some(container::console::proxy(server.master()?)?),
        None => None,
    };
    let code = container::wait::wait_forwarding(pid)?;
    if let Some(p) = proxy {
        p.finish();
    }
    // Like runc, a foreground run removes the container (poststop hooks
    // included) unless --keep asks to leave it stopped for inspection.
    if !a.keep {
        container::delete::delete(root, &o.id, true)?;
    }
    Ok(code)
}

fn interrupted(e: &anyhow::Error) -> Option<container::wait::Interrupted> {
    e.chain()
        .find_map(|c| c.downcast_ref::<container::wait::Interrupted>())
        .map(|i| container::wait::Interrupted(i.0))
        .or_else(container::wait::was_interrupted)
}

/// A foreground run stopped by a signal before its container ran (already
/// cleaned up): exit like a process killed by that signal.
fn aborted(e: anyhow::Error) -> Result<i32> {
    let code = 128 + interrupted(&e).map_or(0, |i| i.0 as i32);
    super::report(&e);
    Ok(code)
}

/// Report `e` like [`super::dispatch`] does, with the exit code `code` picks.
fn fail(e: anyhow::Error, code: fn(&anyhow::Error) -> i32) -> Result<i32> {
    let code = code(&e);
    super::report(&e);
    Ok(code)
}

pub fn kill(root: &Root, a: KillArgs) -> Result<i32> {
    container::kill::kill(root, &a.id, &a.signal, a.all)?;
    Ok(0)
}

pub fn delete(root: &Root, a: DeleteArgs) -> Result<i32> {
    container::delete::delete(root, &a.id, a.force)?;
    Ok(0)
}

pub fn state(root: &Root, a: IdArg) -> Result<i32> {
    let c = Container::load(root, &a.id)?;
    super::out(format_args!(
        "{}",
        serde_json::to_string_pretty(&c.state.runc_state(&c.dir))?
    ));
    Ok(0)
}
