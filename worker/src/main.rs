//! berth-worker: run Concourse-style CI tasks in berth containers, like `fly execute` against a
//! one-machine Concourse worker. See docs/worker.md.

mod bundle;
mod cache;
mod dns;
mod fly;
mod image;
mod layout;
mod materialize;
mod net;
mod plan;
mod run;
mod runtime;
mod shift;
mod sys;
mod task;
mod userns;
mod vars;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use crate::bundle::Network;
use crate::run::{Outcome, RunOptions, Worker, EXIT_ABORTED, EXIT_ERRORED};

#[derive(Parser)]
#[command(
    name = "berth-worker",
    version,
    about = "Run Concourse-style CI tasks in berth containers"
)]
struct Cli {
    /// Image store, run records and caches.
    #[arg(
        long,
        global = true,
        env = "BERTH_WORKER_DIR",
        default_value = "/var/lib/berth-worker"
    )]
    work_dir: PathBuf,
    /// The OCI runtime binary (berth; runc and crun share its CLI). Default: `berth` next to
    /// this binary, else on PATH.
    #[arg(long, global = true, env = "BERTH_BIN")]
    runtime: Option<PathBuf>,
    /// How unprivileged tasks see images and inputs with the right owners: idmapped mounts
    /// (`on`), uid-shifted copies (`off`), or idmapped where the kernel supports them (`auto`,
    /// probed at every run).
    #[arg(
        long,
        global = true,
        env = "BERTH_WORKER_IDMAP",
        value_enum,
        default_value = "auto"
    )]
    idmap: userns::IdmapSetting,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a task file once, like `fly execute`.
    Run(Box<RunArgs>),
    /// Manage the image store.
    Images {
        #[command(subcommand)]
        cmd: ImagesCmd,
    },
    /// Remove what crashed or killed workers left behind (also done before every run).
    Gc,
    /// Validate a task file (its ((vars)) filled) and print it as the worker understands it,
    /// as YAML.
    Check {
        /// Task file (YAML or JSON); or -c FILE.
        task: Option<PathBuf>,
        /// The task file, as fly's `-c`.
        #[arg(short = 'c', long = "config", conflicts_with = "task")]
        config: Option<PathBuf>,
        #[command(flatten)]
        vars: VarArgs,
        /// Print the task as JSON instead of YAML.
        #[arg(long, conflicts_with = "explain")]
        json: bool,
        /// Print how this worker would run it: privileges, how ids are mapped (idmapped
        /// mounts or shifted copies, probed here), and where each volume goes.
        #[arg(long)]
        explain: bool,
        /// With --explain: as `run --privileged` would.
        #[arg(short = 'p', long)]
        privileged: bool,
        /// With --explain: the step name (picks the work dir).
        #[arg(long)]
        name: Option<String>,
        /// Print the run's whole plan as YAML: binds, env, argv, the run directory's layout,
        /// the id mode and volume ownership, the output owners. Nothing is mounted or pulled.
        #[arg(long, conflicts_with_all = ["explain", "json"])]
        plan: bool,
        /// With --plan/--explain: the image, as for `run` (looked up, never pulled or imported).
        #[arg(long)]
        image: Option<String>,
        /// With --plan/--explain: an input NAME=DIR, as for `run`.
        #[arg(short = 'i', long = "input", value_parser = parse_kv_path)]
        inputs: Vec<(String, PathBuf)>,
        /// With --plan/--explain: an output NAME=DIR, as for `run` (checked writable).
        #[arg(short = 'o', long = "output", value_parser = parse_kv_path)]
        outputs: Vec<(String, PathBuf)>,
    },
    /// Run the DNS proxy alone: forward to upstream resolvers, repair AAAA NXDOMAIN (musl).
    DnsProxy(DnsProxyArgs),
    #[command(name = "__userns-hold", hide = true)]
    UsernsHold,
    /// A finished run's CNI DEL, in the background (docs/worker.md, "Network").
    #[command(name = "__cni-del", hide = true)]
    CniDel {
        container_id: String,
        /// The owed record, open and locked, handed down by the run.
        #[arg(long)]
        lock_fd: Option<i32>,
    },
}

