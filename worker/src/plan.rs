//! A task run as a plain value: everything `berth-worker run` will mount, bind, copy and
//! execute, decided before anything is made. [`TaskPlan::build`] is pure (its inputs are
//! gathered beforehand by `run::gather`, which only reads); `materialize.rs` carries the plan
//! out; `berth-worker check --plan` prints it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bundle::{self, Network, ResolvedUser};
use crate::image::ImageConfig;
use crate::layout::{RunLayout, WorkLayout};
use crate::task::TaskConfig;
use crate::userns::{self, IdRange, IdsMode};

/// Where berth-init is mounted inside the container (Concourse mounts its init at /tmp/gdn-init).
pub const INIT_IN_CONTAINER: &str = "/tmp/berth-init";

/// Which id space the task runs in and how host-space trees reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Ids {
    /// Privileged: host root, no user namespace, every tree as it is on disk.
    Host,
    /// Unprivileged, trees seen through idmapped overlay layers (nothing copied).
    Idmapped,
    /// Unprivileged, trees copied with every owner shifted (`why`: why not idmapped).
    Shifted { why: String },
}

/// How one tree is provided to the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// Overlay over the tree as it is on disk.
    Overlay,
    /// Overlay built from idmapped layers; a tree whose filesystem cannot be idmapped falls
    /// back to a shifted copy (the run header says so).
    IdmappedOverlay,
    /// Overlay over the image's shifted copy (made once per image, cached).
    OverlayOverShiftedCopy,
    /// A shifted copy per run.
    ShiftedCopy,
}

/// The task's root filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct RootfsPlan {
    /// The image's rootfs directory (host space).
    pub image: PathBuf,
    pub how: How,
    /// Where the overlay is mounted (config.json's root.path).
    pub target: PathBuf,
    pub layers: PathBuf,
}

/// An input: the caller's directory, never written.
#[derive(Debug, Clone, Serialize)]
pub struct InputPlan {
    pub name: String,
    pub index: usize,
    pub from: PathBuf,
    pub how: How,
    /// The run's view of it (bind source).
    pub view: PathBuf,
    pub layers: PathBuf,
    pub dest: String,
}

/// Who owns what an output copy writes into `-o DIR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputOwner {
    pub uid: u32,
    pub gid: u32,
    /// Where the owner comes from: `the directory` or `SUDO_UID/SUDO_GID` or `the worker`.
    pub from: String,
    /// A root owner keeps every file's host-space owner (as a root `tar x` does); any other
    /// owner gets every file (as a `tar x` by that user does, which is what fly does).
    pub keep_ids: bool,
}

/// One `-o NAME=DIR`, checked before the task runs.
#[derive(Debug, Clone, Serialize)]
pub struct OutputTarget {
    pub dir: PathBuf,
    /// Directories berth-worker creates (outermost first), owned by `owner`.
    pub create: Vec<PathBuf>,
    pub owner: OutputOwner,
}

/// An output of the task.
#[derive(Debug, Clone, Serialize)]
pub struct OutputPlan {
    pub name: String,
    pub dest: String,
    /// What is copied out: a fresh volume, or the copy-on-write view of the input at the same
    /// path.
    pub source: PathBuf,
    /// The input it shares its path with, if any.
    pub input: Option<String>,
    pub target: Option<OutputTarget>,
}

/// A task cache.
#[derive(Debug, Clone, Serialize)]
pub struct CachePlan {
    pub path: String,
    pub dest: String,
    /// `<work-dir>/caches/<key>`: sha256 of (task file, cache path).
    pub dir: PathBuf,
    /// The id space it must be in for this run: `host` or `ns-<max>`.
    pub space: String,
    /// The run's copy-on-write view of it.
    pub view: PathBuf,
    pub layers: PathBuf,
    /// What the container gets (bind source).
    pub source: PathBuf,
}

/// One bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindPlan {
    pub source: PathBuf,
    pub dest: String,
    pub readonly: bool,
}

/// `/etc` files the worker writes for the task.
#[derive(Debug, Clone, Serialize)]
pub struct EtcPlan {
    pub hostname: String,
    pub resolv_conf: String,
    pub hosts: String,
    /// Host owner of the files (the task's root).
    pub owner: (u32, u32),
}

