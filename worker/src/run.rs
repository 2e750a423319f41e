//! One task run, from task file to exit status, and the cleanup that always follows it.
//!
//! ```text
//! gather (read only) ──▶ TaskPlan::build (pure, plan.rs) ──▶ materialize (mounts, materialize.rs)
//!                    ──▶ config.json ──▶ execute ──▶ outputs, caches ──▶ cleanup
//! ```
//!
//! Every run owns `<work-dir>/runs/<id>/` (its layout: layout.rs), recorded in `run.json`
//! *before* anything is mounted or created, so that whatever happens to the worker (even
//! `kill -9`), the next worker start finds the record and removes the container, the mounts
//! and the directory ([`sweep`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::bundle::{self, Network};
use crate::image::cancel::{run_cancellable, Ended};
use crate::image::{Cancel, Image, Store};
use crate::layout::{RunLayout, WorkLayout};
use crate::net;
use crate::plan::{self, OutputOwner, OutputTarget, PlanInput, TaskPlan};
use crate::runtime::Runtime;
use crate::shift::{self, Shift};
use crate::sys;
use crate::task::TaskConfig;
use crate::userns::{self, IdmapSetting, IdsMode};

/// Exit status when the worker itself failed (fly's "errored").
pub const EXIT_ERRORED: i32 = 2;
/// Exit status when the run was aborted by SIGINT/SIGTERM (fly's "aborted").
pub const EXIT_ABORTED: i32 = 3;

/// Worker-wide settings.
#[derive(Debug, Clone)]
pub struct Worker {
    pub work_dir: PathBuf,
    pub runtime: Runtime,
    /// Idmapped mounts or shifted copies for unprivileged tasks (`--idmap`).
    pub idmap: IdmapSetting,
}

/// Options of `berth-worker run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub task_file: PathBuf,
    /// The task, its vars filled and fly's overrides applied (see fly.rs).
    pub task: TaskConfig,
    /// (task input name, dir), as fly's `DetermineInputs` chose them.
    pub inputs: Vec<(String, PathBuf)>,
    /// Keep .gitignored paths and `.git` of inputs in a git work tree (`--include-ignored`).
    pub include_ignored: bool,
    pub outputs: Vec<(String, PathBuf)>,
    pub image: Option<String>,
    pub privileged: bool,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    pub params: Vec<(String, String)>,
    pub step_name: Option<String>,
    pub network: Network,
    /// Bridge network: the task may reach the host's addresses.
    pub allow_host_access: bool,
    /// Upstreams for the task's DNS proxy; empty: the host's nameservers.
    pub dns: Vec<std::net::SocketAddr>,
    /// The proxy's AAAA NXDOMAIN → NODATA repair.
    pub dns_rewrite: bool,
    pub seccomp_profile: Option<PathBuf>,
    pub annotations: Vec<(String, String)>,
    /// Print the run header (what the run is made of) even when stderr is not a terminal.
    pub verbose: bool,
}

/// `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub container_id: String,
    pub worker_pid: u32,
    pub worker_start_time: u64,
    pub runtime_bin: PathBuf,
    pub runtime_root: PathBuf,
    pub task_file: PathBuf,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    TimedOut,
    Aborted,
}

impl Worker {
    pub fn layout(&self) -> WorkLayout {
        WorkLayout::new(&self.work_dir)
    }
    fn runs_dir(&self) -> PathBuf {
        self.layout().runs()
    }
}

/// What a plan is built from, found by reading only (the idmap probe aside: it mounts and
/// unmounts a scratch overlay under `runs/.probe-*`).
pub struct Gathered {
    pub task: TaskConfig,
    pub image: Option<Image>,
    pub user: bundle::ResolvedUser,
    pub mode: Option<IdsMode>,
    /// The user namespace for idmapped layers, when the mode uses them.
    pub ns: Option<std::os::fd::OwnedFd>,
    pub host_max: u32,
    pub inputs: Vec<(String, PathBuf)>,
    pub outputs: Vec<(String, OutputTarget)>,
    pub task_key: PathBuf,
    pub host_resolv: String,
}

