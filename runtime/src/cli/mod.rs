//! runc's command line, as clap structs (one file per group of verbs), and
//! the dispatcher that maps each to a library call and an exit code.

mod exec;
mod info;
mod lifecycle;
mod manage;

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// berth — a small, fast OCI container runtime (a drop-in for runc).
#[derive(Debug, Parser)]
#[command(name = "berth", version = None, disable_version_flag = true)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/berth")]
    pub root: PathBuf,
    /// Append log lines to this file (created at once).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log line format: text or json (runc's `{"level","msg","time"}`).
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Log debug lines too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (not available: berth uses cgroupfs).
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (true|false|auto).
    #[arg(long)]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility; checkpointing is not supported.
    #[arg(long)]
    pub criu: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    Create(Box<lifecycle::CreateArgs>),
    Start(lifecycle::IdArg),
    Run(Box<lifecycle::RunArgs>),
    Exec(Box<exec::ExecArgs>),
    Kill(lifecycle::KillArgs),
    Delete(lifecycle::DeleteArgs),
    State(lifecycle::IdArg),
    List(info::ListArgs),
    Spec(info::SpecArgs),
    Features,
    Ps(manage::PsArgs),
    Pause(lifecycle::IdArg),
    Resume(lifecycle::IdArg),
    Update(Box<manage::UpdateArgs>),
    Events(manage::EventsArgs),
    /// Not supported (no CRIU): exits 1 with a clear message.
    Checkpoint(manage::CheckpointArgs),
    /// Not supported (no CRIU): exits 1 with a clear message.
    Restore(manage::CheckpointArgs),
    Plan(info::PlanArgs),
    /// Compile, explain and lint seccomp profiles.
    #[command(subcommand)]
    Seccomp(crate::seccomp::cli::SeccompCmd),
}

/// Print a line on stdout; a reader that went away (`berth list | head`)
/// ends berth quietly instead of a panic.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    if writeln!(std::io::stdout(), "{line}").is_err() {
        std::process::exit(0);
    }
}

/// Flags Go programs spell with one dash (`-no-subreaper`); clap wants two.
const SINGLE_DASH_LONG: [&str; 4] = ["-no-subreaper", "-bundle", "-pid-file", "-console-socket"];

/// Rewrite argv so runc's spellings all parse.
pub fn normalize_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    args.map(|a| {
        let s = a.to_string_lossy();
        let flag = s.split('=').next().unwrap_or("");
        if SINGLE_DASH_LONG.contains(&flag) {
            OsString::from(format!("-{s}"))
        } else {
            a
        }
    })
    .collect()
}

/// Run the command; returns the process exit code. Errors are printed on
/// stderr and, as runc does, logged at level error (containerd reads the
/// last error line of the log back).
pub fn dispatch(cli: Cli) -> i32 {
    crate::log::init(cli.log.clone(), cli.log_format == "json", cli.debug);
    let mut fail_code = 1;
    if cli.version {
        info::print_version();
        return 0;
    }
    let result = if cli.systemd_cgroup {
        Err(anyhow::anyhow!(
            "--systemd-cgroup: systemd is not available; berth manages cgroups with cgroupfs"
        ))
    } else if !matches!(cli.log_format.as_str(), "text" | "json") {
        Err(anyhow::anyhow!(
            "--log-format: unknown format {:?} (text or json)",
            cli.log_format
        ))
    } else {
        let root = crate::state::Root::new(&cli.root);
        // runc exits 255 when exec itself fails (not the process): clients
        // tell the two apart by it.
        if matches!(cli.cmd, Some(Cmd::Exec(_))) {
            fail_code = 255;
        }
        match cli.cmd {
            None => {
                use clap::CommandFactory;
                let _ = Cli::command().print_help();
                Ok(0)
            }
            Some(Cmd::Create(a)) => lifecycle::create(&root, *a),
            Some(Cmd::Start(a)) => lifecycle::start(&root, a),
            Some(Cmd::Run(a)) => lifecycle::run(&root, *a),
            Some(Cmd::Exec(a)) => exec::run(&root, *a),
            Some(Cmd::Kill(a)) => lifecycle::kill(&root, a),
            Some(Cmd::Delete(a)) => lifecycle::delete(&root, a),
            Some(Cmd::State(a)) => lifecycle::state(&root, a),
            Some(Cmd::List(a)) => info::list(&root, a),
            Some(Cmd::Spec(a)) => info::spec(a),
            Some(Cmd::Features) => info::features(),
            Some(Cmd::Ps(a)) => manage::ps(&root, a),
            Some(Cmd::Pause(a)) => manage::pause(&root, &a.id),
            Some(Cmd::Resume(a)) => manage::resume(&root, &a.id),
            Some(Cmd::Update(a)) => manage::update(&root, *a),
            Some(Cmd::Events(a)) => manage::events(&root, a),
            Some(Cmd::Checkpoint(_)) => manage::checkpoint("checkpoint"),
            Some(Cmd::Restore(_)) => manage::checkpoint("restore"),
            Some(Cmd::Plan(a)) => info::plan(&root, a),
            Some(Cmd::Seccomp(c)) => crate::seccomp::cli::run(c),
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            crate::log::error(&msg);
            eprintln!("berth: {msg}");
            fail_code
        }
    }
}
