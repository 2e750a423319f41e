//! One task run, from task file to exit status, and the cleanup that always follows it.
//!
//! Every run owns `<work-dir>/runs/<id>/`, recorded in `run.json` *before* anything is mounted
//! or created, so that whatever happens to the worker (even `kill -9`), the next worker start
//! finds the record and removes the container, the mounts and the directory ([`sweep`]).
//!
//! ```text
//! runs/<id>/run.json        who owns the run (worker pid + start time), container id, runtime
//!           rootfs/         the task's root: overlay(image, upper); unprivileged: from idmapped
//!                           layers, or over the image's shifted copy (see shift.rs)
//!           layers/rootfs/  rw/{upper,work} of that overlay; lower-idmapped/, rw-idmapped/ are
//!                           the idmapped layer mounts, detached once the overlay holds them
//!           layers/in-N/    the same for input N (lower = the caller's dir, never written)
//!           inputs/N        input N's overlay, or its uid-shifted copy (no idmapped mounts)
//!           vol/workdir     the work dir volume, /tmp/build/<hex>
//!           vol/out-N       outputs, copied to -o DIR after success
//!           vol/scratch     /scratch
//!           etc/            resolv.conf, hosts, hostname
//!           bundle/         config.json, runtime log, pid file
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bundle::{self, Bind, ContainerPlan, Network};
use crate::image::cancel::{run_cancellable, Ended};
use crate::image::{Cancel, Image, Store};
use crate::net;
use crate::runtime::Runtime;
use crate::shift::{self, Shift};
use crate::sys;
use crate::task::TaskConfig;
use crate::userns::{self, IdRange, IdmapSetting, IdsMode};

/// Where berth-init is mounted inside the container (Concourse mounts its init at /tmp/gdn-init).
const INIT_IN_CONTAINER: &str = "/tmp/berth-init";
/// The init binary, compiled by build.rs.
static INIT_BIN: &[u8] = include_bytes!(env!("BERTH_INIT_BIN"));

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
    fn runs_dir(&self) -> PathBuf {
        self.work_dir.join("runs")
    }
}

/// `/tmp/build/<first 4 bytes of sha256(step name), hex>` (Concourse `step_factory.go`).
pub fn work_dir_in_container(step_name: &str) -> String {
    let h = Sha256::digest(step_name.as_bytes());
    format!(
        "/tmp/build/{:02x}{:02x}{:02x}{:02x}",
        h[0], h[1], h[2], h[3]
    )
}

/// Resolve `run.dir` against the work dir. Concourse deletes every `..` from the string
/// (`resolvePath`); berth drops `..` path components, which keeps `a..b` names intact.
pub fn resolve_dir(workdir: &str, dir: &str) -> String {
    if dir.starts_with('/') {
        return dir.to_string();
    }
    let mut p = workdir.to_string();
    for c in dir
        .split('/')
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
    {
        p.push('/');
        p.push_str(c);
    }
    p
}

/// Run a task to completion; returns the process exit status to use.
pub async fn run_task(w: &Worker, opts: &RunOptions) -> Result<Outcome> {
    // Signals first: from here on Ctrl-C/SIGTERM abort the run instead of killing the worker.
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;

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
    // The image may be pulled or unpacked: the first signal cancels that (and the run), a
    // second one exits at once.
    let image = {
        let (store, task, opts) = (Store::new(&w.work_dir), task.clone(), opts.clone());
        let work = move |c: Cancel| resolve_image(&store, &task, &opts, &c);
        match run_cancellable("the image pull", &mut sigint, &mut sigterm, work).await? {
            Ended::Done(image) => image?,
            Ended::Interrupted => return Ok(Outcome::Aborted),
        }
    };

    let id = sys::random_hex(6);
    let run_dir = w.runs_dir().join(&id);
    let me = std::process::id();
    let rec = RunRecord {
        id: id.clone(),
        container_id: format!("berth-worker-{id}"),
        worker_pid: me,
        worker_start_time: sys::proc_start_time(me).unwrap_or(0),
        runtime_bin: w.runtime.bin.clone(),
        runtime_root: w.runtime.root.clone(),
        task_file: opts.task_file.clone(),
    };
    write_record(&w.runs_dir(), &rec)?;

    let result = async {
        let plan = prepare(w, opts, &task, &image, &rec, &run_dir)?;
        let bundle_dir = run_dir.join("bundle");
        std::fs::write(
            bundle_dir.join("config.json"),
            serde_json::to_vec_pretty(&bundle::config_json(&plan))?,
        )
        .context("writing config.json")?;
        let outcome = execute(w, opts, &rec, &bundle_dir, &mut sigint, &mut sigterm).await?;
        if outcome == Outcome::Exited(0) {
            // Outputs leave in host space, whoever wrote them: an unprivileged task's root
            // (host uid max on disk) becomes 0, so the next task, privileged or not, gets
            // them like any other input (Concourse streams volumes out the same way).
            let to = if opts.privileged {
                Shift::None
            } else {
                Shift::ToHost(userns::host_max_id()?)
            };
            copy_outputs(&task, opts, &run_dir, to).await?;
        }
        Ok::<_, anyhow::Error>(outcome)
    }
    .await;
    let cleanup = cleanup_run(w, &rec).await;
    match (result, cleanup) {
        (Ok(o), Ok(())) => Ok(o),
        (Ok(_), Err(c)) => Err(c.context("cleaning up after the task")),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(anyhow!("{e:#}\n(and cleaning up failed too: {c:#})")),
    }
}

