//! The container's record on disk: `<root>/<id>/state.json`.
//!
//! Besides the OCI state (id, pid, status, bundle, …) the file records every
//! host resource *before* berth creates it — the cgroup directories, each
//! process — so that after a `kill -9` of `create`, `start` or `delete` at any
//! point, `list` still shows the container and `delete --force` removes
//! everything it had. (runc and crun leak cgroup directories in that case.)
//!
//! Writes are atomic (temp file + rename) and every mutating command holds
//! an exclusive `flock` on the container directory.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The OCI version berth reports in `state` and writes with `spec`.
pub const OCI_VERSION: &str = "1.2.0";

/// Container status, as the runtime-spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// A process berth started, named by pid *and* start time so a recycled
/// pid is never mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: i32,
    pub start_time: u64,
}

impl Proc {
    /// Record a live process; None if it already exited.
    pub fn of(pid: i32) -> Option<Proc> {
        crate::sys::start_time(pid).map(|start_time| Proc { pid, start_time })
    }

    /// Still the same process, and not a zombie.
    pub fn alive(&self) -> bool {
        // One read: the start time and the state of the same process.
        crate::sys::proc_stat(self.pid)
            .is_some_and(|(state, start)| start == self.start_time && state != 'Z')
    }
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// The status last written; the live status is [`State::status`].
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// berth's own bookkeeping (not part of the OCI state).
    #[serde(default)]
    pub record: Record,
}

/// Host resources the container owns, written before each is created.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The container's init (pid 1 of its pid namespace).
    pub init: Option<Proc>,
    /// Helper processes (stage 1) while `create` runs.
    #[serde(default)]
    pub helpers: Vec<Proc>,
    /// Relative cgroup path, e.g. `/berth/<id>`.
    pub cgroup_path: Option<String>,
    /// Every cgroup directory berth made (or would have made).
    #[serde(default)]
    pub cgroup_dirs: Vec<PathBuf>,
    /// The cgroup as resolved at create (layout and path), so later
    /// commands act on the same directories whatever cgroup they run from.
    #[serde(default)]
    pub cgroup: Option<crate::cgroups::Cgroup>,
    /// Whether the container has its own pid namespace (then killing init
    /// kills everything; otherwise `delete` kills every pid in the cgroup).
    #[serde(default)]
    pub own_pidns: bool,
    /// Hooks that run after create: poststart, poststop.
    #[serde(default)]
    pub hooks: Option<crate::spec::Hooks>,
    /// The container's config, for `exec` to join it later.
    ///
    /// Kept as the JSON text it was written as ([`config_json`]), not as a
    /// `Value` tree: every save of the state wrote the whole config again by
    /// walking the tree (five saves per `run`; with Docker's seccomp profile
    /// inside, ~30 KB of JSON each), and every load of the state (start,
    /// kill, delete, state…) built the tree again. As raw JSON, a save copies
    /// the bytes and a load only checks them; the file is byte-identical.
    #[serde(default)]
    pub config: Option<Box<serde_json::value::RawValue>>,
}

/// The config as [`Record::config`] holds it: the JSON of the spec's
/// `Value` form (keys sorted, as they were when the record was a `Value`).
pub fn config_json(
    spec: &crate::spec::Spec,
) -> serde_json::Result<Box<serde_json::value::RawValue>> {
    let v = serde_json::to_value(spec)?;
    serde_json::value::RawValue::from_string(serde_json::to_string(&v)?)
}

/// The state directory root and the per-container directories under it.
#[derive(Debug, Clone)]
pub struct Root {
    pub dir: PathBuf,
}

/// runc's rule for container ids: `[\w+\-.]+`, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.' only");
    }
    Ok(())
}

impl Root {
    pub fn new(dir: &Path) -> Root {
        Root {
            dir: dir.to_path_buf(),
        }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Claim `<root>/<id>` for a new container. `mkdir` is the atomic
    /// "does it exist?" check, so two concurrent creates of one id cannot
    /// both succeed.
    pub fn claim(&self, id: &str) -> Result<(PathBuf, Lock)> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.dir)
            .with_context(|| format!("creating state root {}", self.dir.display()))?;
        let dir = self.container_dir(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(crate::error::Error::AlreadyExists(id.to_string()).into())
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
        let lock = Lock::take(&dir)?;
        Ok((dir, lock))
    }