/// Everything a run does, as data.
#[derive(Debug, Clone, Serialize)]
pub struct TaskPlan {
    pub task_file: PathBuf,
    pub run_dir: PathBuf,
    pub container_id: String,
    pub privileged: bool,
    pub ids: Ids,
    /// The host's highest id: where an unprivileged task's root lands.
    pub host_max: u32,
    /// The task's user namespace (unprivileged).
    #[serde(skip)]
    pub id_map: Option<Vec<IdRange>>,
    pub user: UserPlan,
    /// Host owner of the fresh volumes (work dir, outputs, /scratch): the task user.
    pub volume_owner: (u32, u32),
    pub workdir: String,
    pub cwd: String,
    /// `run.dir` as the task file says it (made when missing, as Concourse does).
    pub run_dir_field: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub rootfs: RootfsPlan,
    pub inputs: Vec<InputPlan>,
    pub outputs: Vec<OutputPlan>,
    pub caches: Vec<CachePlan>,
    pub etc: EtcPlan,
    pub init: PathBuf,
    /// Every bind mount, parents before children.
    pub binds: Vec<BindPlan>,
    pub network: Network,
    /// `container_limits`: cpu shares and memory bytes.
    pub cpu_shares: Option<u64>,
    pub memory: Option<u64>,
    #[serde(skip)]
    pub limits: crate::task::ContainerLimits,
}

/// The task's process identity.
#[derive(Debug, Clone, Serialize)]
pub struct UserPlan {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub name: String,
    pub home: String,
}

/// What [`TaskPlan::build`] decides from: all read beforehand, nothing made.
pub struct PlanInput<'a> {
    pub task_file: &'a Path,
    pub task: &'a TaskConfig,
    pub work: &'a WorkLayout,
    pub run_id: &'a str,
    pub step_name: &'a str,
    /// The image's rootfs directory and config.
    pub image_rootfs: &'a Path,
    pub image_config: &'a ImageConfig,
    pub user: ResolvedUser,
    /// `None`: privileged.
    pub mode: Option<IdsMode>,
    pub host_max: u32,
    /// `-i NAME=DIR`, directories canonicalized and checked.
    pub inputs: &'a [(String, PathBuf)],
    /// `-o NAME=DIR`, checked creatable.
    pub outputs: &'a [(String, OutputTarget)],
    pub params: &'a [(String, String)],
    /// Canonical task file path: the cache key.
    pub task_key: &'a Path,
    pub host_resolv: &'a str,
    /// Where the task's DNS proxy listens, if it has one.
    pub dns: Option<std::net::IpAddr>,
    pub network: Network,
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

/// The step name: `--name`, else the task file's name without extension.
pub fn step_name(task_file: &Path, name: Option<&str>) -> String {
    name.map(str::to_string).unwrap_or_else(|| {
        task_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "task".into())
    })
}