/// `berth-worker check TASK --explain`: how this worker would run the task, as a plan. The id
/// mapping of unprivileged runs is probed exactly as a run probes it.
pub fn explain(
    work_dir: &Path,
    idmap: IdmapSetting,
    task_file: &Path,
    task: &TaskConfig,
    privileged: bool,
    step_name: &Option<String>,
) -> Result<String> {
    use std::fmt::Write;
    let mut o = String::new();
    let step = step_name.clone().unwrap_or_else(|| {
        task_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    });
    let workdir = work_dir_in_container(&step);
    let max = userns::host_max_id()?;
    writeln!(o, "task: {}", task_file.display())?;
    let mode = if privileged {
        writeln!(
            o,
            "privileges: privileged: host root, no user namespace, all capabilities, no seccomp"
        )?;
        writeln!(o, "ids: host space everywhere (nothing mapped)")?;
        None
    } else {
        writeln!(o, "privileges: unprivileged: user namespace (task root = host uid {max}, other ids unchanged), 14 capabilities, seccomp")?;
        let runs = work_dir.join("runs");
        mkdir(&runs)?;
        let (m, _ns) = userns::choose_mode(idmap, &runs)?;
        writeln!(o, "ids: {m}")?;
        Some(m)
    };
    let image = if let Some(ir) = &task.image_resource {
        format!(
            "image_resource {}:{}",
            ir.repository().unwrap_or_default(),
            ir.tag()
        )
    } else if let Some(u) = &task.rootfs_uri {
        format!("rootfs_uri {u}")
    } else {
        "from --image (none in the task file)".into()
    };
    let how_image = match &mode {
        None => "overlay over the image",
        Some(IdsMode::Idmapped) => "overlay over the image through idmapped layers (nothing copied)",
        Some(IdsMode::Shifted { .. }) => "overlay over the image's shifted copy (made once per image and cached: <work-dir>/images/<key>/rootfs-ns-<max>, or <work-dir>/shifted/ for a directory)",
    };
    writeln!(o, "rootfs: {image}: {how_image}")?;
    writeln!(o, "work dir: {workdir}")?;
    for i in &task.inputs {
        let how = match &mode {
            None => "overlay over -i DIR (DIR never written)",
            Some(IdsMode::Idmapped) => {
                "overlay over -i DIR through idmapped layers (DIR never written)"
            }
            Some(IdsMode::Shifted { .. }) => "shifted copy of -i DIR, per run (DIR never written)",
        };
        let at = match i.rel_path() {
            r if r.is_empty() => format!("{workdir} (the work dir itself)"),
            r => format!("{workdir}/{r}"),
        };
        writeln!(
            o,
            "input {}{}: {at}: {how}",
            i.name,
            if i.optional { " (optional)" } else { "" },
        )?;
    }
    for out in &task.outputs {
        writeln!(
            o,
            "output {}: {workdir}/{}: copied to -o DIR after success, in host space{}",
            out.name,
            out.mount_path().trim_matches('/'),
            if privileged {
                ""
            } else {
                " (task root's files become uid 0)"
            }
        )?;
    }
    for c in &task.caches {
        writeln!(
            o,
            "cache {}: kept in {} space, converted in place when the last run was {}",
            c.path,
            if privileged { "host" } else { "namespaced" },
            if privileged {
                "unprivileged"
            } else {
                "privileged"
            }
        )?;
    }
    Ok(o)
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

fn write_record(runs: &Path, rec: &RunRecord) -> Result<()> {
    std::fs::create_dir_all(runs).with_context(|| format!("creating {}", runs.display()))?;
    // Write the record in a hidden dir and rename it into place: a run directory without a
    // record never exists, so a sweep can always tell who owns it.
    let tmp = runs.join(format!(".{}", rec.id));
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::write(tmp.join("run.json"), serde_json::to_vec_pretty(rec)?)?;
    let dst = runs.join(&rec.id);
    std::fs::rename(&tmp, &dst).with_context(|| format!("creating {}", dst.display()))
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))
}