    /// Load a container's state; [`crate::error::Error::NotFound`] when
    /// there is none (its text says "does not exist": containerd's shim
    /// relies on that wording).
    pub fn load(&self, id: &str) -> Result<State> {
        validate_id(id)?;
        let path = self.container_dir(id).join("state.json");
        match fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).with_context(|| format!("reading {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.container_dir(id).is_dir() {
                    // Claimed but killed before the first write: a container
                    // in "creating" with nothing recorded yet.
                    Ok(State::new(id, Path::new(""), Path::new("")))
                } else {
                    Err(crate::error::Error::NotFound(id.to_string()).into())
                }
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Ids of every container (sorted).
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.dir.display())),
        };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if let Some(name) = e.file_name().to_str() {
                    if validate_id(name).is_ok() {
                        ids.push(name.to_string());
                    }
                }
            }
        }
        ids.sort();
        Ok(ids)
    }
}

impl State {
    pub fn new(id: &str, bundle: &Path, rootfs: &Path) -> State {
        State {
            oci_version: OCI_VERSION.into(),
            id: id.into(),
            status: Status::Creating,
            pid: 0,
            bundle: bundle.into(),
            rootfs: rootfs.into(),
            created: crate::log::now_rfc3339(),
            owner: String::new(),
            annotations: BTreeMap::new(),
            record: Record::default(),
        }
    }

    /// Write atomically: a reader sees the old file or the new one, never half.
    ///
    /// The new content goes to a temp file that is then *exchanged* with
    /// `state.json` (`renameat2(RENAME_EXCHANGE)`) and the temp name, now
    /// holding the old content, unlinked. A plain rename over the existing
    /// file is just as atomic but costs 4–5× more on ext4: replacing a file
    /// by rename makes ext4 (`auto_da_alloc`) start writeback of the new
    /// file, and evicting the replaced one frees the blocks the previous
    /// writeback allocated (with a discard on `discard` mounts) — measured
    /// ~55 µs CPU and ~400 µs of I/O wait per save against ~13 µs, five saves
    /// per `run` (docs/performance.md). The first save (no `state.json`
    /// yet), or a filesystem without RENAME_EXCHANGE, uses a plain rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = dir.join(".state.json.tmp");
        let dst = dir.join("state.json");
        let data = serde_json::to_vec(self)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        // 0600 whatever the umask or a leftover temp file's mode (fchmod).
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        drop(f);
        match crate::sys::rename_exchange(&tmp, &dst) {
            Ok(()) => {
                fs::remove_file(&tmp)
                    .with_context(|| format!("removing {} (the old state)", tmp.display()))?;
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINVAL)) => {
                fs::rename(&tmp, &dst)
                    .with_context(|| format!("renaming {} into place", tmp.display()))?;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("exchanging {} into place", tmp.display()))
            }
        }
        Ok(())
    }

    /// The live status: the recorded one, corrected by what is running now.
    pub fn status(&self, dir: &Path) -> Status {
        let init_alive = self.record.init.is_some_and(|p| p.alive());
        match self.status {
            Status::Creating => {
                if init_alive || self.record.helpers.iter().any(|p| p.alive()) {
                    Status::Creating
                } else {
                    Status::Stopped
                }
            }
            _ if !init_alive => Status::Stopped,
            _ if dir.join("exec.fifo").exists() => Status::Created,
            _ if self.frozen() => Status::Paused,
            _ => Status::Running,
        }
    }

    fn frozen(&self) -> bool {
        let Some(pid) = self.record.init.map(|p| p.pid) else {
            return false;
        };
        // Look at the freezer of the init's own cgroup (v1 freezer or v2 cgroup.freeze).
        let Ok(cg) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        for line in cg.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrl, path) = (parts.next(), parts.next(), parts.next());
            let (Some(ctrl), Some(path)) = (ctrl, path) else {
                continue;
            };
            if ctrl.split(',').any(|c| c == "freezer") {
                let f = format!("/sys/fs/cgroup/freezer{path}/freezer.state");
                if fs::read_to_string(f).is_ok_and(|s| s.trim() == "FROZEN") {
                    return true;
                }
            } else if ctrl.is_empty() {
                for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                    let f = format!("{base}{path}/cgroup.freeze");
                    if fs::read_to_string(f).is_ok_and(|s| s.trim() == "1") {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// The OCI state object as `berth state` prints it.
    /// What `state` and `list --format json` print: runc's `containerState`,
    /// fields in runc's order (ociVersion, id, pid, status, bundle, rootfs,
    /// created, annotations, owner) — some clients match the text, not the JSON.
    pub fn runc_state(&self, dir: &Path) -> RuncState {
        let status = self.status(dir);
        RuncState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: self.annotations.clone(),
            owner: self.owner.clone(),
        }
    }

    pub fn oci_json(&self, dir: &Path) -> serde_json::Value {
        let status = self.status(dir);
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        })
    }
}

