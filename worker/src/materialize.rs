//! Carry out a [`TaskPlan`]: mount the overlays, make the volumes, write the /etc files and
//! berth-init, and turn the plan into the bundle's [`ContainerPlan`]. Nothing is decided here
//! that the plan did not say, except the one thing only a mount can tell: a filesystem that
//! cannot be idmapped gets a shifted copy (and the run header says so).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bundle::{self, Bind, ContainerPlan};
use crate::image::{Image, Store};
use crate::plan::{How, TaskPlan};
use crate::run::{RunOptions, Worker};
use crate::shift::{self, Shift};
use crate::sys;

/// The berth-init binary, compiled by build.rs.
static INIT_BIN: &[u8] = include_bytes!(env!("BERTH_INIT_BIN"));

pub fn mkdir(p: &Path) -> Result<()> {
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
pub fn cow_mount(
    lower: &Path,
    layer_dir: &Path,
    target: &Path,
    userns: Option<&std::os::fd::OwnedFd>,
) -> Result<()> {
    cow_mount_with(lower, layer_dir, target, userns, "")
}

/// [`cow_mount`] with `extra` overlay mount options.
fn cow_mount_with(
    lower: &Path,
    layer_dir: &Path,
    target: &Path,
    userns: Option<&std::os::fd::OwnedFd>,
    extra: &str,
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
            sys::mount_overlay(lower, &upper, &rw.join("work"), target, extra)
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
            let r = sys::mount_overlay(
                &lower_m,
                &rw_m.join("upper"),
                &rw_m.join("work"),
                target,
                extra,
            );
            // overlayfs keeps private clones of its layers: the attached copies can go now.
            sys::umount(&lower_m)?;
            sys::umount(&rw_m)?;
            r
        }
    }
}