/// An overlay at `target` over the read-only `lower`, its upper/work dirs in `layer_dir`.
///
/// Unprivileged tasks get the overlay built from *idmapped layers* (Linux ≥ 5.19): the lower
/// dir and the upper/work dirs are first cloned as idmapped mounts through the task's user
/// namespace, so on-disk uid 0 reads as the task's root and files the task's root writes are
/// stored as uid 0. Nothing is chowned (Concourse chowns whole volume trees instead, its issue
/// #6538), and the image stays shareable between privileged and unprivileged runs. overlayfs
/// itself cannot be idmapped after the fact, hence idmapping the layers.
fn cow_mount(
    lower: &Path,
    layer_dir: &Path,
    target: &Path,
    userns: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    let rw = layer_dir.join("rw");
    for d in [&rw.join("upper"), &rw.join("work"), &target.to_path_buf()] {
        mkdir(d)?;
    }
    match userns {
        None => {
            // The overlay's root directory is the upper dir: give it the lower root's owner
            // and mode, or a shifted image's root would show as the host's root (an unmapped
            // id) to the task, which could then not create anything in `/`.
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let m = std::fs::metadata(lower).with_context(|| format!("{}", lower.display()))?;
            let upper = rw.join("upper");
            sys::lchown(&upper, m.uid(), m.gid())?;
            std::fs::set_permissions(&upper, std::fs::Permissions::from_mode(m.mode() & 0o7777))
                .with_context(|| format!("chmod {}", upper.display()))?;
            sys::mount_overlay(lower, &upper, &rw.join("work"), target)
        }
        Some(ns) => {
            let (lower_m, rw_m) = (
                layer_dir.join("lower-idmapped"),
                layer_dir.join("rw-idmapped"),
            );
            mkdir(&lower_m)?;
            mkdir(&rw_m)?;
            sys::idmap_mount(lower, &lower_m, ns)?;
            sys::idmap_mount(&rw, &rw_m, ns)?;
            let r = sys::mount_overlay(&lower_m, &rw_m.join("upper"), &rw_m.join("work"), target);
            // overlayfs keeps private clones of its layers: the attached copies can go now.
            sys::umount(&lower_m)?;
            sys::umount(&rw_m)?;
            r
        }
    }
}

/// Owner of the worker-made volumes: the task user, as seen from the host.
fn host_owner(map: Option<&[IdRange]>, uid: u32, gid: u32) -> (u32, u32) {
    match map {
        Some(m) => (
            userns::to_host(m, uid).unwrap_or(uid),
            userns::to_host(m, gid).unwrap_or(gid),
        ),
        None => (uid, gid),
    }
}