impl Gathered {
    /// The plan of run `run_id`.
    pub fn plan(&self, w: &Worker, opts: &RunOptions, run_id: &str) -> Result<TaskPlan> {
        let empty = crate::image::ImageConfig::default();
        let (rootfs, config) = match &self.image {
            Some(i) => (i.rootfs.as_path(), &i.config),
            None => (Path::new("<image>"), &empty),
        };
        TaskPlan::build(PlanInput {
            task_file: &opts.task_file,
            task: &self.task,
            work: &w.layout(),
            run_id,
            step_name: &plan::step_name(&opts.task_file, opts.step_name.as_deref()),
            image_rootfs: rootfs,
            image_config: config,
            user: self.user.clone(),
            mode: self.mode.clone(),
            host_max: self.host_max,
            inputs: &self.inputs,
            outputs: &self.outputs,
            params: &opts.params,
            task_key: &self.task_key,
            host_resolv: &self.host_resolv,
            dns: dns_proxy_addr(opts).map(|a| a.ip()),
            network: opts.network,
        })
    }
}

/// Check the command line against the task and collect what the plan needs. `image`: how to
/// find the image (`None`: leave it out, as `check --plan` does when it is not stored yet).
pub fn gather(
    w: &Worker,
    opts: &RunOptions,
    image: Option<Image>,
    inputs_required: bool,
) -> Result<Gathered> {
    let task = opts.task.clone();
    for (name, _) in &opts.inputs {
        if !task.inputs.iter().any(|i| &i.name == name) {
            bail!(
                "-i {name}=…: the task has no input named {name:?} (inputs: {:?})",
                task.inputs.iter().map(|i| &i.name).collect::<Vec<_>>()
            );
        }
    }
    for (name, _) in &opts.outputs {
        if !task.outputs.iter().any(|o| &o.name == name) {
            bail!(
                "-o {name}=…: the task has no output named {name:?} (outputs: {:?})",
                task.outputs.iter().map(|o| &o.name).collect::<Vec<_>>()
            );
        }
    }
    let mut inputs = Vec::new();
    for (name, src) in &opts.inputs {
        let c =
            std::fs::canonicalize(src).with_context(|| format!("-i {name}={}", src.display()))?;
        if !c.is_dir() {
            bail!("-i {name}={}: not a directory", src.display());
        }
        inputs.push((name.clone(), c));
    }
    if !inputs_required {
        // `check`: name the flag where the directory would go.
        for i in &task.inputs {
            if !inputs.iter().any(|(n, _)| n == &i.name) {
                inputs.push((
                    i.name.clone(),
                    PathBuf::from(format!("<-i {}=DIR>", i.name)),
                ));
            }
        }
    }
    // Every -o target must be creatable before the task runs, not after.
    let outputs = opts
        .outputs
        .iter()
        .map(|(n, d)| Ok((n.clone(), output_target(n, d)?)))
        .collect::<Result<Vec<_>>>()?;
    let host_max = userns::host_max_id()?;
    let (mode, ns) = if opts.privileged {
        (None, None)
    } else {
        check_work_dir_searchable(&w.work_dir, host_max)?;
        mkdir(&w.runs_dir())?;
        let (m, ns) = userns::choose_mode(w.idmap, &w.runs_dir())?;
        (Some(m), ns)
    };
    // Process identity, from the image's own passwd/group files.
    let user_spec = if !task.run.user.is_empty() {
        task.run.user.clone()
    } else {
        image
            .as_ref()
            .map(|i| i.config.user.clone())
            .unwrap_or_default()
    };
    let user = bundle::resolve_user(
        image
            .as_ref()
            .map_or(Path::new("/nonexistent"), |i| &i.rootfs),
        &user_spec,
    )?;
    Ok(Gathered {
        task_key: std::fs::canonicalize(&opts.task_file).unwrap_or_else(|_| opts.task_file.clone()),
        task,
        image,
        user,
        mode,
        ns,
        host_max,
        inputs,
        outputs,
        host_resolv: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    })
}

