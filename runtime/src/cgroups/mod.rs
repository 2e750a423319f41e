//! Cgroups: place a container and enforce `linux.resources`, on v1, v2 and
//! hybrid hosts, with the cgroupfs driver (no systemd).
//!
//! The pieces:
//! - [`detect`] reads `/proc/self/mountinfo` into a [`Layout`] ([`layout`]).
//! - [`resolve_path`] turns `linux.cgroupsPath` into the path berth uses.
//! - [`Cgroup`] is one container's cgroup: the same path in every hierarchy.
//!   It creates, configures ([`v1`], [`v2`], [`devices`]), freezes, kills,
//!   reports ([`stats`]) and removes it.
//!
//! Where a controller lives is decided per controller ([`Placement`]): a v1
//! hierarchy if one is mounted for it, otherwise the cgroup2 mount if the
//! kernel offers it there. On this project's hybrid host that puts memory,
//! cpu, pids… on v1 and `hugetlb` (mounted in no v1 hierarchy) on v2.
//! runc's hybrid mode uses v1 only; berth also uses what v2 offers, because
//! a controller is attached to exactly one of the two and otherwise it would
//! be unusable.

pub mod devices;
pub mod layout;
pub mod oom;
pub mod resources;
pub mod stats;
pub mod v1;
pub mod v2;

pub use layout::{detect, parse_mountinfo, Layout};
pub use oom::{OomCounters, OomWatcher};
pub use resources::{BlockIo, Network};
pub use stats::Stats;

use crate::spec::{Resources, SpecError};
use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub type Result<T> = anyhow::Result<T>;

/// Resolve `linux.cgroupsPath` into the path every hierarchy will use.
///
/// - absent → `/berth/<id>`;
/// - absolute (`/a/b`) → relative to each hierarchy's root, like runc's
///   cgroupfs driver;
/// - relative (`a/b`) → kept relative: [`Cgroup::new`] puts it under the
///   caller's own cgroup in each hierarchy, as runc does;
/// - `slice:prefix:name` is the systemd driver's form: refused, there is no
///   systemd here;
/// - `..` components are refused (they could climb out of the hierarchy).
pub fn resolve_path(
    cgroups_path: Option<&str>,
    id: &str,
) -> std::result::Result<String, SpecError> {
    const FIELD: &str = "linux.cgroupsPath";
    let Some(p) = cgroups_path.filter(|p| !p.is_empty()) else {
        return Ok(format!("/berth/{id}"));
    };
    // The systemd driver's "slice:prefix:name" never starts with '/', and a
    // cgroupfs path with exactly two colons is what runc also treats as systemd.
    if !p.starts_with('/') && p.split(':').count() == 3 {
        return Err(SpecError::new(
            FIELD,
            format!(
                "{p:?} is a systemd cgroup path; berth uses cgroupfs (no systemd on this host)"
            ),
        ));
    }
    let mut parts = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(SpecError::new(
                    FIELD,
                    format!("{p:?} contains \"..\"; a cgroup path must stay inside its hierarchy"),
                ))
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(SpecError::new(
            FIELD,
            format!("{p:?} names the root cgroup; a container needs its own"),
        ));
    }
    let joined = parts.join("/");
    Ok(if p.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    })
}

/// Where one controller is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// a v1 hierarchy: the container's directory in it
    V1(PathBuf),
    /// the cgroup2 mount: the container's directory in it
    V2(PathBuf),
}

/// The state of the freezer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezerState {
    Thawed,
    /// v1 only: the kernel is still stopping tasks
    Freezing,
    Frozen,
}

/// One container's cgroup: the same path in every hierarchy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cgroup {
    pub layout: Layout,
    /// e.g. `/berth/<id>` (absolute: under each hierarchy's root) or
    /// `a/b` (relative: under the caller's cgroup, see `own`)
    pub path: String,
    /// For a relative `path`: the caller's own cgroup per mount point, read
    /// from /proc/self/cgroup when the `Cgroup` was made.
    #[serde(default)]
    own: BTreeMap<PathBuf, String>,
    /// `exec --cgroup`: per mount point, the sub-cgroup (relative to the
    /// container's directory) that [`Cgroup::add_pid`] joins instead.
    #[serde(skip)]
    join_sub: BTreeMap<PathBuf, PathBuf>,
}