fn prepare(
    w: &Worker,
    opts: &RunOptions,
    task: &TaskConfig,
    image: &Image,
    rec: &RunRecord,
    run_dir: &Path,
) -> Result<ContainerPlan> {
    let step = opts.step_name.clone().unwrap_or_else(|| {
        opts.task_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    });
    let workdir = work_dir_in_container(&step);
    let max = userns::host_max_id()?;
    let idmap = if opts.privileged {
        None
    } else {
        Some(userns::concourse_mapping(max))
    };
    // Unprivileged tasks see host-space trees (image, inputs) through idmapped layers where
    // the kernel has them, else through uid-shifted copies (see shift.rs).
    let (mode, ns) = if opts.privileged {
        (None, None)
    } else {
        let (m, ns) = userns::choose_mode(w.idmap, &w.runs_dir())?;
        (Some(m), ns)
    };
    let mut header = vec![match &mode {
        None => "privileged (host root, no user namespace)".to_string(),
        Some(m) => format!("unprivileged (user namespace, task root = host uid {max}); ids: {m}"),
    }];

    // Process identity, from the image's own passwd/group files.
    let user_spec = if !task.run.user.is_empty() {
        task.run.user.as_str()
    } else {
        image.config.user.as_str()
    };
    let user = bundle::resolve_user(&image.rootfs, user_spec)?;
    let (own_uid, own_gid) = host_owner(idmap.as_deref(), user.uid, user.gid);

    // Root filesystem: copy-on-write over the image (or over its shifted copy).
    let rootfs = run_dir.join("rootfs");
    let rootfs_layers = run_dir.join("layers/rootfs");
    let mut shifted_image = matches!(mode, Some(IdsMode::Shifted { .. }));
    if mode == Some(IdsMode::Idmapped) {
        match cow_mount(&image.rootfs, &rootfs_layers, &rootfs, ns.as_ref()) {
            Ok(()) => {}
            // The kernel has idmapped layers, but the image's filesystem cannot be idmapped
            // (ramfs, NFS, tmpfs before 6.3…): this image gets a shifted copy instead.
            Err(e) if sys::is_idmap_unsupported(&e) => {
                sys::umount_all_under(&rootfs_layers)?;
                header.push(format!(
                    "image: its filesystem cannot be idmapped ({e:#}); using a shifted copy"
                ));
                shifted_image = true;
            }
            Err(e) => return Err(e.context("preparing the task's root filesystem")),
        }
    }
    if shifted_image {
        let t = std::time::Instant::now();
        let (lower, made) = Store::new(&w.work_dir)
            .shifted_rootfs(image, max)
            .context("preparing the image for an unprivileged task")?;
        header.push(if made {
            format!(
                "image: made its shifted copy in {:.1}s: {}",
                t.elapsed().as_secs_f64(),
                lower.display()
            )
        } else {
            format!("image: shifted copy {}", lower.display())
        });
        cow_mount(&lower, &rootfs_layers, &rootfs, None)
            .context("preparing the task's root filesystem")?;
    } else if mode.is_none() {
        cow_mount(&image.rootfs, &rootfs_layers, &rootfs, None)
            .context("preparing the task's root filesystem")?;
    }

    let mut binds: Vec<Bind> = Vec::new();
    let vol = run_dir.join("vol");
    let new_volume = |name: &str| -> Result<PathBuf> {
        let p = vol.join(name);
        mkdir(&p)?;
        sys::lchown(&p, own_uid, own_gid)?;
        Ok(p)
    };
    binds.push(Bind {
        source: new_volume("workdir")?,
        dest: workdir.clone(),
        readonly: false,
    });
    binds.push(Bind {
        source: new_volume("scratch")?,
        dest: "/scratch".into(),
        readonly: false,
    });

    // Inputs: copy-on-write over the caller's directory, which is only ever a lower layer.
    let mut input_mounts: Vec<(String, PathBuf)> = Vec::new();
    for (i, inp) in task.inputs.iter().enumerate() {
        let src = opts
            .inputs
            .iter()
            .find(|(n, _)| n == &inp.name)
            .map(|(_, p)| p.clone());
        let Some(src) = src else {
            if inp.optional {
                continue;
            }
            bail!(
                "inputs[{i}] ({}): missing input; pass -i {}=DIR",
                inp.name,
                inp.name
            );
        };
        let src = std::fs::canonicalize(&src)
            .with_context(|| format!("-i {}={}", inp.name, src.display()))?;
        if !src.is_dir() {
            bail!("-i {}={}: not a directory", inp.name, src.display());
        }
        let target = run_dir.join(format!("inputs/{i}"));
        let layers = run_dir.join(format!("layers/in-{i}"));
        // fly uploads a git work tree without its ignored paths and `.git` (see fly.rs).
        let hidden = if opts.include_ignored {
            Vec::new()
        } else {
            crate::fly::ignored_paths(&src).unwrap_or_default()
        };
        if !hidden.is_empty() {
            header.push(format!(
                "input {}: left out what git ignores and .git ({} entries; --include-ignored keeps them)",
                inp.name,
                hidden.len()
            ));
        }
        let shifted = match &mode {
            Some(IdsMode::Shifted { .. }) => true,
            _ => match crate::fly::whiteout(&src, &layers.join("rw/upper"), &hidden)
                .and_then(|_| cow_mount(&src, &layers, &target, ns.as_ref()))
            {
                Ok(()) => false,
                Err(e) if sys::is_idmap_unsupported(&e) => {
                    sys::umount_all_under(&layers)?;
                    header.push(format!(
                        "input {}: its filesystem cannot be idmapped ({e:#}); using a shifted copy",
                        inp.name
                    ));
                    true
                }
                Err(e) => return Err(e.context(format!("mounting input {}", inp.name))),
            },
        };
        if shifted {
            // The run's own shifted copy: writable, and the caller's dir is only read.
            mkdir(&run_dir.join("inputs"))?;
            shift::copy_tree(&src, &target, Shift::ToNs(max))
                .with_context(|| format!("copying input {} (shifted)", inp.name))?;
            crate::fly::remove_paths(&target, &hidden)?;
        }
        // `path: .` is the work dir itself: mounted over the work dir volume.
        let dest = match inp.rel_path() {
            r if r.is_empty() => workdir.clone(),
            r => format!("{workdir}/{r}"),
        };
        binds.push(Bind {
            source: target.clone(),
            dest: dest.clone(),
            readonly: false,
        });
        input_mounts.push((dest, target));
    }
    // Outputs: fresh volumes, unless an input sits at the same path (then it is the output).
    for (i, out) in task.outputs.iter().enumerate() {
        let dest = format!("{workdir}/{}", out.mount_path().trim_matches('/'));
        if input_mounts.iter().any(|(d, _)| d == &dest) {
            continue;
        }
        binds.push(Bind {
            source: new_volume(&format!("out-{i}"))?,
            dest,
            readonly: false,
        });
    }
    // Caches: persistent per (task file, cache path).
    let task_key =
        std::fs::canonicalize(&opts.task_file).unwrap_or_else(|_| opts.task_file.clone());
    for c in &task.caches {
        let dest = if c.path.starts_with('/') {
            c.path.clone()
        } else {
            format!("{workdir}/{}", c.path.trim_matches('/'))
        };
        let key = Sha256::digest(format!("{}\0{}", task_key.display(), c.path).as_bytes());
        let dir = w.work_dir.join("caches").join(
            key.iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
        if !dir.exists() {
            mkdir(&dir)?;
            sys::lchown(&dir, own_uid, own_gid)?;
        }
        // A cache lives in the id space of the runs that use it: converted (in place, once)
        // when it crosses between privileged and unprivileged runs.
        if let Some(how) = cache_to_space(&dir, !opts.privileged, max)? {
            header.push(format!("cache {}: {how}", c.path));
        }
        binds.push(Bind {
            source: dir,
            dest,
            readonly: false,
        });
    }
    // Parents before children, so a nested mount lands on top of its parent volume.
    binds.sort_by_key(|b| b.dest.matches('/').count());

    // /etc files and init.
    let etc = run_dir.join("etc");
    mkdir(&etc)?;
    let hostname = format!("berth-{}", &rec.id[..8.min(rec.id.len())]);
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // Bridge and host tasks resolve through the worker's DNS proxy (its address: the bridge
    // gateway, or a loopback address the host-network task shares); `none` has no network.
    let resolv = match dns_proxy_addr(opts) {
        Some(a) => net::proxied_resolv_conf(&host_resolv, a.ip()),
        None => bundle::resolv_conf(&host_resolv),
    };
    std::fs::write(etc.join("resolv.conf"), resolv)?;
    // The task's own address replaces 127.0.1.1 once the bridge plugin has given it one.
    std::fs::write(etc.join("hosts"), net::hosts(None, &hostname))?;
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))?;
    let (root_uid, root_gid) = host_owner(idmap.as_deref(), 0, 0);
    for f in ["resolv.conf", "hosts", "hostname"] {
        sys::lchown(&etc.join(f), root_uid, root_gid)?;
        binds.push(Bind {
            source: etc.join(f),
            dest: format!("/etc/{f}"),
            readonly: false,
        });
    }
    binds.push(Bind {
        source: install_init(&w.work_dir)?,
        dest: INIT_IN_CONTAINER.into(),
        readonly: true,
    });
    mkdir(&run_dir.join("bundle"))?;

    // Environment: image env, params (file then -p), PATH default, USER/HOME.
    let mut env: Vec<String> = image.config.env.clone();
    let mut set = |k: &str, v: &str| {
        env.retain(|e| e.split('=').next() != Some(k));
        env.push(format!("{k}={v}"));
    };
    for (k, v) in task.params.iter().chain(opts.params.iter()) {
        set(k, v);
    }
    if !task.run.user.is_empty() {
        set("USER", &user.name);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            if user.home.is_empty() {
                "/"
            } else {
                &user.home
            }
        ));
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(bundle::default_path(user.uid).to_string());
    }

    // argv: an empty run.path means the image's entrypoint (else cmd); task args are appended.
    let mut argv = vec![INIT_IN_CONTAINER.to_string()];
    if task.run.path.is_empty() {
        let base = if !image.config.entrypoint.is_empty() {
            image
                .config
                .entrypoint
                .iter()
                .chain(if task.run.args.is_empty() {
                    image.config.cmd.iter()
                } else {
                    [].iter()
                })
                .cloned()
                .collect::<Vec<_>>()
        } else {
            image.config.cmd.clone()
        };
        if base.is_empty() {
            bail!(
                "{}: run.path: required (the image has no entrypoint or cmd)",
                opts.task_file.display()
            );
        }
        argv.extend(base);
    } else {
        argv.push(task.run.path.clone());
    }
    argv.extend(task.run.args.iter().cloned());

    let seccomp = if opts.privileged {
        None
    } else {
        find_seccomp(w, opts)?
    };
    let cwd = resolve_dir(&workdir, &task.run.dir);
    if let Some(made) = make_run_dir(&binds, &rootfs, &cwd, own_uid, own_gid)
        .with_context(|| format!("run.dir {:?}: creating {cwd}", task.run.dir))?
    {
        header.push(format!("run.dir: created {made} (owned by the task user)"));
    }
    if opts.verbose || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        for l in &header {
            eprintln!("berth-worker: run {}: {l}", rec.id);
        }
    }
    Ok(ContainerPlan {
        rootfs,
        args: argv,
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids,
        hostname,
        binds,
        privileged: opts.privileged,
        idmap,
        limits: task.container_limits,
        memsw: Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
        cgroups_path: format!("/berth-worker/{}", rec.container_id),
        seccomp,
        annotations: opts.annotations.clone(),
        network: opts.network,
        cap_mask: bundle::held_caps(),
    })
}