/// Unprivileged containers are made by the runtime as the task's root, host uid *max*, inside
/// the task's user namespace. Its capabilities count only for inodes whose owner and group
/// are mapped there, and host uid/gid 0 are not: a directory of host root's on the way to the
/// work dir must be searchable by others, or the runtime fails deep inside ("bind rootfs onto
/// itself: Permission denied"). Say so up front.
fn check_work_dir_searchable(work_dir: &Path, max: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let abs = if work_dir.is_absolute() {
        work_dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(work_dir)
    };
    let mut p = abs.as_path();
    loop {
        if let Ok(m) = std::fs::metadata(p) {
            let search = if m.uid() == max {
                0o100
            } else if m.uid() != 0 && m.gid() != 0 {
                0 // mapped owner and group: the runtime's capabilities apply
            } else if m.gid() == max {
                0o010
            } else {
                0o001
            };
            if m.is_dir() && search != 0 && m.mode() & search == 0 {
                bail!(
                    "--work-dir {}: {} is mode {:04o}: owned by {}:{}, it must be searchable by others (o+x) for unprivileged tasks: their root (host uid {max}) has no rights over it; chmod o+x it, or use another --work-dir",
                    work_dir.display(),
                    p.display(),
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                );
            }
        }
        match p.parent() {
            Some(q) => p = q,
            None => return Ok(()),
        }
    }
}

/// Check that `-o NAME=DIR` can be written: DIR is a directory, or can be made under the
/// nearest existing directory above it. Decides who will own what is copied there.
pub fn output_target(name: &str, dir: &Path) -> Result<OutputTarget> {
    use std::os::unix::fs::MetadataExt;
    let what = || format!("-o {name}={}", dir.display());
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    let mut create = Vec::new();
    let mut p = abs.clone();
    let existing = loop {
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => break m,
            Ok(_) => bail!("{}: {} is not a directory", what(), p.display()),
            // Missing, or under something that is not a directory (found on the way up).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                if std::fs::symlink_metadata(&p).is_ok() {
                    bail!("{}: {} is a dangling symlink", what(), p.display());
                }
                create.push(p.clone());
                if !p.pop() {
                    bail!("{}: no existing directory above it", what());
                }
            }
            Err(e) => return Err(e).with_context(|| format!("{}: {}", what(), p.display())),
        }
    };
    // Root passes permission checks, but not a read-only filesystem or an immutable dir.
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        .map_err(|_| anyhow!("{}: path contains a NUL byte", what()))?;
    // SAFETY: a valid C string; access has no memory side effects.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        bail!(
            "{}: cannot {} in {}: {e}",
            what(),
            if create.is_empty() {
                "write the output"
            } else {
                "create the output directory"
            },
            p.display()
        );
    }
    create.reverse();
    let owner = if create.is_empty() {
        OutputOwner {
            uid: existing.uid(),
            gid: existing.gid(),
            from: "the directory".into(),
            keep_ids: existing.uid() == 0,
        }
    } else {
        let env_id = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
        match (env_id("SUDO_UID"), env_id("SUDO_GID")) {
            (Some(uid), Some(gid)) => OutputOwner {
                uid,
                gid,
                from: "SUDO_UID/SUDO_GID".into(),
                keep_ids: uid == 0,
            },
            _ => {
                // SAFETY: geteuid/getegid cannot fail.
                let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
                OutputOwner {
                    uid,
                    gid,
                    from: "the worker".into(),
                    keep_ids: uid == 0,
                }
            }
        }
    };
    Ok(OutputTarget {
        dir: abs,
        create,
        owner,
    })
}