/// fly's `((var))` flags (docs/worker.md, *Vars*).
#[derive(clap::Args)]
struct VarArgs {
    /// A var: NAME=STRING (NAME may be a field path: repo.branch=main).
    #[arg(short = 'v', long = "var", value_name = "NAME=STRING", value_parser = parse_kv)]
    var: Vec<(String, String)>,
    /// A var whose value is YAML: NAME=YAML (e.g. -y 'ports=[80, 443]').
    #[arg(short = 'y', long = "yaml-var", value_name = "NAME=YAML", value_parser = parse_kv)]
    yaml_var: Vec<(String, String)>,
    /// A YAML file of vars; later files win, -v/-y win over files.
    #[arg(short = 'l', long = "load-vars-from", value_name = "FILE")]
    load_vars_from: Vec<PathBuf>,
}

impl VarArgs {
    fn vars(&self) -> Result<vars::Vars> {
        vars::Vars::from_flags(&self.var, &self.yaml_var, &self.load_vars_from)
            .map_err(anyhow::Error::msg)
    }
}

/// The task file: the positional argument or `-c FILE`.
fn task_file(pos: &Option<PathBuf>, c: &Option<PathBuf>) -> Result<PathBuf> {
    pos.clone().or_else(|| c.clone()).ok_or_else(|| {
        anyhow::anyhow!("no task file: pass it as the first argument or with -c FILE")
    })
}

#[derive(clap::Args)]
struct RunArgs {
    /// Task file (YAML or JSON), Concourse's schema; or -c FILE.
    task: Option<PathBuf>,
    /// The task file, as fly's `-c`.
    #[arg(short = 'c', long = "config", conflicts_with = "task")]
    config: Option<PathBuf>,
    /// An input: NAME=DIR (mounted copy-on-write; DIR is never modified). Without one, an
    /// input named like the current directory gets the current directory (as fly does).
    #[arg(short = 'i', long = "input", value_parser = parse_kv_path)]
    inputs: Vec<(String, PathBuf)>,
    /// TASK_INPUT=NAME: the task input is fed by `-i NAME=DIR` (or by the current directory
    /// when it is called NAME), like a pipeline's `input_mapping`.
    #[arg(short = 'm', long = "input-mapping", value_parser = parse_kv)]
    input_mappings: Vec<(String, String)>,
    /// Inputs in a git work tree include their .gitignored paths and `.git` (left out by
    /// default, as fly's upload leaves them out).
    #[arg(long)]
    include_ignored: bool,
    #[command(flatten)]
    vars: VarArgs,
    /// Where to copy an output after the task, also when it fails: NAME=DIR. Files are written as
    /// the owner of DIR (or SUDO_UID/SUDO_GID when berth-worker creates it).
    #[arg(short = 'o', long = "output", value_parser = parse_kv_path)]
    outputs: Vec<(String, PathBuf)>,
    /// Image: a rootfs DIR, a rootfs TAR, an OCI layout dir or oci-archive, or a stored name.
    #[arg(long)]
    image: Option<String>,
    /// Run as host root: all capabilities, no user namespace, no seccomp.
    #[arg(short = 'p', long)]
    privileged: bool,
    /// Abort the task after this long (Go duration: 90s, 10m, 1h30m).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Time between TERM and KILL when aborting.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    grace: Duration,
    /// Extra param KEY=VAL (overrides the task's params and the environment).
    #[arg(long = "param", value_parser = parse_kv)]
    params: Vec<(String, String)>,
    /// Step name: picks the work dir /tmp/build/<8 hex of sha256(name)>. Default: the task
    /// file's name without extension.
    #[arg(long)]
    name: Option<String>,
    /// Network: bridge (own namespace, NAT to the outside, DNS through the worker's proxy),
    /// none (loopback only) or host (the host's network namespace).
    #[arg(
        long,
        value_enum,
        env = "BERTH_WORKER_NETWORK",
        default_value = "bridge"
    )]
    network: Network,
    /// Bridge network: let the task reach the host's own addresses (the default blocks all but
    /// the DNS proxy).
    #[arg(long)]
    allow_host_access: bool,
    /// Upstream resolver for the task's DNS proxy (repeatable). Default: the nameservers of
    /// the host's /etc/resolv.conf, loopback ones included.
    #[arg(long = "dns", value_parser = dns::parse_addr)]
    dns: Vec<std::net::SocketAddr>,
    /// Pass AAAA NXDOMAIN through to the task unchanged (no NODATA repair for musl).
    #[arg(long)]
    no_dns_rewrite: bool,
    /// seccomp profile (a linux.seccomp JSON object) for unprivileged tasks.
    #[arg(long, env = "BERTH_SECCOMP_PROFILE")]
    seccomp_profile: Option<PathBuf>,
    /// Annotation KEY=VAL for config.json (e.g. run.berth.seccomp.enosys=runc).
    #[arg(long = "annotation", value_parser = parse_kv)]
    annotations: Vec<(String, String)>,
    /// Print the run header (privileges, id mapping, image copy, cache conversions) on stderr
    /// even when it is not a terminal.
    #[arg(long)]
    verbose: bool,
    /// After `--`: appended to the task's `run.args` (as `fly execute -- ARGS`).
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<String>,
}