/// runc's `containerState` (list.go), field for field and in its order.
#[derive(Debug, Clone, Serialize)]
pub struct RuncState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub owner: String,
}

/// An exclusive flock on a container directory, released on drop (and by
/// the kernel if berth is killed).
pub struct Lock {
    fd: OwnedFd,
}

impl Lock {
    pub fn raw(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    pub fn take(dir: &Path) -> Result<Lock> {
        let fd = crate::sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(crate::sys::last(format_args!("flock {}", dir.display())).into());
        }
        Ok(Lock { fd })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "a b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn claim_is_exclusive_and_state_roundtrips() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let (dir, _lock) = root.claim("c1").unwrap();
        let e = root.claim("c1").err().unwrap().to_string();
        assert!(e.contains("already exists"), "{e}");
        let mut s = State::new("c1", Path::new("/b"), Path::new("/b/rootfs"));
        s.record.cgroup_path = Some("/berth/c1".into());
        s.save(&dir).unwrap();
        let back = root.load("c1").unwrap();
        assert_eq!(back.record.cgroup_path.as_deref(), Some("/berth/c1"));
        // No live process recorded → a "creating" container reads as stopped.
        assert_eq!(back.status(&dir), Status::Stopped);
        let e = root.load("nope").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    /// The recorded config is written as the JSON of its `Value` form, as
    /// when the record held a `Value`, and survives a save and a load.
    #[test]
    fn recorded_config_is_the_value_json_and_round_trips() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let (dir, _lock) = root.claim("c3").unwrap();
        let spec = crate::spec::Spec::from_json(
            br#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                 "process": {"args": ["/bin/true"], "cwd": "/"}, "hostname": "h",
                 "linux": {"namespaces": [{"type": "uts"}]}}"#,
        )
        .unwrap();
        let mut s = State::new("c3", Path::new("/b"), Path::new("/b/rootfs"));
        s.record.config = Some(config_json(&spec).unwrap());
        s.save(&dir).unwrap();
        let want = serde_json::to_value(&spec).unwrap();
        let on_disk: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("state.json")).unwrap()).unwrap();
        assert_eq!(on_disk["record"]["config"], want);
        let back = root.load("c3").unwrap();
        let raw = back.record.config.expect("config recorded");
        assert_eq!(raw.get(), serde_json::to_string(&want).unwrap());
        let spec2: crate::spec::Spec = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(spec2.hostname.as_deref(), Some("h"));
    }

    /// A save over an existing state.json (the exchange path) leaves the
    /// new content, mode 0600, and no temp file holding the old one; so does
    /// a save after a leftover temp file with other permissions.
    #[test]
    fn save_replaces_state_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let mut s = State::new("c2", Path::new("/b"), Path::new("/b/rootfs"));
        s.save(dir).unwrap();
        s.pid = 4242;
        s.status = Status::Created;
        s.save(dir).unwrap();
        let tmp = dir.join(".state.json.tmp");
        assert!(!tmp.exists(), "the old state was left in {}", tmp.display());
        // A temp file left by a killed save, with a wider mode.
        fs::write(&tmp, b"stale").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        s.pid = 4343;
        s.save(dir).unwrap();
        assert!(!tmp.exists());
        let back: State =
            serde_json::from_slice(&fs::read(dir.join("state.json")).unwrap()).unwrap();
        assert_eq!((back.pid, back.status), (4343, Status::Created));
        let mode = fs::metadata(dir.join("state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