/// Run a task to completion; returns the process exit status to use.
pub async fn run_task(w: &Worker, opts: &RunOptions) -> Result<Outcome> {
    // Signals first: from here on Ctrl-C/SIGTERM abort the run instead of killing the worker.
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;

    // The image may be pulled or unpacked: the first signal cancels that (and the run), a
    // second one exits at once.
    let image = {
        let (store, task, opts) = (Store::new(&w.work_dir), opts.task.clone(), opts.clone());
        let work = move |c: Cancel| resolve_image(&store, &task, &opts, &c);
        match run_cancellable("the image pull", &mut sigint, &mut sigterm, work).await? {
            Ended::Done(image) => image?,
            Ended::Interrupted => return Ok(Outcome::Aborted),
        }
    };
    let g = gather(w, opts, Some(image.clone()), true)?;

    let id = sys::random_hex(6);
    let plan = g.plan(w, opts, &id)?;
    let me = std::process::id();
    let rec = RunRecord {
        id: id.clone(),
        container_id: plan.container_id.clone(),
        worker_pid: me,
        worker_start_time: sys::proc_start_time(me).unwrap_or(0),
        runtime_bin: w.runtime.bin.clone(),
        runtime_root: w.runtime.root.clone(),
        task_file: opts.task_file.clone(),
    };
    write_record(&w.layout(), &rec)?;

    // Held until the run is cleaned up: the cache generations its views are built on.
    let mut leases: Vec<crate::cache::Lease> = Vec::new();
    let result = async {
        let mut header = vec![match &plan.ids {
            plan::Ids::Host => "privileged (host root, no user namespace)".to_string(),
            m => format!(
                "unprivileged (user namespace, task root = host uid {}); ids: {}",
                plan.host_max,
                plan::ids_text(m)
            ),
        }];
        let container = crate::materialize::materialize(
            w,
            opts,
            &plan,
            &image,
            g.ns.as_ref(),
            &mut header,
            &mut leases,
        )?;
        if opts.verbose || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            for l in &header {
                eprintln!("berth-worker: run {}: {l}", rec.id);
            }
        }
        let bundle_dir = plan.layout().bundle();
        std::fs::write(
            bundle_dir.join("config.json"),
            serde_json::to_vec_pretty(&bundle::config_json(&container))?,
        )
        .context("writing config.json")?;
        let outcome = execute(w, opts, &rec, &bundle_dir, &mut sigint, &mut sigterm).await?;
        if outcome == Outcome::Exited(0) {
            // The run's view of each cache becomes the cache (the last successful run wins);
            // a failed, timed-out or aborted run's changes are dropped with its run dir.
            for (c, lease) in plan.caches.iter().zip(&leases) {
                sys::umount(&c.view)?;
                crate::cache::commit(lease, c, &rec.id)?;
            }
        }
        if let Outcome::Exited(code) = outcome {
            // Whatever the exit status: Concourse registers a failed task's outputs too (test
            // reports of failing tests are the common case). Not after a timeout or an abort.
            let copied = copy_outputs(&plan).await?;
            if code != 0 && !copied.is_empty() {
                eprintln!(
                    "berth-worker: task failed (exit {code}); outputs copied to {}",
                    copied.join(", ")
                );
            }
        }
        Ok::<_, anyhow::Error>(outcome)
    }
    .await;
    let cleanup = match cleanup_run(w, &rec).await {
        // The task's exit status and outputs are ready: report them without waiting for the
        // CNI DEL (the IPAM lease), which is recorded on disk and always runs.
        Ok(Some(owed)) => net::del_in_background(&w.work_dir, owed).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    match (result, cleanup) {
        (Ok(o), Ok(())) => Ok(o),
        (Ok(_), Err(c)) => Err(c.context("cleaning up after the task")),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(anyhow!("{e:#}\n(and cleaning up failed too: {c:#})")),
    }
}