impl Cgroup {
    /// The cgroup at `path` (from [`resolve_path`]) on `layout`. A relative
    /// path is put under the caller's cgroup in each hierarchy (runc's rule),
    /// read from /proc/self/cgroup now; if that file cannot be read the
    /// hierarchy roots are used.
    pub fn new(layout: Layout, path: &str) -> Cgroup {
        let own = if path.starts_with('/') {
            String::new()
        } else {
            fs::read_to_string("/proc/self/cgroup").unwrap_or_default()
        };
        Cgroup::with_own_cgroups(layout, path, &own)
    }

    /// Like [`Cgroup::new`], with the text of /proc/self/cgroup given (for tests).
    pub fn with_own_cgroups(layout: Layout, path: &str, proc_self_cgroup: &str) -> Cgroup {
        let mut own = BTreeMap::new();
        if !path.starts_with('/') {
            for line in proc_self_cgroup.lines() {
                let mut it = line.splitn(3, ':');
                let (Some(_), Some(ctrls), Some(p)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                let mount = if ctrls.is_empty() {
                    layout.unified_root().map(Path::to_path_buf)
                } else {
                    ctrls
                        .split(',')
                        .find_map(|c| layout.v1_mount(c).map(Path::to_path_buf))
                };
                if let Some(m) = mount {
                    own.insert(m, p.to_string());
                }
            }
        }
        Cgroup {
            layout,
            path: path.to_string(),
            own,
            join_sub: BTreeMap::new(),
        }
    }

    /// The same cgroup, with `exec --cgroup` arguments applied: `PATH`
    /// (every hierarchy) or `CTRL[,CTRL…]:PATH` (those v1 hierarchies; the
    /// flag repeats), each PATH relative to the container's cgroup and
    /// never above it. runc's syntax and messages (`.. is not a sub cgroup
    /// path`, `unknown controller X`); on cgroup v2 only the plain form
    /// exists (one hierarchy), as in runc. A missing sub-cgroup is
    /// reported when the process is added.
    pub fn with_sub_cgroups(&self, args: &[String]) -> Result<Cgroup> {
        let mut cg = self.clone();
        cg.join_sub.clear();
        for arg in args {
            let (ctrls, sub) = match arg.split_once(':') {
                None if args.len() == 1 => (None, arg.as_str()),
                None => bail!(
                    "--cgroup {arg}: a controller prefix (CTRL:PATH) is needed when --cgroup is given more than once"
                ),
                Some((_, rest)) if rest.contains(':') => {
                    bail!("--cgroup {arg}: invalid --cgroup argument (want PATH or CTRL[,CTRL]:PATH)")
                }
                Some((c, rest)) => (Some(c), rest),
            };
            let sub = sub_cgroup_path(sub)
                .ok_or_else(|| anyhow!("--cgroup {arg}: {sub} is not a sub cgroup path"))?;
            match ctrls {
                None => {
                    for m in self.layout.mounts() {
                        cg.join_sub.insert(m, sub.clone());
                    }
                }
                Some(list) => {
                    for ctrl in list.split(',') {
                        let m = self.layout.v1_mount(ctrl).ok_or_else(|| {
                            let why = if matches!(self.layout, Layout::V2 { .. }) {
                                " (cgroup v2 has one hierarchy: use --cgroup PATH)"
                            } else {
                                ""
                            };
                            anyhow!("--cgroup {arg}: unknown controller {ctrl}{why}")
                        })?;
                        cg.join_sub.insert(m.to_path_buf(), sub.clone());
                    }
                }
            }
        }
        Ok(cg)
    }

    /// The container's directory under the hierarchy mounted at `mount`.
    fn dir_in(&self, mount: &Path) -> PathBuf {
        let mut d = mount.to_path_buf();
        if !self.path.starts_with('/') {
            if let Some(base) = self.own.get(mount) {
                d.push(base.trim_start_matches('/'));
            }
        }
        d.push(self.path.trim_start_matches('/'));
        d
    }

    /// The container's directory in each hierarchy (one per mount point).
    pub fn leaves(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .layout
            .mounts()
            .iter()
            .map(|m| self.dir_in(m))
            .collect();
        out.dedup();
        out
    }

    /// Every directory `create` will make, to be recorded in state *before*
    /// creating: per hierarchy, the ancestors that do not exist yet
    /// (parents first) and the container's own directory (always: a
    /// pre-existing one is joined and, as runc does, removed on delete).
    /// Removing the list in reverse therefore removes children first; an
    /// ancestor another container now uses refuses rmdir and stays.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for mount in self.layout.mounts() {
            let leaf = self.dir_in(&mount);
            let mut chain = vec![leaf.clone()];
            let mut d = leaf.parent();
            while let Some(p) = d.filter(|p| p.starts_with(&mount) && *p != mount && !p.exists()) {
                chain.push(p.to_path_buf());
                d = p.parent();
            }
            out.extend(
                chain
                    .into_iter()
                    .rev()
                    .filter(|p| !out.contains(p))
                    .collect::<Vec<_>>(),
            );
        }
        out
    }

    /// The container's directory on the cgroup2 mount, if there is one.
    pub fn v2_dir(&self) -> Option<PathBuf> {
        self.layout.unified_root().map(|r| self.dir_in(r))
    }

    /// Where `controller` is served, if anywhere on this host.
    pub fn placement(&self, controller: &str) -> Option<Placement> {
        if let Some(m) = self.layout.v1_mount(controller) {
            return Some(Placement::V1(self.dir_in(m)));
        }
        let root = self.layout.unified_root()?;
        let available = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        available
            .split_whitespace()
            .any(|c| c == controller)
            .then(|| Placement::V2(self.dir_in(root)))
    }

    /// mkdir -p the directory in every hierarchy. Pre-existing directories
    /// are fine (runc joins them too). On v1 cpuset, empty `cpuset.cpus` /
    /// `cpuset.mems` are filled from the parent level by level (the kernel
    /// refuses tasks otherwise); on cgroup2, every controller offered is
    /// enabled in each ancestor's `cgroup.subtree_control`.
    pub fn create(&self) -> Result<()> {
        for mount in self.layout.mounts() {
            let dir = self.dir_in(&mount);
            fs::create_dir_all(&dir).map_err(|e| {
                crate::error::os(
                    format!("creating cgroup {}: {}", dir.display(), errno_text(&e)),
                    &e,
                )
            })?;
            if self.layout.unified_root() == Some(mount.as_path()) {
                v2::enable_controllers(&mount, &dir)?;
            } else if self.layout.v1_mount("cpuset") == Some(mount.as_path()) {
                v1::fill_cpuset(&mount, &dir)?;
            }
        }
        Ok(())
    }

    /// Apply every `linux.resources` field (container creation).
    pub fn apply(&self, r: &Resources) -> Result<()> {
        self.set(r, true)
    }

    /// Change limits of a running container (`berth update`): like
    /// [`Cgroup::apply`] but device rules are left alone, as `runc update`
    /// never changes them.
    pub fn update(&self, r: &Resources) -> Result<()> {
        self.set(r, false)
    }

    fn set(&self, r: &Resources, with_devices: bool) -> Result<()> {
        self.check(r)?;
        let need = |ctrl: &str, field: &str| -> Result<Placement> {
            self.placement(ctrl).ok_or_else(|| {
                anyhow!(
                    "{field}: the {ctrl} cgroup controller is not available on this host \
                     (mounted in no cgroup v1 hierarchy and not offered by cgroup2)"
                )
            })
        };
        if let Some(m) = &r.memory {
            if memory_requested(m) {
                match need("memory", "linux.resources.memory")? {
                    Placement::V1(d) => v1::set_memory(&d, m)?,
                    Placement::V2(d) => v2::set_memory(&d, m)?,
                }
            }
        }
        if let Some(c) = &r.cpu {
            let wants_cpu = c.shares.is_some()
                || c.quota.is_some()
                || c.period.is_some()
                || c.burst.is_some()
                || c.realtime_period.is_some()
                || c.realtime_runtime.is_some()
                || c.idle.is_some();
            if wants_cpu {
                match need("cpu", "linux.resources.cpu")? {
                    Placement::V1(d) => v1::set_cpu(&d, c)?,
                    Placement::V2(d) => v2::set_cpu(&d, c)?,
                }
            }
            if c.cpus.as_deref().is_some_and(|s| !s.is_empty())
                || c.mems.as_deref().is_some_and(|s| !s.is_empty())
            {
                let d = match need("cpuset", "linux.resources.cpu.cpus")? {
                    Placement::V1(d) | Placement::V2(d) => d,
                };
                set_cpuset(&d, c)?;
            }
        }
        if let Some(p) = &r.pids {
            if p.limit != 0 {
                let d = match need("pids", "linux.resources.pids.limit")? {
                    Placement::V1(d) | Placement::V2(d) => d,
                };
                // runc: 0 means "not set", negative means unlimited.
                let v = if p.limit < 0 {
                    "max".to_string()
                } else {
                    p.limit.to_string()
                };
                write_field("linux.resources.pids.limit", &d, "pids.max", &v)?;
            }
        }
        if let Some(b) = &r.block_io {
            if b.is_requested() {
                match self.placement("blkio").or_else(|| self.placement("io")) {
                    Some(Placement::V1(d)) => v1::set_blkio(&d, b)?,
                    Some(Placement::V2(d)) => v2::set_io(&d, b)?,
                    None => {
                        need("blkio", "linux.resources.blockIO")?;
                    }
                }
            }
        }
        for (i, h) in r.hugepage_limits.iter().enumerate() {
            let field = format!("linux.resources.hugepageLimits[{i}]");
            match need("hugetlb", &field)? {
                Placement::V1(d) => v1::set_hugetlb(&d, &field, h)?,
                Placement::V2(d) => v2::set_hugetlb(&d, &field, h)?,
            }
        }
        if let Some(n) = &r.network {
            v1::set_network(self, n)?;
        }
        if with_devices && !r.devices.is_empty() {
            match need("devices", "linux.resources.devices") {
                Ok(Placement::V1(d)) => v1::set_devices(&d, &r.devices)?,
                // cgroup2 has no devices controller: an eBPF program on the
                // container's cgroup2 directory does its job (also on a
                // hybrid host without a v1 devices hierarchy).
                _ => match self.v2_dir() {
                    Some(d) => devices::attach_program(&d, &r.devices)?,
                    None => {
                        need("devices", "linux.resources.devices")?;
                    }
                },
            }
        }
        if !r.unified.is_empty() {
            let d = self.v2_dir().ok_or_else(|| {
                anyhow!("linux.resources.unified: this host has no cgroup2 mount (cgroup v1 only)")
            })?;
            v2::set_unified(&d, &r.unified)?;
        }
        Ok(())
    }

    /// Move `pid` (all its threads) into the cgroup in every hierarchy.
    /// With [`Cgroup::with_sub_cgroups`], the chosen sub-cgroups instead.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        let mut done = Vec::new();
        for mount in self.layout.mounts() {
            let mut dir = self.dir_in(&mount);
            if let Some(sub) = self.join_sub.get(&mount) {
                dir.push(sub);
            }
            if done.contains(&dir) {
                continue;
            }
            let f = dir.join("cgroup.procs");
            // Opened without O_CREAT: a missing cgroup is ENOENT, never a
            // create attempt the kernel answers with another errno.
            let res = fs::OpenOptions::new()
                .write(true)
                .open(&f)
                .and_then(|mut file| io::Write::write_all(&mut file, pid.to_string().as_bytes()));
            res.map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    // runc's wording (its suite matches it).
                    anyhow!(
                        "adding pid {pid} to {}: no such file or directory (no such cgroup)",
                        f.display()
                    )
                } else {
                    anyhow!("adding pid {pid} to {}: {}", f.display(), errno_text(&e))
                }
            })?;
            done.push(dir);
        }
        Ok(())
    }

    /// The directory whose `cgroup.procs` lists the container's processes:
    /// on v1 the freezer's (runc reads the same), else pids', else any.
    fn procs_dir(&self) -> PathBuf {
        match &self.layout {
            Layout::V2 { root } => self.dir_in(root),
            _ => ["freezer", "pids", "memory"]
                .iter()
                .find_map(|c| self.layout.v1_mount(c))
                .map(|m| self.dir_in(m))
                .unwrap_or_else(|| self.leaves()[0].clone()),
        }
    }

    /// Every process in the cgroup and its descendants (sorted). A missing
    /// cgroup has no processes.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        collect_pids(&self.procs_dir(), &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Where freezing happens: the v1 freezer if mounted, else cgroup.freeze.
    fn freezer(&self) -> Result<Placement> {
        if let Some(m) = self.layout.v1_mount("freezer") {
            return Ok(Placement::V1(self.dir_in(m)));
        }
        self.v2_dir().map(Placement::V2).ok_or_else(|| {
            anyhow!("freezing: this host has neither a v1 freezer nor a cgroup2 mount")
        })
    }

    /// Freeze every process and wait until the kernel says they are frozen.
    pub fn freeze(&self) -> Result<()> {
        match self.freezer()? {
            Placement::V1(d) => v1::freeze(&d),
            Placement::V2(d) => v2::set_frozen(&d, true),
        }
    }

    /// Thaw every process. A missing cgroup is already thawed.
    pub fn thaw(&self) -> Result<()> {
        match self.freezer()? {
            Placement::V1(d) if d.exists() => v1::thaw(&d),
            Placement::V2(d) if d.exists() => v2::set_frozen(&d, false),
            _ => Ok(()),
        }
    }

    /// Thawed, freezing or frozen.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        match self.freezer()? {
            Placement::V1(d) => v1::freezer_state(&d),
            Placement::V2(d) => v2::freezer_state(&d),
        }
    }

    /// Send `signal` (a number: real-time signals too) to every process in
    /// the cgroup and its sub-cgroups. For SIGKILL with a cgroup2
    /// `cgroup.kill` (Linux 5.14+) the kernel does it atomically;
    /// otherwise, like runc, freeze, signal each process, thaw, so nothing
    /// can fork between listing and signalling. Unlike runc, a cgroup that
    /// was frozen before stays frozen (`kill --all` must not resume a
    /// paused container), except for SIGKILL: a task frozen by the v1
    /// freezer cannot die until thawed.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL {
            if let Some(d) = self.v2_dir() {
                let f = d.join("cgroup.kill");
                if f.exists() {
                    return fs::write(&f, "1")
                        .map_err(|e| anyhow!("writing 1 to {}: {}", f.display(), errno_text(&e)));
                }
            }
        }
        let was_thawed = matches!(self.freezer_state(), Ok(FreezerState::Thawed));
        let frozen = self.freeze().is_ok();
        let mut res = Ok(());
        for pid in self.pids()? {
            // SAFETY: kill(2) on members of this cgroup, which cannot fork
            // or exit-and-be-reused while it is frozen.
            if unsafe { libc::kill(pid, signal) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) {
                    res = Err(anyhow!(
                        "sending signal {signal} to pid {pid}: {}",
                        errno_text(&e)
                    ));
                }
            }
        }
        if frozen && (was_thawed || signal == libc::SIGKILL) {
            self.thaw()?;
        }
        res
    }

    /// Checks of `r` against this host that need no change to it, so a
    /// config the host cannot honour fails before the container's state
    /// directory exists: `unified` on cgroup v1 (runc: "invalid
    /// configuration: cannot use unified on cgroup v1"; on a hybrid host
    /// only keys of controllers a v1 hierarchy serves), and `network` where
    /// net_cls / net_prio are not mounted as v1 hierarchies.
    pub fn check(&self, r: &Resources) -> Result<()> {
        for key in r.unified.keys() {
            let field = format!("linux.resources.unified[{key:?}]");
            let ctrl = key.split('.').next().unwrap_or("");
            match &self.layout {
                Layout::V1 { .. } => bail!(
                    "{field}: invalid configuration: cannot use unified on cgroup v1 (this host has no cgroup2 mount)"
                ),
                Layout::Hybrid { .. } => {
                    if let Some(m) = self.layout.v1_mount(ctrl) {
                        bail!(
                            "{field}: invalid configuration: cannot use unified on cgroup v1: the {ctrl} controller is a cgroup v1 hierarchy on this host ({})",
                            m.display()
                        );
                    }
                }
                Layout::V2 { .. } => {}
            }
        }
        if let Some(n) = &r.network {
            // classID 0 is "not set" (runc writes nothing for it).
            if n.class_id.is_some_and(|id| id != 0) {
                v1::network_dir(self, "net_cls", "linux.resources.network.classID")?;
            }
            if !n.priorities.is_empty() {
                v1::network_dir(self, "net_prio", "linux.resources.network.priorities")?;
            }
        }
        Ok(())
    }

    /// Before a container takes this cgroup: the processes already in it
    /// (runc warns "container's cgroup is not empty") and whether it is
    /// frozen — its own directory, or, when that does not exist yet, the
    /// closest existing ancestor a new directory would inherit the freeze
    /// from. A process started in a frozen cgroup hangs; runc refuses
    /// ("container's cgroup unexpectedly frozen").
    pub fn preexisting(&self) -> Result<(Vec<i32>, Option<PathBuf>)> {
        let pids = self.pids()?;
        let Ok(freezer) = self.freezer() else {
            return Ok((pids, None));
        };
        let (mut dir, mount, v1) = match freezer {
            Placement::V1(d) => {
                let m = self.layout.v1_mount("freezer").map(Path::to_path_buf);
                (d, m, true)
            }
            Placement::V2(d) => (d, self.layout.unified_root().map(Path::to_path_buf), false),
        };
        let mount = mount.unwrap_or_default();
        while !dir.exists() && dir.starts_with(&mount) && dir != mount {
            if !dir.pop() {
                break;
            }
        }
        // The root has no freezer files: it cannot be frozen.
        let state = if dir == mount {
            FreezerState::Thawed
        } else if v1 {
            v1::freezer_state(&dir).unwrap_or(FreezerState::Thawed)
        } else {
            v2::freezer_state(&dir).unwrap_or(FreezerState::Thawed)
        };
        let frozen = (state != FreezerState::Thawed).then_some(dir);
        Ok((pids, frozen))
    }

    /// Remove the directory in every hierarchy, children first. The caller
    /// has killed the processes; a cgroup whose last task is still exiting
    /// answers EBUSY for a moment, so each rmdir is retried briefly (runc
    /// does the same). Directories already gone are fine: destroy is
    /// idempotent, so it can finish a half-done delete.
    pub fn destroy(&self) -> Result<()> {
        for dir in self.leaves() {
            remove_tree(&dir)?;
        }
        Ok(())
    }

    /// Current usage in runc's `events --stats` shape.
    pub fn stats(&self) -> Result<Stats> {
        stats::collect(self)
    }

    /// The OOM counters (`oom`, `oom_kill`) of the memory controller.
    pub fn oom_events(&self) -> Result<OomCounters> {
        oom::counters(self)
    }

    /// What to bind-mount so the container sees its own cgroup at
    /// /sys/fs/cgroup: (host source, destination relative to the
    /// container's /sys/fs/cgroup). v1: one directory per hierarchy named
    /// as the host names it (`memory`, `cpu,cpuacct`, `systemd`), hybrid
    /// adds `unified`; v2: the container's directory at `.`.
    pub fn container_mounts(&self) -> Vec<(PathBuf, PathBuf)> {
        match &self.layout {
            Layout::V2 { root } => vec![(self.dir_in(root), PathBuf::from("."))],
            _ => self
                .layout
                .mounts()
                .into_iter()
                .map(|m| {
                    let name = m.file_name().map(PathBuf::from).unwrap_or_default();
                    (self.dir_in(&m), name)
                })
                .collect(),
        }
    }

    /// Symlinks for co-mounted v1 controllers, as hosts make them:
    /// (link relative to /sys/fs/cgroup, target) e.g. (`cpu`, `cpu,cpuacct`).
    pub fn container_symlinks(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut out = Vec::new();
        for (_, mount) in self.container_mounts() {
            let name = mount.to_string_lossy().to_string();
            if name.contains(',') {
                for part in name.split(',') {
                    out.push((PathBuf::from(part), PathBuf::from(&name)));
                }
            }
        }
        out
    }
}