/// Make everything the plan names under its run directory and return the container's plan.
/// `ns` is the user namespace for idmapped layers (when the plan uses them); `header`
/// collects what the run header reports.
pub fn materialize(
    w: &Worker,
    opts: &RunOptions,
    plan: &TaskPlan,
    image: &Image,
    ns: Option<&std::os::fd::OwnedFd>,
    header: &mut Vec<String>,
    leases: &mut Vec<crate::cache::Lease>,
) -> Result<ContainerPlan> {
    let run = plan.layout();
    let max = plan.host_max;

    // Root filesystem: copy-on-write over the image (or over its shifted copy).
    let r = &plan.rootfs;
    let mut shifted_image = r.how == How::OverlayOverShiftedCopy;
    if r.how == How::IdmappedOverlay {
        match cow_mount(&r.image, &r.layers, &r.target, ns) {
            Ok(()) => {}
            // The kernel has idmapped layers, but the image's filesystem cannot be idmapped
            // (ramfs, NFS, tmpfs before 6.3…): this image gets a shifted copy instead.
            Err(e) if sys::is_idmap_unsupported(&e) => {
                sys::umount_all_under(&r.layers)?;
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
        cow_mount(&lower, &r.layers, &r.target, None)
            .context("preparing the task's root filesystem")?;
    } else if r.how == How::Overlay {
        cow_mount(&r.image, &r.layers, &r.target, None)
            .context("preparing the task's root filesystem")?;
    }

    let (own_uid, own_gid) = plan.volume_owner;
    let new_volume = |p: &Path| -> Result<()> {
        mkdir(p)?;
        sys::lchown(p, own_uid, own_gid)
    };
    new_volume(&run.workdir_volume())?;
    new_volume(&run.scratch_volume())?;

    // Inputs: copy-on-write over the caller's directory, which is only ever a lower layer.
    for inp in &plan.inputs {
        // fly uploads a git work tree without its ignored paths and `.git` (see fly.rs).
        let hidden = if opts.include_ignored {
            Vec::new()
        } else {
            crate::fly::ignored_paths(&inp.from).unwrap_or_default()
        };
        if !hidden.is_empty() {
            header.push(format!(
                "input {}: left out what git ignores and .git ({} entries; --include-ignored keeps them)",
                inp.name,
                hidden.len()
            ));
        }
        let shifted = match inp.how {
            How::ShiftedCopy => true,
            _ => {
                let userns = if inp.how == How::IdmappedOverlay {
                    ns
                } else {
                    None
                };
                match crate::fly::whiteout(&inp.from, &inp.layers.join("rw/upper"), &hidden)
                    .and_then(|_| cow_mount(&inp.from, &inp.layers, &inp.view, userns))
                {
                    Ok(()) => false,
                    Err(e) if sys::is_idmap_unsupported(&e) => {
                        sys::umount_all_under(&inp.layers)?;
                        header.push(format!(
                        "input {}: its filesystem cannot be idmapped ({e:#}); using a shifted copy",
                        inp.name
                    ));
                        true
                    }
                    Err(e) => return Err(e.context(format!("mounting input {}", inp.name))),
                }
            }
        };
        if shifted {
            // The run's own shifted copy: writable, and the caller's dir is only read.
            mkdir(&run.inputs())?;
            shift::copy_tree(&inp.from, &inp.view, Shift::ToNs(max))
                .with_context(|| format!("copying input {} (shifted)", inp.name))?;
            crate::fly::remove_paths(&inp.view, &hidden)?;
        }
    }
    // Outputs: fresh volumes, unless an input sits at the same path (then it is the output).
    for out in plan.outputs.iter().filter(|o| o.input.is_none()) {
        new_volume(&out.source)?;
    }
    // Caches: a copy-on-write view of the current generation, kept in the id space of the
    // runs that use it (a plain overlay: no idmapping needed, in both id modes).
    let run_id = run
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    for c in &plan.caches {
        let (lease, note) =
            crate::cache::acquire(c, run_id.as_deref().unwrap_or("run"), (own_uid, own_gid))?;
        if let Some(n) = note {
            header.push(format!("cache {}: {n}", c.path));
        }
        cow_mount_with(
            &lease.lower,
            &c.layers,
            &c.view,
            None,
            crate::cache::OVERLAY_OPTIONS,
        )
        .with_context(|| format!("mounting cache {}", c.path))?;
        leases.push(lease);
    }

    // /etc files and init.
    let etc = run.etc();
    mkdir(&etc)?;
    for (f, content) in [
        ("resolv.conf", plan.etc.resolv_conf.clone()),
        ("hosts", plan.etc.hosts.clone()),
        ("hostname", format!("{}\n", plan.etc.hostname)),
    ] {
        std::fs::write(etc.join(f), content)
            .with_context(|| format!("writing {}", etc.join(f).display()))?;
        sys::lchown(&etc.join(f), plan.etc.owner.0, plan.etc.owner.1)?;
    }
    install_init(&plan.init)?;
    let binds: Vec<Bind> = plan
        .binds
        .iter()
        .map(|b| Bind {
            source: b.source.clone(),
            dest: b.dest.clone(),
            readonly: b.readonly,
        })
        .collect();
    if let Some(made) = make_run_dir(&binds, &r.target, &plan.cwd, own_uid, own_gid)
        .with_context(|| format!("run.dir {:?}: creating {}", plan.run_dir_field, plan.cwd))?
    {
        header.push(format!("run.dir: created {made} (owned by the task user)"));
    }
    mkdir(&run.bundle())?;

    let seccomp = if plan.privileged {
        None
    } else {
        find_seccomp(w, opts)?
    };
    Ok(ContainerPlan {
        rootfs: r.target.clone(),
        args: plan.argv.clone(),
        env: plan.env.clone(),
        cwd: plan.cwd.clone(),
        uid: plan.user.uid,
        gid: plan.user.gid,
        additional_gids: plan.user.additional_gids.clone(),
        hostname: plan.etc.hostname.clone(),
        binds,
        privileged: plan.privileged,
        idmap: plan.id_map.clone(),
        limits: plan.limits,
        memsw: Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
        cgroups_path: format!("/berth-worker/{}", plan.container_id),
        seccomp,
        annotations: opts.annotations.clone(),
        network: plan.network,
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

/// Write berth-init to `p` (once per content).
fn install_init(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read(p).ok().as_deref() != Some(INIT_BIN) {
        let dir = p.parent().expect("init path has a parent");
        mkdir(dir)?;
        let tmp = dir.join(format!(".berth-init-{}", sys::random_hex(4)));
        std::fs::write(&tmp, INIT_BIN).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, p)?;
    }
    Ok(())
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