/// `berth-worker check TASK --explain|--plan`: how this worker would run the task. The id
/// mapping of unprivileged runs is probed exactly as a run probes it; the image is looked up
/// in the store (or used in place, for a directory) but never pulled or imported.
pub fn plan_for_check(w: &Worker, opts: &RunOptions) -> Result<TaskPlan> {
    let task = &opts.task;
    let store = Store::new(&w.work_dir);
    // `check` is not interrupted half-way through anything worth cancelling.
    let never = Cancel::new();
    let image = match &opts.image {
        Some(i) if Path::new(i).is_dir() && !Path::new(i).join("oci-layout").exists() => Some(
            store
                .resolve(i, &never)
                .with_context(|| format!("--image {i}"))?,
        ),
        Some(i) => store.find(i)?,
        None => match (&task.image_resource, &task.rootfs_uri) {
            (Some(ir), _) => match ir.digest() {
                Some(d) => store.find(d)?,
                None => store.find(&format!(
                    "{}:{}",
                    ir.repository().unwrap_or_default(),
                    ir.tag()
                ))?,
            },
            (None, Some(uri)) => {
                let p = uri.strip_prefix("raw://").unwrap_or(uri);
                Some(
                    store
                        .resolve(p, &never)
                        .with_context(|| format!("rootfs_uri {uri}"))?,
                )
            }
            (None, None) => None,
        },
    };
    let g = gather(w, opts, image, false)?;
    g.plan(w, opts, "<id>")
}

fn resolve_image(
    store: &Store,
    task: &TaskConfig,
    opts: &RunOptions,
    cancel: &crate::image::Cancel,
) -> Result<Image> {
    if let Some(i) = &opts.image {
        return store
            .resolve(i, cancel)
            .with_context(|| format!("--image {i}"));
    }
    if let Some(ir) = &task.image_resource {
        let creds = match (
            ir.source.get("username").and_then(|v| v.as_str()),
            ir.source.get("password").and_then(|v| v.as_str()),
        ) {
            (Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
            _ => None,
        };
        return store.resolve_resource(
            ir.repository().unwrap_or_default(),
            &ir.tag(),
            ir.digest(),
            creds,
            cancel,
        );
    }
    if let Some(uri) = &task.rootfs_uri {
        let p = uri.strip_prefix("raw://").unwrap_or(uri);
        return store
            .resolve(p, cancel)
            .with_context(|| format!("rootfs_uri {uri}"));
    }
    bail!("{}: no image: the task has neither image_resource nor rootfs_uri; pass --image DIR|TAR|OCI", opts.task_file.display())
}

fn write_record(work: &WorkLayout, rec: &RunRecord) -> Result<()> {
    let runs = work.runs();
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    // Write the record in a hidden dir and rename it into place: a run directory without a
    // record never exists, so a sweep can always tell who owns it.
    let tmp = runs.join(format!(".{}", rec.id));
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let tmp_layout = RunLayout { dir: tmp.clone() };
    std::fs::write(tmp_layout.record(), serde_json::to_vec_pretty(rec)?)?;
    let dst = work.run(&rec.id).dir;
    std::fs::rename(&tmp, &dst).with_context(|| format!("creating {}", dst.display()))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))
}