/// `exec --cgroup` PATH, relative to the container's cgroup: `.` and
/// empty parts dropped, `..` resolved; `None` if it climbs above it.
/// ("/" and "" are the container's cgroup itself.)
fn sub_cgroup_path(p: &str) -> Option<PathBuf> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.iter().collect())
}

fn memory_requested(m: &crate::spec::Memory) -> bool {
    m.limit.is_some()
        || m.reservation.is_some()
        || m.swap.is_some()
        || m.kernel.is_some()
        || m.kernel_tcp.is_some()
        || m.swappiness.is_some()
        || m.disable_oom_killer.is_some()
}

/// cpuset.cpus / cpuset.mems: the same files on v1 and v2.
fn set_cpuset(dir: &Path, c: &crate::spec::Cpu) -> Result<()> {
    if let Some(cpus) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
        write_field("linux.resources.cpu.cpus", dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems.as_deref().filter(|s| !s.is_empty()) {
        write_field("linux.resources.cpu.mems", dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow!("reading {}: {}", procs.display(), errno_text(&e))),
    }
    for sub in subdirs(dir)? {
        collect_pids(&sub, out)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow!("listing {}: {}", dir.display(), errno_text(&e))),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        if ent.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(ent.path());
        }
    }
    Ok(out)
}