/// Create the task's working directory if it is missing, as Concourse does (its containerd
/// backend's `SetupCwd` makes it with `MkdirAll`; runc makes a missing `process.cwd` too, berth
/// does not). It is made inside the volume that will be mounted there (the deepest bind whose
/// destination contains it), else in the task's rootfs, owned by the task user as seen from the
/// host (the volumes' views are in host space: idmapped layers and shifted copies alike).
/// Nothing is created through a symlink (the runtime's own chdir then decides, inside the
/// container); a file in the way is an error. Returns the directory made, if any.
fn make_run_dir(
    binds: &[Bind],
    rootfs: &Path,
    cwd: &str,
    uid: u32,
    gid: u32,
) -> Result<Option<String>> {
    let cwd_p = Path::new(cwd);
    if cwd_p
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Ok(None); // an absolute run.dir with `..`: left to the runtime
    }
    let (base, rel) = binds
        .iter()
        .filter(|b| !b.readonly && cwd_p.starts_with(&b.dest))
        .max_by_key(|b| Path::new(&b.dest).components().count())
        .map(|b| {
            (
                b.source.clone(),
                cwd_p.strip_prefix(&b.dest).unwrap_or(cwd_p),
            )
        })
        .unwrap_or_else(|| {
            (
                rootfs.to_path_buf(),
                cwd_p.strip_prefix("/").unwrap_or(cwd_p),
            )
        });
    let mut p = base;
    let mut made = None;
    for (n, c) in rel.components().enumerate() {
        let std::path::Component::Normal(c) = c else {
            continue;
        };
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => continue,
            Ok(m) if m.file_type().is_symlink() => return Ok(None),
            Ok(_) => {
                let depth = Path::new(cwd).components().count() - rel.components().count() + n + 1;
                let inside: PathBuf = Path::new(cwd).components().take(depth).collect();
                bail!("{} is not a directory", inside.display());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&p).with_context(|| format!("creating {}", p.display()))?;
                sys::lchown(&p, uid, gid)?;
                made.get_or_insert(());
            }
            Err(e) => return Err(e).with_context(|| format!("{}", p.display())),
        }
    }
    Ok(made.map(|()| cwd.to_string()))
}