async fn execute(
    w: &Worker,
    opts: &RunOptions,
    rec: &RunRecord,
    bundle_dir: &Path,
    sigint: &mut tokio::signal::unix::Signal,
    sigterm: &mut tokio::signal::unix::Signal,
) -> Result<Outcome> {
    let rt = &w.runtime;
    let id = &rec.container_id;
    let (out_w, err_w, copiers) = output_fds()?;
    let run_dir = w.layout().run(&rec.id).dir;
    let foreground = opts.network != Network::Bridge;
    let (mut waiter, _dns) = if foreground {
        // Nothing to do between create and start: one `run` does create, start, wait and
        // delete (two runtime processes fewer per task). Its exit status is the task's.
        let dns = match dns_proxy_addr(opts) {
            Some(addr) => Some(start_dns_proxy(opts, addr)?),
            None => None,
        };
        let pid = rt.spawn_run(id, bundle_dir, out_w, err_w)?;
        (tokio::task::spawn_blocking(move || sys::wait_pid(pid)), dns)
    } else {
        let pid = rt.create(id, bundle_dir, out_w, err_w).await?;
        // The runtime has exited; our pipe write ends are closed, only the container holds them now.
        let waiter = tokio::task::spawn_blocking(move || sys::wait_pid(pid));
        // Between create and start: the task's namespace exists, its process has not run yet.
        let bridge = if opts.allow_host_access {
            net::HOST_ACCESS
        } else {
            net::ISOLATED
        };
        let a = net::attach(&w.work_dir, &run_dir, id, pid, &bridge)
            .await
            .context("setting up the task's network")?;
        let hostname = std::fs::read_to_string(run_dir.join("etc/hostname"))?;
        std::fs::write(
            run_dir.join("etc/hosts"),
            net::hosts(Some(a.ip), hostname.trim()),
        )?;
        let dns = match dns_proxy_addr(opts) {
            Some(addr) => Some(start_dns_proxy(opts, addr)?),
            None => None,
        };
        rt.start(id).await?;
        (waiter, dns)
    };

    let deadline = async {
        match opts.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        r = &mut waiter => Outcome::Exited(r.context("waiting for the task")??),
        _ = deadline => Outcome::TimedOut,
        _ = sigint.recv() => Outcome::Aborted,
        _ = sigterm.recv() => Outcome::Aborted,
    };
    if outcome != Outcome::Exited(0) && !matches!(outcome, Outcome::Exited(_)) {
        // Concourse's stop: TERM, a grace period, then KILL.
        let _ = rt.kill(id, "TERM").await;
        if tokio::time::timeout(opts.grace, &mut waiter).await.is_err() {
            let _ = rt.kill(id, "KILL").await;
            let _ = waiter.await;
        }
    }
    for c in copiers {
        let _ = c.await;
    }
    if let (true, Outcome::Exited(code)) = (foreground, &outcome) {
        if *code != 0 {
            // The runtime failed before the container existed: its error, not a task's exit.
            if let Some(e) = rt.run_failure(id, bundle_dir, *code) {
                return Err(e);
            }
        }
    }
    Ok(outcome)
}

/// The fds the container writes its stdout and stderr to, and the copier threads, if any.
///
/// When ours are not a terminal (a file, a pipe to CI), the container gets duplicates of them:
/// output arrives with no copying at all, and when stdout and stderr are the same file
/// (`> log 2>&1`) their interleaving is exactly the task's. A terminal is never handed to a
/// container (it could push input into it with TIOCSTI or change its settings); the container
/// writes into a pipe that a thread copies to our terminal as bytes arrive. When stdout and
/// stderr are the same terminal, both go through one pipe so they stay in order (as on the pty
/// Concourse gives every task).
type Copier = tokio::task::JoinHandle<()>;
fn output_fds() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd, Vec<Copier>)> {
    use std::io::IsTerminal;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let dup = |fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .context("duplicating our output fd for the container")
    };
    let (out, err) = (std::io::stdout(), std::io::stderr());
    let mut copiers = Vec::new();
    let same_tty = out.is_terminal() && err.is_terminal() && {
        let id = |f: std::os::fd::BorrowedFd<'_>| {
            f.try_clone_to_owned()
                .map(std::fs::File::from)
                .and_then(|f| f.metadata())
                .map(|m| (m.dev(), m.ino(), m.rdev()))
                .ok()
        };
        id(out.as_fd()).is_some() && id(out.as_fd()) == id(err.as_fd())
    };
    if same_tty {
        let (r, w) = sys::pipe()?;
        copiers.push(forward(r, false));
        let w2 = dup(w.as_fd())?;
        return Ok((w, w2, copiers));
    }
    let mut one = |is_tty: bool,
                   fd: std::os::fd::BorrowedFd<'_>,
                   stderr: bool|
     -> Result<std::os::fd::OwnedFd> {
        if !is_tty {
            return dup(fd);
        }
        let (r, w) = sys::pipe()?;
        copiers.push(forward(r, stderr));
        Ok(w)
    };
    let o = one(out.is_terminal(), out.as_fd(), false)?;
    let e = one(err.is_terminal(), err.as_fd(), true)?;
    Ok((o, e, copiers))
}

/// Copy one of the container's output pipes to ours as bytes arrive (no line buffering).
fn forward(r: std::os::fd::OwnedFd, stderr: bool) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut f = std::fs::File::from(r);
        let mut buf = [0u8; 16384];
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let res = if stderr {
                let mut e = std::io::stderr().lock();
                e.write_all(&buf[..n]).and_then(|_| e.flush())
            } else {
                let mut o = std::io::stdout().lock();
                o.write_all(&buf[..n]).and_then(|_| o.flush())
            };
            if res.is_err() {
                return;
            }
        }
    })
}