/// rmdir `dir` after its sub-cgroups, retrying EBUSY for up to ~1 s.
///
/// The rmdir is tried first: cgroupfs answers EBUSY for a cgroup that still
/// has sub-cgroups, and only then are they listed and removed. Most
/// containers have none, so a delete saves the open/getdents/close of every
/// hierarchy's directory (docs/performance.md).
fn remove_tree(dir: &Path) -> Result<()> {
    let mut delay = Duration::from_millis(2);
    let mut tries = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 9 => {
                let subs = subdirs(dir)?;
                if !subs.is_empty() {
                    for sub in subs {
                        remove_tree(&sub)?;
                    }
                    continue;
                }
                std::thread::sleep(delay);
                delay *= 2;
                tries += 1;
            }
            Err(e) => {
                return Err(anyhow!(
                    "removing cgroup {}: {}",
                    dir.display(),
                    errno_text(&e)
                ))
            }
        }
    }
}

/// The errno's text without Rust's " (os error N)" suffix, as runc prints it.
pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// Write `value` to `dir/file` for config field `field`; the error names
/// all three: `linux.resources.memory.limit: writing 1048576 to
/// /sys/fs/cgroup/memory/berth/x/memory.limit_in_bytes: Device or resource busy`.
///
/// The file is opened without O_CREAT: cgroup files are made by the
/// kernel, and asking cgroupfs to create one is answered with an errno
/// that varies by kernel (EACCES, EPERM…). A file the kernel does not
/// offer is therefore always reported the same way, `… does not exist`,
/// with the Linux release that added it when known ([`added_in`]).
pub(crate) fn write_field(field: &str, dir: &Path, file: &str, value: &str) -> Result<()> {
    use std::io::Write;
    let path = dir.join(file);
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                let why = match (added_in(file), kernel_option(file)) {
                    (Some(v), _) => {
                        format!("this kernel has no such cgroup file: {file} needs Linux >= {v}")
                    }
                    (None, Some(o)) => format!(
                        "this kernel has no such cgroup file: {file} needs a kernel built with {o}"
                    ),
                    (None, None) => {
                        "this kernel or controller offers no such cgroup file".to_string()
                    }
                };
                crate::error::os(
                    format!(
                        "{field}: cannot write {value}: {} does not exist ({why})",
                        path.display()
                    ),
                    &e,
                )
            } else {
                crate::error::os(
                    format!(
                        "{field}: writing {value} to {}: {}",
                        path.display(),
                        errno_text(&e)
                    ),
                    &e,
                )
            }
        })
}