/// The id space a cache's files are in, recorded next to it in `<cache>.ids`.
fn cache_space_file(dir: &Path) -> PathBuf {
    let mut f = dir.as_os_str().to_owned();
    f.push(".ids");
    PathBuf::from(f)
}

/// Bring the cache `dir` into the namespaced space (`ns`) or host space, chowning it in place
/// if it was last used by the other kind of run. Returns what was done, if anything.
///
/// A cache without a record (made before records existed) is in the space its top directory's
/// owner says: namespaced when that is `max`. The record is written after the conversion, and
/// the conversion is idempotent, so a crash in between is repaired by the next run.
fn cache_to_space(dir: &Path, ns: bool, max: u32) -> Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let rec = cache_space_file(dir);
    let want = if ns {
        format!("ns-{max}")
    } else {
        "host".into()
    };
    let have = match std::fs::read_to_string(&rec) {
        Ok(s) => s.trim().to_string(),
        Err(_) => {
            let m = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
            if m.uid() == max {
                format!("ns-{max}")
            } else {
                "host".into()
            }
        }
    };
    let mut done = None;
    if have != want {
        let t = std::time::Instant::now();
        let n = if ns {
            shift::shift_in_place(dir, Shift::ToNs(max))?
        } else {
            // From whatever namespaced space it was in.
            let from = have
                .strip_prefix("ns-")
                .and_then(|m| m.parse().ok())
                .unwrap_or(max);
            shift::shift_in_place(dir, Shift::ToHost(from))?
        };
        done = Some(format!(
            "converted from {have} to {want} space ({n} entries, {:.2}s)",
            t.elapsed().as_secs_f64()
        ));
    }
    if have != want || !rec.exists() {
        let tmp = cache_space_file(&dir.with_extension(format!("tmp-{}", sys::random_hex(4))));
        std::fs::write(&tmp, format!("{want}\n"))
            .and_then(|()| std::fs::rename(&tmp, &rec))
            .with_context(|| format!("writing {}", rec.display()))?;
    }
    Ok(done)
}