/// Copy every `-o` output out, after the task (whatever its exit status: Concourse registers
/// outputs of failed tasks too). Missing directories are made as the plan says; an existing
/// one keeps its owner and mode. What lands there is owned by the target's owner, or keeps
/// its host-space owners when that owner is root (see [`OutputOwner`]).
async fn copy_outputs(plan: &TaskPlan) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for out in &plan.outputs {
        let Some(t) = &out.target else { continue };
        for d in &t.create {
            match std::fs::create_dir(d) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                r => r.with_context(|| format!("-o {}: creating {}", out.name, d.display()))?,
            }
            sys::lchown(d, t.owner.uid, t.owner.gid)?;
        }
        let shift = if !t.owner.keep_ids {
            Shift::Owner(t.owner.uid, t.owner.gid)
        } else if plan.privileged {
            Shift::None
        } else {
            // An unprivileged task's root (host uid max on disk) becomes 0, so the next task,
            // privileged or not, gets the files like any other input.
            Shift::ToHost(plan.host_max)
        };
        let (src, dst) = (out.source.clone(), t.dir.clone());
        tokio::task::spawn_blocking(move || shift::copy_into(&src, &dst, shift))
            .await
            .context("copying the output")?
            .with_context(|| format!("-o {}={}: copying the output", out.name, t.dir.display()))?;
        done.push(format!("{}={}", out.name, t.dir.display()));
    }
    Ok(done)
}

/// Remove everything a run made: the container (`<runtime> delete --force`), every mount under
/// its directory, the directory, and the empty `berth-worker` cgroup parents. Idempotent.
/// Returns the CNI DEL now owed, if the run had a network ([`net::release`]): the caller runs
/// it, at once or in the background (if the caller fails to, it stays owed on disk).
pub async fn cleanup_run(w: &Worker, rec: &RunRecord) -> Result<Option<net::Owed>> {
    let run_dir = w.layout().run(&rec.id).dir;
    let rt = Runtime {
        bin: if rec.runtime_bin.exists() {
            rec.runtime_bin.clone()
        } else {
            w.runtime.bin.clone()
        },
        root: rec.runtime_root.clone(),
    };
    // The network first, whatever state the run died in (nothing to do without one): our
    // hold on the namespace goes and the recorded state moves out of the run directory, into
    // the owed DELs. No plugin runs here.
    let owed = net::release(&w.work_dir, &run_dir);
    let del = rt.delete(&rec.container_id).await;
    // Keep the run directory (and the network state in it) if it could not be handed over.
    let owed = owed.context("releasing the task's network")?;
    sys::umount_all_under(&run_dir)?;
    // Never recurse into a mounted directory (an input's lower dir is the caller's data).
    if !sys::mounts_under(&run_dir)?.is_empty() {
        bail!("{}: still has mounts; not removing it", run_dir.display());
    }
    match std::fs::remove_dir_all(&run_dir) {
        // Another worker's sweep may have removed it first.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", run_dir.display()));
        }
        _ => {}
    }
    remove_cgroup_parents();
    del.map(|()| owed)
}

/// Where the task's DNS proxy listens, if the task has one.
fn dns_proxy_addr(opts: &RunOptions) -> Option<std::net::SocketAddr> {
    let gw = |b: net::Bridge| std::net::SocketAddr::new(b.gateway.into(), 53);
    match opts.network {
        Network::Bridge if opts.allow_host_access => Some(gw(net::HOST_ACCESS)),
        Network::Bridge => Some(gw(net::ISOLATED)),
        Network::Host => Some(net::HOST_MODE_DNS),
        Network::None => None,
    }
}

