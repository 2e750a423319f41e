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

/// The commands. Their one-line help is runc's `Usage` text, so `-h`
/// reads like runc's (runc's suite and some scripts match it).
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// create a container
    Create(Box<lifecycle::CreateArgs>),
    /// executes the user defined process in a created container
    Start(lifecycle::IdArg),
    /// create and run a container
    Run(Box<lifecycle::RunArgs>),
    /// execute new process inside the container
    Exec(Box<exec::ExecArgs>),
    /// kill sends the specified signal (default: SIGTERM) to the container's init process
    Kill(lifecycle::KillArgs),
    /// delete any resources held by the container often used with detached container
    Delete(lifecycle::DeleteArgs),
    /// output the state of a container
    State(lifecycle::IdArg),
    /// lists containers started by runc with the given root
    List(info::ListArgs),
    /// create a new specification file
    Spec(info::SpecArgs),
    /// show the enabled features
    Features,
    /// ps displays the processes running inside a container
    Ps(manage::PsArgs),
    /// pause suspends all processes inside the container
    Pause(lifecycle::IdArg),
    /// resumes all processes that have been previously paused
    Resume(lifecycle::IdArg),
    /// update container resource constraints
    Update(Box<manage::UpdateArgs>),
    /// display container events such as OOM notifications, cpu, memory, and IO usage statistics
    Events(manage::EventsArgs),
    /// checkpoint a running container (not supported: berth has no CRIU; exits 1)
    Checkpoint(manage::CheckpointArgs),
    /// restore a container from a previous checkpoint (not supported: berth has no CRIU; exits 1)
    Restore(manage::CheckpointArgs),
    /// print every step a start of this bundle would take, and why (berth only)
    Plan(info::PlanArgs),
    /// Compile, explain and lint seccomp profiles.
    #[command(subcommand)]
    Seccomp(crate::seccomp::cli::SeccompCmd),
}

/// runc's help layout (urfave/cli): `NAME:` then `   runc - …` or
/// `   runc <command> - …`. runc's suite (help.bats) and scripts match
/// these two lines; clap renders the rest.
const TOP_HELP: &str = "NAME:
   runc - Open Container Initiative runtime

   berth: a small, fast OCI container runtime, a drop-in for runc.

USAGE:
   {usage}

COMMANDS:
{subcommands}

GLOBAL OPTIONS:
{options}";

const COMMAND_HELP: &str = "NAME:
   runc <command> - {about}

USAGE:
   {usage}

{all-args}";

/// The clap command with runc's help layout on it and on each command.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().help_template(TOP_HELP).mut_subcommands(|c| {
        // clap's {name} is the display name ("berth-list"): spell it out.
        let t = COMMAND_HELP.replace("<command>", c.get_name());
        c.help_template(t)
    })
}

/// Parse argv like runc: `-h` shows runc-shaped help, and `-h` after a
/// command that does not exist says so as runc does ("No help topic for
/// 'foo'", exit 3) instead of clap's usage error.
pub fn parse(args: Vec<OsString>) -> Cli {
    use clap::FromArgMatches;
    let wants_help = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "-h" || a == "--help");
    let matches = command()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m));
    match matches {
        Ok(cli) => cli,
        Err(e) if wants_help && e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            let topic = e
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            eprintln!("No help topic for '{topic}'");
            std::process::exit(3)
        }
        Err(e) => e.exit(),
    }
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
                let _ = command().print_help();
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
            report(&e);
            fail_code
        }
    }
}

/// Print an error on stderr and log it at level error (containerd reads
/// the last error line of the log back).
pub fn report(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    // With --debug and no --log the log *is* stderr: say it once.
    if !crate::log::to_stderr() {
        crate::log::error(&msg);
    }
    eprintln!("berth: {msg}");
}