/// Write berth-init into `<work-dir>/bin` (once per content).
fn install_init(work_dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = work_dir.join("bin");
    let p = dir.join("berth-init");
    if std::fs::read(&p).ok().as_deref() != Some(INIT_BIN) {
        mkdir(&dir)?;
        let tmp = dir.join(format!(".berth-init-{}", sys::random_hex(4)));
        std::fs::write(&tmp, INIT_BIN).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &p)?;
    }
    Ok(p)
}

/// The seccomp profile for unprivileged tasks: `--seccomp-profile`/`BERTH_SECCOMP_PROFILE`, else
/// berth's `profiles/default.json` (next to an installed or in-tree build), else the
/// `linux.seccomp` of `<runtime> spec --seccomp default` (berth writes its default there), else none.
fn find_seccomp(w: &Worker, opts: &RunOptions) -> Result<Option<serde_json::Value>> {
    if let Some(p) = &opts.seccomp_profile {
        return bundle::load_seccomp(p).map(Some);
    }
    for c in default_profile_candidates() {
        if c.is_file() {
            return bundle::load_seccomp(&c).map(Some);
        }
    }
    let tmp = w
        .work_dir
        .join("runs")
        .join(format!(".spec-{}", sys::random_hex(4)));
    mkdir(&tmp)?;
    let out = std::process::Command::new(&w.runtime.bin)
        .args(["spec", "--seccomp", "default"])
        .arg("--bundle")
        .arg(&tmp)
        .output();
    let prof = (|| {
        out.ok().filter(|o| o.status.success())?;
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.join("config.json")).ok()?).ok()?;
        v["linux"].get("seccomp").cloned()
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    if prof.is_none() {
        eprintln!("berth-worker: warning: no seccomp profile found (looked for --seccomp-profile, BERTH_SECCOMP_PROFILE, profiles/default.json, `{} spec --seccomp default`); running without seccomp", w.runtime.bin.display());
    }
    Ok(prof)
}

