//! OCI bundles for tests: a temp directory with a `config.json`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use tempfile::TempDir;

/// A bundle directory (removed on drop) and the config it holds.
///
/// The config starts as what `runc spec` writes, with three changes so tests are
/// safe and quick: `root.path` is the shared busybox fixture's absolute path,
/// `process.terminal` is false, and `process.args` is `["true"]`. Tests change it
/// with one-line patches:
///
/// ```no_run
/// # use berth_integration::Bundle;
/// let bundle = Bundle::busybox()
///     .sh("hostname")
///     .with(|c| c["hostname"] = "box".into());
/// ```
pub struct Bundle {
    dir: TempDir,
    config: Value,
}

impl Bundle {
    /// A bundle running from the shared busybox fixture, mounted read-only
    /// (`root.readonly = true`) so no test can dirty it.
    pub fn busybox() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("berth-itest-bundle-")
            .tempdir()
            .expect("creating a bundle dir");
        // 0755: a container in a user namespace opens paths in the bundle (bind
        // sources) as its mapped uid, which needs search permission here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod bundle dir");
        let bundle = Bundle {
            config: default_config(&crate::busybox_rootfs()),
            dir,
        };
        bundle.write_config();
        bundle
    }

    /// A bundle with a private, writable copy of the busybox rootfs at
    /// `<bundle>/rootfs` (`cp -a`, a few MB), for tests that plant files or symlinks
    /// in the rootfs. `root.readonly` is false.
    pub fn busybox_copy() -> Bundle {
        let bundle = Bundle::busybox();
        let copy = bundle.path().join("rootfs");
        let status = Command::new("cp")
            .arg("-a")
            .arg(crate::busybox_rootfs())
            .arg(&copy)
            .status()
            .expect("running cp -a");
        assert!(status.success(), "cp -a of the busybox fixture failed");
        let path = copy.to_string_lossy().into_owned();
        bundle.with(|c| {
            c["root"]["path"] = path.into();
            c["root"]["readonly"] = false.into();
        })
    }

    /// Applies a patch to the config and rewrites `config.json`.
    pub fn with(mut self, patch: impl FnOnce(&mut Value)) -> Bundle {
        self.patch(patch);
        self
    }

    /// [`Bundle::with`] in place (e.g. for a patch that needs the container id).
    pub fn patch(&mut self, patch: impl FnOnce(&mut Value)) {
        patch(&mut self.config);
        self.write_config();
    }

    /// Sets `process.args`.
    pub fn args(self, args: &[&str]) -> Bundle {
        let args: Vec<Value> = args.iter().map(|a| Value::from(*a)).collect();
        self.with(|c| c["process"]["args"] = Value::Array(args))
    }

    /// Sets `process.args` to `["sh", "-c", script]`.
    pub fn sh(self, script: &str) -> Bundle {
        self.args(&["sh", "-c", script])
    }

    /// The bundle directory (absolute).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The bundle directory as a string, for command lines.
    pub fn path_str(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    /// The current config.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The rootfs the config points at (absolute).
    pub fn rootfs(&self) -> PathBuf {
        let root = self.config["root"]["path"].as_str().unwrap_or("rootfs");
        self.path().join(root)
    }

    /// Replaces `config.json` with `text` verbatim (for invalid-config tests).
    pub fn write_raw(&self, text: &str) {
        std::fs::write(self.path().join("config.json"), text).expect("writing config.json");
    }

    /// Removes `config.json`.
    pub fn remove_config(&self) {
        std::fs::remove_file(self.path().join("config.json")).expect("removing config.json");
    }

    /// Makes a directory `<bundle>/<name>` with `mode` (for bind mounts) and
    /// returns its path.
    pub fn make_dir(&self, name: &str, mode: u32) -> PathBuf {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).expect("creating a dir in the bundle");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
            .expect("chmod a dir in the bundle");
        dir
    }

    fn write_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialising config");
        std::fs::write(self.path().join("config.json"), text).expect("writing config.json");
    }
}

/// The config `runc spec` writes (runc 1.1.5), pointed at `rootfs`.
fn default_config(rootfs: &Path) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["true"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            // runc spec asks for ambient caps without inheritable ones; the kernel
            // refuses such a raise, so the container's ambient set ends up empty.
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": rootfs.to_string_lossy(), "readonly": true },
        "hostname": "itest",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}