/// The cache key of (task file, cache path): 32 hex digits.
pub fn cache_key(task_key: &Path, path: &str) -> String {
    Sha256::digest(format!("{}\0{}", task_key.display(), path).as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id space name of a run: `host`, or `ns-<max>`.
pub fn space_name(privileged: bool, max: u32) -> String {
    if privileged {
        "host".into()
    } else {
        format!("ns-{max}")
    }
}

impl TaskPlan {
    /// Decide the whole run. Pure: no file is read or written.
    pub fn build(p: PlanInput<'_>) -> Result<TaskPlan> {
        let run = p.work.run(p.run_id);
        let privileged = p.mode.is_none();
        let max = p.host_max;
        let id_map = (!privileged).then(|| userns::concourse_mapping(max));
        let host_owner = |uid: u32, gid: u32| match &id_map {
            Some(m) => (
                userns::to_host(m, uid).unwrap_or(uid),
                userns::to_host(m, gid).unwrap_or(gid),
            ),
            None => (uid, gid),
        };
        let ids = match &p.mode {
            None => Ids::Host,
            Some(IdsMode::Idmapped) => Ids::Idmapped,
            Some(IdsMode::Shifted { why }) => Ids::Shifted { why: why.clone() },
        };
        let (image_how, input_how) = match ids {
            Ids::Host => (How::Overlay, How::Overlay),
            Ids::Idmapped => (How::IdmappedOverlay, How::IdmappedOverlay),
            Ids::Shifted { .. } => (How::OverlayOverShiftedCopy, How::ShiftedCopy),
        };
        let workdir = work_dir_in_container(p.step_name);
        let in_workdir = |path: &str| format!("{workdir}/{}", path.trim_matches('/'));

        let mut inputs = Vec::new();
        for (i, inp) in p.task.inputs.iter().enumerate() {
            let Some((_, from)) = p.inputs.iter().find(|(n, _)| n == &inp.name) else {
                if inp.optional {
                    continue;
                }
                bail!(
                    "inputs[{i}] ({}): missing input; pass -i {}=DIR",
                    inp.name,
                    inp.name
                );
            };
            inputs.push(InputPlan {
                name: inp.name.clone(),
                index: i,
                from: from.clone(),
                how: input_how,
                view: run.input(i),
                layers: run.input_layers(i),
                // `path: .` is the work dir itself: mounted over the work dir volume.
                dest: match inp.rel_path() {
                    r if r.is_empty() => workdir.clone(),
                    r => format!("{workdir}/{r}"),
                },
            });
        }
        let outputs: Vec<OutputPlan> = p
            .task
            .outputs
            .iter()
            .enumerate()
            .map(|(i, out)| {
                let dest = in_workdir(out.mount_path());
                // An output at an input's path is that input's copy-on-write view (Concourse
                // reuses the input's volume).
                let shared = inputs.iter().find(|inp| inp.dest == dest);
                OutputPlan {
                    name: out.name.clone(),
                    source: shared.map_or_else(|| run.output_volume(i), |inp| inp.view.clone()),
                    input: shared.map(|inp| inp.name.clone()),
                    dest,
                    target: p
                        .outputs
                        .iter()
                        .find(|(n, _)| n == &out.name)
                        .map(|(_, t)| t.clone()),
                }
            })
            .collect();
        let caches = p
            .task
            .caches
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let dir = p.work.cache(&cache_key(p.task_key, &c.path));
                CachePlan {
                    source: run.cache(i),
                    path: c.path.clone(),
                    dest: if c.path.starts_with('/') {
                        c.path.clone()
                    } else {
                        in_workdir(&c.path)
                    },
                    dir,
                    space: space_name(privileged, max),
                    view: run.cache(i),
                    layers: run.cache_layers(i),
                }
            })
            .collect::<Vec<_>>();

        let user = &p.user;
        let hostname = format!("berth-{}", &p.run_id[..8.min(p.run_id.len())]);
        let etc = EtcPlan {
            resolv_conf: match p.dns {
                Some(ip) => crate::net::proxied_resolv_conf(p.host_resolv, ip),
                None => bundle::resolv_conf(p.host_resolv),
            },
            // The task's own address replaces 127.0.1.1 once the bridge plugin gives it one.
            hosts: crate::net::hosts(None, &hostname),
            hostname,
            owner: host_owner(0, 0),
        };

        // Environment: image env, params (file then -p), PATH default, USER/HOME.
        let mut env: Vec<String> = p.image_config.env.clone();
        let mut set = |k: &str, v: &str| {
            env.retain(|e| e.split('=').next() != Some(k));
            env.push(format!("{k}={v}"));
        };
        for (k, v) in p.task.params.iter().chain(p.params.iter()) {
            set(k, v);
        }
        if !p.task.run.user.is_empty() {
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

        // argv: an empty run.path means the image's entrypoint (else cmd); task args follow.
        let cfg = p.image_config;
        let mut argv = vec![INIT_IN_CONTAINER.to_string()];
        if p.task.run.path.is_empty() {
            let base: Vec<String> = if !cfg.entrypoint.is_empty() {
                let cmd = if p.task.run.args.is_empty() {
                    &cfg.cmd[..]
                } else {
                    &[]
                };
                cfg.entrypoint.iter().chain(cmd).cloned().collect()
            } else {
                cfg.cmd.clone()
            };
            if base.is_empty() {
                bail!(
                    "{}: run.path: required (the image has no entrypoint or cmd)",
                    p.task_file.display()
                );
            }
            argv.extend(base);
        } else {
            argv.push(p.task.run.path.clone());
        }
        argv.extend(p.task.run.args.iter().cloned());

        let rw = |source: &Path, dest: &str| BindPlan {
            source: source.into(),
            dest: dest.into(),
            readonly: false,
        };
        let mut binds = vec![
            rw(&run.workdir_volume(), &workdir),
            rw(&run.scratch_volume(), "/scratch"),
        ];
        binds.extend(inputs.iter().map(|i| rw(&i.view, &i.dest)));
        binds.extend(
            outputs
                .iter()
                .filter(|o| o.input.is_none())
                .map(|o| rw(&o.source, &o.dest)),
        );
        binds.extend(caches.iter().map(|c| rw(&c.source, &c.dest)));
        // Parents before children, so a nested mount lands on top of its parent volume.
        binds.sort_by_key(|b| b.dest.matches('/').count());
        for f in ["resolv.conf", "hosts", "hostname"] {
            binds.push(rw(&run.etc().join(f), &format!("/etc/{f}")));
        }
        let init = p.work.bin().join("berth-init");
        binds.push(BindPlan {
            source: init.clone(),
            dest: INIT_IN_CONTAINER.into(),
            readonly: true,
        });

        Ok(TaskPlan {
            binds,
            task_file: p.task_file.into(),
            run_dir: run.dir.clone(),
            container_id: format!("berth-worker-{}", p.run_id),
            privileged,
            ids,
            host_max: max,
            user: UserPlan {
                uid: user.uid,
                gid: user.gid,
                additional_gids: user.additional_gids.clone(),
                name: user.name.clone(),
                home: user.home.clone(),
            },
            volume_owner: host_owner(user.uid, user.gid),
            cwd: resolve_dir(&workdir, &p.task.run.dir),
            run_dir_field: p.task.run.dir.clone(),
            workdir,
            argv,
            env,
            rootfs: RootfsPlan {
                image: p.image_rootfs.into(),
                how: image_how,
                target: run.rootfs(),
                layers: run.rootfs_layers(),
            },
            inputs,
            outputs,
            caches,
            etc,
            init,
            network: p.network,
            cpu_shares: p.task.container_limits.cpu,
            memory: p.task.container_limits.memory,
            limits: p.task.container_limits,
            id_map,
        })
    }

    /// The run's directory layout.
    pub fn layout(&self) -> RunLayout {
        RunLayout {
            dir: self.run_dir.clone(),
        }
    }

    /// The human summary `check --explain` prints and the run header draws from.
    pub fn explain(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let max = self.host_max;
        let _ = writeln!(o, "task: {}", self.task_file.display());
        match &self.ids {
            Ids::Host => {
                let _ = writeln!(o, "privileges: privileged: host root, no user namespace, all capabilities, no seccomp");
                let _ = writeln!(o, "ids: host space everywhere (nothing mapped)");
            }
            m => {
                let _ = writeln!(o, "privileges: unprivileged: user namespace (task root = host uid {max}, other ids unchanged), 14 capabilities, seccomp");
                let _ = writeln!(o, "ids: {}", ids_text(m));
            }
        }
        let how_image = match self.rootfs.how {
            How::IdmappedOverlay => "overlay over the image through idmapped layers (nothing copied)",
            How::OverlayOverShiftedCopy => "overlay over the image's shifted copy (made once per image and cached: <work-dir>/images/<key>/rootfs-ns-<max>, or <work-dir>/shifted/ for a directory)",
            _ => "overlay over the image",
        };
        let _ = writeln!(o, "rootfs: {}: {how_image}", self.rootfs.image.display());
        let _ = writeln!(o, "work dir: {}", self.workdir);
        for i in &self.inputs {
            let how = match i.how {
                How::IdmappedOverlay => {
                    "overlay over -i DIR through idmapped layers (DIR never written)"
                }
                How::ShiftedCopy => "shifted copy of -i DIR, per run (DIR never written)",
                _ => "overlay over -i DIR (DIR never written)",
            };
            let _ = writeln!(o, "input {}: {}: {how}", i.name, i.dest);
        }
        for out in &self.outputs {
            let to = match &out.target {
                Some(t) => {
                    let who = if t.owner.keep_ids {
                        format!(
                            "owners in host space{}",
                            if self.privileged {
                                ""
                            } else {
                                " (task root's files become uid 0)"
                            }
                        )
                    } else {
                        format!(
                            "every file owned by {}:{} ({})",
                            t.owner.uid, t.owner.gid, t.owner.from
                        )
                    };
                    format!(
                        "copied to {} after the task, even when it fails; {who}",
                        t.dir.display()
                    )
                }
                None => "not copied out (no -o)".into(),
            };
            let shared = match &out.input {
                Some(i) => format!(" (the copy-on-write view of input {i})"),
                None => String::new(),
            };
            let _ = writeln!(o, "output {}: {}{shared}: {to}", out.name, out.dest);
        }
        for c in &self.caches {
            let _ = writeln!(
                o,
                "cache {}: {}: a copy-on-write view of {}, committed if the task succeeds; kept in {} space (a shifted copy when the last run was {})",
                c.path,
                c.dest,
                c.dir.display(),
                if self.privileged {
                    "host"
                } else {
                    "namespaced"
                },
                if self.privileged {
                    "unprivileged"
                } else {
                    "privileged"
                }
            );
        }
        o
    }
}

/// `idmapped mounts` / `shifted copies (why)`.
pub fn ids_text(ids: &Ids) -> String {
    match ids {
        Ids::Host => "host space everywhere (nothing mapped)".into(),
        Ids::Idmapped => "idmapped mounts".into(),
        Ids::Shifted { why } => format!("shifted copies ({why})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskConfig;

    fn input<'a>(
        task: &'a TaskConfig,
        work: &'a WorkLayout,
        cfg: &'a ImageConfig,
        mode: Option<IdsMode>,
        inputs: &'a [(String, PathBuf)],
    ) -> PlanInput<'a> {
        PlanInput {
            task_file: Path::new("/t/task.yml"),
            task,
            work,
            run_id: "0123456789ab",
            step_name: "one-off",
            image_rootfs: Path::new("/img"),
            image_config: cfg,
            user: ResolvedUser {
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                name: "root".into(),
                home: "/root".into(),
            },
            mode,
            host_max: 4294967294,
            inputs,
            outputs: &[],
            params: &[],
            task_key: Path::new("/t/task.yml"),
            host_resolv: "nameserver 192.0.2.1\n",
            dns: None,
            network: Network::None,
        }
    }

    fn task(yaml: &str) -> TaskConfig {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("task.yml");
        std::fs::write(&f, yaml).unwrap();
        TaskConfig::load(&f, &crate::vars::Vars::default()).unwrap()
    }

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

    #[test]
    fn plan_places_volumes_from_the_layout_and_maps_owners() {
        let t = task("platform: linux\ninputs: [{name: src}]\noutputs: [{name: src}, {name: out, path: o/x}]\ncaches: [{path: c}]\nrun: {path: sh, args: [-c, x], dir: src}\n");
        let work = WorkLayout::new(Path::new("/w"));
        let cfg = ImageConfig::default();
        let ins = [("src".to_string(), PathBuf::from("/in/src"))];
        let p = TaskPlan::build(input(
            &t,
            &work,
            &cfg,
            Some(IdsMode::Shifted { why: "off".into() }),
            &ins,
        ))
        .unwrap();
        assert_eq!(p.run_dir, Path::new("/w/runs/0123456789ab"));
        assert_eq!(p.cwd, "/tmp/build/b1dda4c3/src");
        assert_eq!(p.argv, ["/tmp/berth-init", "sh", "-c", "x"]);
        assert_eq!(p.inputs[0].how, How::ShiftedCopy);
        assert_eq!(p.inputs[0].view, Path::new("/w/runs/0123456789ab/inputs/0"));
        // The output at the input's path is the input's view.
        assert_eq!(p.outputs[0].source, p.inputs[0].view);
        assert_eq!(
            p.outputs[1].source,
            Path::new("/w/runs/0123456789ab/vol/out-1")
        );
        assert_eq!(p.outputs[1].dest, "/tmp/build/b1dda4c3/o/x");
        assert_eq!(p.caches[0].space, "ns-4294967294");
        assert!(p.caches[0].dir.starts_with("/w/caches"));
        // Task root is host max.
        assert_eq!(p.volume_owner, (4294967294, 4294967294));
        assert_eq!(p.etc.owner, (4294967294, 4294967294));

        let p = TaskPlan::build(input(&t, &work, &cfg, None, &ins)).unwrap();
        assert_eq!(p.ids, Ids::Host);
        assert_eq!(p.volume_owner, (0, 0));
        assert_eq!(p.caches[0].space, "host");
    }

    #[test]
    fn missing_input_and_missing_entrypoint_are_errors() {
        let t = task("platform: linux\ninputs: [{name: src}]\nrun: {path: sh}\n");
        let work = WorkLayout::new(Path::new("/w"));
        let cfg = ImageConfig::default();
        let e = TaskPlan::build(input(&t, &work, &cfg, None, &[])).unwrap_err();
        assert!(format!("{e}").contains("pass -i src=DIR"), "{e}");
        let t = task("platform: linux\nrun: {path: ''}\n");
        let e = TaskPlan::build(input(&t, &work, &cfg, None, &[])).unwrap_err();
        assert!(format!("{e}").contains("run.path: required"), "{e}");
    }
}