/// Where berth's default profile lives relative to the worker binary.
pub fn default_profile_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        v.push(dir.join("../../profiles/default.json")); // in-tree: target/{debug,release}/
        v.push(dir.join("../share/berth/profiles/default.json")); // installed: PREFIX/bin/
    }
    v.push(PathBuf::from("/usr/share/berth/profiles/default.json"));
    v
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
    let pid = rt.create(id, bundle_dir, out_w, err_w).await?;
    // The runtime has exited; our pipe write ends are closed, only the container holds them now.
    let mut waiter = tokio::task::spawn_blocking(move || sys::wait_pid(pid));
    // Between create and start: the task's namespace exists, its process has not run yet.
    let run_dir = w.runs_dir().join(&rec.id);
    if opts.network == Network::Bridge {
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
    }
    let _dns = match dns_proxy_addr(opts) {
        Some(addr) => Some(start_dns_proxy(opts, addr)?),
        None => None,
    };
    rt.start(id).await?;

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

async fn copy_outputs(
    task: &TaskConfig,
    opts: &RunOptions,
    run_dir: &Path,
    to: Shift,
) -> Result<()> {
    for (name, dst) in &opts.outputs {
        let (i, out) = task
            .outputs
            .iter()
            .enumerate()
            .find(|(_, o)| &o.name == name)
            .expect("checked at start");
        // An output at an input's path is that input's copy-on-write view.
        let src = match task.inputs.iter().position(|inp| {
            inp.mount_path().trim_matches('/') == out.mount_path().trim_matches('/')
        }) {
            Some(j) if run_dir.join(format!("inputs/{j}")).exists() => {
                run_dir.join(format!("inputs/{j}"))
            }
            _ => run_dir.join(format!("vol/out-{i}")),
        };
        mkdir(dst)?;
        // Like `cp -a src/. dst` (owners, modes, links, xattrs, times), shifting owners to
        // host space.
        let (s2, d2) = (src.clone(), dst.clone());
        tokio::task::spawn_blocking(move || shift::copy_tree(&s2, &d2, to))
            .await
            .context("copying the output")?
            .with_context(|| format!("-o {name}={}: copying the output", dst.display()))?;
    }
    Ok(())
}

/// Remove everything a run made: the container (`<runtime> delete --force`), every mount under
/// its directory, the directory, and the empty `berth-worker` cgroup parents. Idempotent.
pub async fn cleanup_run(w: &Worker, rec: &RunRecord) -> Result<()> {
    let run_dir = w.runs_dir().join(&rec.id);
    let rt = Runtime {
        bin: if rec.runtime_bin.exists() {
            rec.runtime_bin.clone()
        } else {
            w.runtime.bin.clone()
        },
        root: rec.runtime_root.clone(),
    };
    // CNI DEL for every plugin, whatever state the run died in (it is a no-op without one),
    // alongside the runtime's delete: our bind mount holds the namespace, so DEL does not
    // need the container, and the two are the bulk of a bridge task's cleanup.
    let (del, net_del) = tokio::join!(rt.delete(&rec.container_id), net::detach(&run_dir));
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
    del.and(net_del)
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
        let Ok(data) = std::fs::read(e.path().join("run.json")) else {
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
        cleanup_run(w, &rec)
            .await
            .with_context(|| format!("cleaning up stale run {}", rec.id))?;
        done.push(rec.id);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concourse_work_dir() {
        // printf one-off | sha256sum → b1dda4c3…
        assert_eq!(work_dir_in_container("one-off"), "/tmp/build/b1dda4c3");
        assert_eq!(work_dir_in_container("x").len(), "/tmp/build/".len() + 8);
    }

    #[test]
    fn run_dir_resolution() {
        assert_eq!(resolve_dir("/tmp/build/1", ""), "/tmp/build/1");
        assert_eq!(
            resolve_dir("/tmp/build/1", "src/sub"),
            "/tmp/build/1/src/sub"
        );
        assert_eq!(resolve_dir("/tmp/build/1", "../../etc"), "/tmp/build/1/etc");
        assert_eq!(resolve_dir("/tmp/build/1", "/abs"), "/abs");
    }
}