/// A running DNS proxy; dropping it stops it.
struct DnsProxy {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serve the task's DNS on `addr` for as long as the returned handle lives. Every worker serves
/// its own task on the same address (SO_REUSEPORT): they are all alike.
fn start_dns_proxy(opts: &RunOptions, addr: std::net::SocketAddr) -> Result<DnsProxy> {
    let upstreams = if opts.dns.is_empty() {
        crate::dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    } else {
        opts.dns.clone()
    };
    if upstreams.is_empty() {
        bail!("the task's DNS proxy has no upstream: /etc/resolv.conf names no nameserver; pass --dns ADDR (or --network none)");
    }
    let proxy = crate::dns::Proxy::new(crate::dns::Config {
        upstreams: upstreams.clone(),
        timeout: Duration::from_secs(2),
        rewrite: opts.dns_rewrite,
        debug: std::env::var("BERTH_WORKER_LOG").is_ok_and(|l| l == "debug"),
    })?;
    let l = crate::dns::bind(addr, true).map_err(|e| {
        let loopback: Vec<String> = upstreams
            .iter()
            .filter(|u| u.ip().is_loopback())
            .map(|u| u.ip().to_string())
            .collect();
        if opts.network == Network::Host && !loopback.is_empty() {
            anyhow!("{e:#}: the host's resolv.conf names loopback nameserver(s) {} that the task reaches only through berth-worker's DNS proxy; pass --dns ADDR with a resolver the task can reach directly", loopback.join(", "))
        } else {
            e
        }
    })?;
    crate::dns::sys_raise_nofile();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        proxy
            .serve(vec![l], async {
                let _ = rx.await;
            })
            .await
    });
    Ok(DnsProxy { _stop: tx })
}

/// rmdir `<controller>/berth-worker` where empty (the runtime removes the container's own cgroup).
fn remove_cgroup_parents() {
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let _ = std::fs::remove_dir(e.path().join("berth-worker"));
        }
    }
    let _ = std::fs::remove_dir("/sys/fs/cgroup/berth-worker");
}

/// Remove what interrupted imports and pulls left under `images/` (hidden `.import-*`,
/// `.pull-*`, `.archive-*` directories) once their process is gone; one in progress is left
/// alone (its name records its pid and start time). Returns what was removed.
pub fn sweep_partial(w: &Worker) -> Result<Vec<PathBuf>> {
    let images = w.layout().images();
    let mut done = Vec::new();
    let rd = match std::fs::read_dir(&images) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).with_context(|| format!("reading {}", images.display())),
    };
    for e in rd.flatten() {
        if crate::layout::partial_is_stale(&e.file_name().to_string_lossy()) {
            match std::fs::remove_dir_all(e.path()) {
                Err(x) if x.kind() != std::io::ErrorKind::NotFound => {
                    return Err(x).with_context(|| format!("removing {}", e.path().display()))
                }
                _ => done.push(e.path()),
            }
        }
    }
    Ok(done)
}

/// Clean up runs whose worker is gone (crashed, `kill -9`ed). Returns the ids removed.
pub async fn sweep(w: &Worker) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let rd = match std::fs::read_dir(w.runs_dir()) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).context("reading the runs directory"),
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            // A record being written, or a spec probe; no mounts live there.
            if name.starts_with(".spec-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
            // An idmap probe whose worker died mid-way: `.probe-<pid>-<hex>`.
            let probe_pid = name
                .strip_prefix(".probe-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if probe_pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                sys::umount_all_under(&e.path())?;
                let _ = std::fs::remove_dir_all(e.path());
            }
            continue;
        }
        let Ok(data) = std::fs::read(w.layout().run(&name).record()) else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<RunRecord>(&data) else {
            continue;
        };
        let alive = rec.worker_pid != std::process::id()
            && sys::proc_alive(rec.worker_pid, rec.worker_start_time);
        if alive {
            continue;
        }
        let owed = cleanup_run(w, &rec)
            .await
            .with_context(|| format!("cleaning up stale run {}", rec.id))?;
        if let Some(o) = owed {
            net::del_now(o)
                .await
                .with_context(|| format!("cleaning up stale run {}", rec.id))?;
        }
        done.push(rec.id);
    }
    Ok(done)
}