#[derive(clap::Args)]
struct DnsProxyArgs {
    /// Address to serve on, UDP and TCP: IP or IP:PORT (port 53 by default). Repeatable.
    #[arg(long, required = true, value_parser = dns::parse_addr)]
    listen: Vec<std::net::SocketAddr>,
    /// Upstream resolvers, tried in order (loopback ones such as 127.0.0.53 work). Default:
    /// the nameservers of /etc/resolv.conf.
    #[arg(long, num_args = 1.., value_parser = dns::parse_addr)]
    upstream: Vec<std::net::SocketAddr>,
    /// How long to wait for one upstream before trying the next (then SERVFAIL).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    timeout: Duration,
    /// Pass AAAA NXDOMAIN through unchanged (no NODATA repair).
    #[arg(long)]
    no_rewrite: bool,
    /// Log level: info, or debug (every rewrite, with the name, and every failed forward).
    #[arg(long, env = "BERTH_WORKER_LOG", default_value = "info", value_parser = ["info", "debug"])]
    log_level: String,
}

#[derive(Subcommand)]
enum ImagesCmd {
    /// List stored images.
    List,
    /// Unpack a rootfs tarball, OCI layout dir or oci-archive into the store.
    Import {
        path: PathBuf,
        /// Name to find it by (e.g. busybox or busybox:1.36; `image_resource` looks these up).
        #[arg(long)]
        name: Option<String>,
    },
    /// Pull REF (`[host[:port]/]repo[:tag][@sha256:…]`) from its registry into the store: the
    /// tag is resolved now; a digest already stored is not downloaded again.
    Pull { reference: String },
    /// Remove a stored image by name or key.
    Rm { image: String },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?}: want KEY=VALUE")),
    }
}

fn parse_kv_path(s: &str) -> Result<(String, PathBuf), String> {
    parse_kv(s).map(|(k, v)| (k, PathBuf::from(v)))
}

/// Go's `time.ParseDuration` subset Concourse users write: `1h30m`, `90s`, `500ms`, `2.5m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (want e.g. 90s, 10m, 1h30m)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let num: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += num * secs;
        rest = &rest[u..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Run an `images import`/`images pull` with Ctrl-C handling: the first signal cancels it
/// (nothing is left in the store), a second one exits at once. Prints the stored key.
async fn images_cancellable(
    what: &str,
    work: impl FnOnce(image::Cancel) -> Result<image::Image> + Send + 'static,
) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    match image::cancel::run_cancellable(what, &mut sigint, &mut sigterm, work).await? {
        image::cancel::Ended::Done(img) => {
            println!("{}", img?.id);
            Ok(0)
        }
        image::cancel::Ended::Interrupted => {
            eprintln!("berth-worker: interrupted: {what} was cancelled");
            Ok(EXIT_ABORTED)
        }
    }
}

fn worker(cli: &Cli) -> Result<Worker> {
    let bin = runtime::locate(cli.runtime.clone())?;
    Ok(Worker {
        work_dir: cli.work_dir.clone(),
        runtime: runtime::Runtime {
            bin,
            root: layout::WorkLayout::new(&cli.work_dir).runtime_root(),
        },
        idmap: cli.idmap,
    })
}

/// Commands that mount, map ids or run containers.
fn needs_root(cmd: &Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Run(_)
            | Cmd::Gc
            | Cmd::CniDel { .. }
            | Cmd::Check { explain: true, .. }
            | Cmd::Check { plan: true, .. }
            | Cmd::Images {
                cmd: ImagesCmd::Import { .. } | ImagesCmd::Pull { .. } | ImagesCmd::Rm { .. }
            }
    )
}