/// The Linux release that added a cgroup file berth may write, for the
/// files younger than the oldest kernel berth is tested on (5.10, see
/// docs/kernels.md).
pub(crate) fn added_in(file: &str) -> Option<&'static str> {
    Some(match file {
        "cpu.idle" => "5.15",
        "cpu.max.burst" | "cpu.cfs_burst_us" => "5.14",
        "cgroup.kill" => "5.14",
        "memory.peak" | "memory.swap.peak" => "5.19",
        "memory.zswap.max" => "5.19",
        "memory.swap.high" => "5.8",
        _ => return None,
    })
}

/// The build option a cgroup file depends on, for files a distribution
/// kernel may leave out: Debian's 5.10 and 6.1 are built without
/// CONFIG_RT_GROUP_SCHED, so their v1 cpu controller has no realtime files
/// (found by the kernel matrix, docs/kernels.md).
pub(crate) fn kernel_option(file: &str) -> Option<&'static str> {
    match file {
        "cpu.rt_period_us" | "cpu.rt_runtime_us" => Some("CONFIG_RT_GROUP_SCHED"),
        _ => None,
    }
}

/// Read `dir/file` trimmed; the error names the file.
pub(crate) fn read_file(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            crate::error::os(
                format!("reading {}: {}", path.display(), errno_text(&e)),
                &e,
            )
        })
}

/// Read a number from `dir/file`; `max` reads as u64::MAX.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64> {
    let s = read_file(dir, file)?;
    parse_u64(&s).with_context(|| format!("parsing {}", dir.join(file).display()))
}

pub(crate) fn parse_u64(s: &str) -> Result<u64> {
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse::<u64>().map_err(|e| anyhow!("{s:?}: {e}"))
}

/// `key value` lines (memory.stat, cpu.stat, memory.events…) as a map.
pub(crate) fn read_kv(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>> {
    let s = read_file(dir, file)?;
    Ok(parse_kv(&s))
}

pub(crate) fn parse_kv(s: &str) -> BTreeMap<String, u64> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = parse_u64(it.next()?).ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests;