async fn real_main(cli: Cli) -> Result<i32> {
    // Say it before anything is created (without root, the first failure would be a uid_map
    // write deep inside a run).
    // SAFETY: geteuid has no preconditions.
    if needs_root(&cli.cmd) && unsafe { libc::geteuid() } != 0 {
        eprintln!("berth-worker needs root: it mounts filesystems, maps user ids and runs containers (run it as root, e.g. with sudo)");
        return Ok(EXIT_ERRORED);
    }
    match &cli.cmd {
        Cmd::UsernsHold => Ok(userns::hold_main()),
        Cmd::CniDel {
            container_id,
            lock_fd,
        } => {
            net::del_main(&cli.work_dir, container_id, *lock_fd).await?;
            Ok(0)
        }
        Cmd::DnsProxy(a) => {
            let upstreams = if a.upstream.is_empty() {
                dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
            } else {
                a.upstream.clone()
            };
            let cfg = dns::Config {
                upstreams,
                timeout: a.timeout,
                rewrite: !a.no_rewrite,
                debug: a.log_level == "debug",
            };
            dns::main(a.listen.clone(), cfg).await
        }
        Cmd::Check {
            task,
            config,
            vars,
            json,
            explain,
            privileged,
            name,
            plan,
            image,
            inputs,
            outputs,
        } => {
            let file = task_file(task, config)?;
            let t = task::TaskConfig::load(&file, &vars.vars()?)?;
            if *explain || *plan {
                let w = worker(&cli)?;
                let opts = RunOptions {
                    task_file: file,
                    task: t,
                    inputs: inputs.clone(),
                    include_ignored: false,
                    outputs: outputs.clone(),
                    image: image.clone(),
                    privileged: *privileged,
                    timeout: None,
                    grace: Duration::from_secs(10),
                    params: vec![],
                    step_name: name.clone(),
                    network: std::env::var("BERTH_WORKER_NETWORK")
                        .ok()
                        .and_then(|n| clap::ValueEnum::from_str(&n, true).ok())
                        .unwrap_or(Network::Bridge),
                    allow_host_access: false,
                    dns: vec![],
                    dns_rewrite: true,
                    seccomp_profile: None,
                    annotations: vec![],
                    verbose: false,
                };
                let p = run::plan_for_check(&w, &opts)?;
                if *plan {
                    print!("{}", serde_norway::to_string(&p)?);
                } else {
                    print!("{}", p.explain());
                }
            } else if *json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                print!("{}", serde_norway::to_string(&t)?);
            }
            Ok(0)
        }
        Cmd::Gc => {
            let w = worker(&cli)?;
            for id in run::sweep(&w).await? {
                println!("removed stale run {id}");
            }
            // DELs whose background process died (one still running is waited for).
            for id in net::del_all_owed(&cli.work_dir, true).await? {
                println!("released the network of {id}");
            }
            for p in image::Store::new(&cli.work_dir).gc_shifted()? {
                if p.file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
                {
                    println!("removed interrupted import {}", p.display());
                } else {
                    println!(
                        "removed shifted copy {} (its directory is gone)",
                        p.display()
                    );
                }
            }
            cache::gc(&layout::WorkLayout::new(&cli.work_dir).caches());
            for p in run::sweep_partial(&w)? {
                println!("removed {} (an interrupted import or pull)", p.display());
            }
            Ok(0)
        }
        Cmd::Images { cmd } => {
            let store = image::Store::new(&cli.work_dir);
            match cmd {
                ImagesCmd::List => {
                    println!("{:<20} {:>10}  {:<30} SOURCE", "KEY", "SIZE", "NAMES");
                    for r in store.list()? {
                        let size = image::du(&cli.work_dir.join("images").join(&r.key));
                        println!(
                            "{:<20} {:>8.1}MB  {:<30} {}",
                            &r.key[..r.key.len().min(19)],
                            size as f64 / 1048576.0,
                            r.names.join(","),
                            r.source
                        );
                    }
                }
                ImagesCmd::Import { path, name } => {
                    if path.is_dir() && !path.join("oci-layout").exists() {
                        bail!("{}: a rootfs directory is used in place (pass it with --image); import takes tarballs and OCI layouts", path.display());
                    }
                    let (path, name) = (path.clone(), name.clone());
                    let work = move |c: image::Cancel| store.import(&path, name.as_deref(), &c);
                    return images_cancellable("the import", work).await;
                }
                ImagesCmd::Pull { reference } => {
                    let r = image::Reference::parse(
                        reference.strip_prefix("docker://").unwrap_or(reference),
                    )
                    .map_err(|e| anyhow::anyhow!("images pull {reference}: {e:#}"))?;
                    let work = move |c: image::Cancel| image::pull(&store, &r, None, false, &c);
                    return images_cancellable("the pull", work).await;
                }
                ImagesCmd::Rm { image } => println!("removed {}", store.remove(image)?),
            }
            Ok(0)
        }
        Cmd::Run(a) => {
            // What fly does before the build: the task file with its vars filled, `-- ARGS`
            // and the environment's params, and which directory feeds which input.
            let file = task_file(&a.task, &a.config)?;
            let mut t = task::TaskConfig::load(&file, &a.vars.vars()?)?;
            fly::override_task(&mut t, &a.args, |k| std::env::var(k).ok());
            let cwd = std::env::current_dir().ok();
            let (inputs, from_cwd) =
                fly::determine_inputs(&t, &a.inputs, &a.input_mappings, cwd.as_deref())?;
            if let (Some(n), Some(d)) = (from_cwd, &cwd) {
                eprintln!(
                    "berth-worker: input {n}: the current directory {} (its name is the input's)",
                    d.display()
                );
            }
            sys::set_child_subreaper()?;
            let w = worker(&cli)?;
            // Leftovers of crashed runs must not fail this run: report and go on
            // (`berth-worker gc` reports the same error as a failure).
            match run::sweep(&w).await {
                Ok(ids) => ids
                    .iter()
                    .for_each(|id| eprintln!("berth-worker: cleaned up stale run {id}")),
                Err(e) => eprintln!("berth-worker: warning: sweeping stale runs: {e:#}"),
            }
            // DELs whose background process died; one still running is left to it.
            if let Err(e) = net::del_all_owed(&cli.work_dir, false).await {
                eprintln!("berth-worker: warning: releasing stale task networks: {e:#}");
            }
            if let Err(e) = run::sweep_partial(&w) {
                eprintln!("berth-worker: warning: removing interrupted imports: {e:#}");
            }
            let opts = RunOptions {
                task_file: file,
                task: t,
                inputs,
                include_ignored: a.include_ignored,
                outputs: a.outputs.clone(),
                image: a.image.clone(),
                privileged: a.privileged,
                timeout: a.timeout,
                grace: a.grace,
                params: a.params.clone(),
                step_name: a.name.clone(),
                network: a.network,
                allow_host_access: a.allow_host_access,
                dns: a.dns.clone(),
                dns_rewrite: !a.no_dns_rewrite,
                seccomp_profile: a.seccomp_profile.clone(),
                annotations: a.annotations.clone(),
                verbose: a.verbose,
            };
            match run::run_task(&w, &opts).await? {
                Outcome::Exited(c) => Ok(c),
                Outcome::TimedOut => {
                    eprintln!(
                        "berth-worker: timeout exceeded ({:?}); task stopped",
                        a.timeout.unwrap_or_default()
                    );
                    Ok(EXIT_ERRORED)
                }
                Outcome::Aborted => {
                    eprintln!("berth-worker: aborted; task stopped");
                    Ok(EXIT_ABORTED)
                }
            }
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::UsernsHold) {
        std::process::exit(userns::hold_main());
    }
    // Commands that only print end quietly when their reader goes away (`check | head -1`),
    // like any filter: killed by SIGPIPE instead of panicking on EPIPE. `run` keeps ignoring
    // SIGPIPE: it must always clean up after its task.
    if matches!(cli.cmd, Cmd::Check { .. } | Cmd::Images { .. } | Cmd::Gc) {
        // SAFETY: setting a signal's disposition to the default is always sound.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    // One event loop, the DNS proxy included: a query is a few microseconds of work, less
    // than handing it between threads would cost (docs/worker.md, "DNS proxy").
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-worker: starting the async runtime: {e}");
            std::process::exit(EXIT_ERRORED);
        }
    };
    let code = match rt.block_on(real_main(cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth-worker: {e:#}");
            EXIT_ERRORED
        }
    };
    // Don't wait for blocking pipe readers of a daemon that outlived the task.
    rt.shutdown_background();
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2.5m").unwrap(), Duration::from_secs(150));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
