//! Driving the OCI runtime binary (berth, or runc/crun: they share the CLI) through its command
//! line, the way containerd's shim does: `create` → `start` → wait for the container's PID 1 →
//! `delete`. The worker never enters a namespace itself.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use tokio::process::Command;

/// A runtime binary plus the state directory (`--root`) the worker keeps its containers in, so
/// they never mix with other users of the same runtime and a sweep can find them.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub bin: PathBuf,
    pub root: PathBuf,
}

/// Find the runtime: `--runtime` / `BERTH_BIN` if given, else `berth` next to the worker binary,
/// else `berth` on PATH.
pub fn locate(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if p.components().count() == 1 {
            if let Some(found) = which(&p.display().to_string()) {
                return Ok(found);
            }
        }
        if !p.exists() {
            bail!("runtime {}: no such file", p.display());
        }
        return Ok(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let cand = dir.join("berth");
            if cand.is_file() {
                return Ok(cand);
            }
        }
    }
    which("berth").ok_or_else(|| {
        anyhow::anyhow!("no runtime: `berth` is neither next to the worker binary nor on PATH; pass --runtime PATH or set BERTH_BIN (runc and crun work too)")
    })
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Runtime {
    fn cmd(&self) -> Command {
        self.std_cmd().into()
    }

    /// The runtime with its state root, as a std Command (for a child the caller reaps).
    fn std_cmd(&self) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut c = std::process::Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        // Own process group: a Ctrl-C on the terminal reaches the worker, which then stops the
        // task in order (TERM, grace, KILL), instead of hitting the runtime mid-operation.
        c.process_group(0);
        c.stdin(Stdio::null());
        c
    }

    /// `--log B/runtime.log --log-format json VERB --bundle B --pid-file B/container.pid ID`:
    /// what `create` and a foreground `run` share. The log is where a failure's reason is read
    /// from ([`last_log_error`]); the pid file tells whether the container came to exist.
    fn bundle_args(verb: &str, id: &str, bundle: &Path) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["--log".into()];
        a.push(bundle.join("runtime.log").into());
        a.extend(["--log-format", "json", verb, "--bundle"].map(Into::into));
        a.push(bundle.into());
        a.push("--pid-file".into());
        a.push(bundle.join("container.pid").into());
        a.push(id.into());
        a
    }

    async fn run(&self, what: &str, mut c: Command) -> Result<String> {
        let out = c
            .output()
            .await
            .with_context(|| format!("running {} {what}", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "{} {what}: {}: {}",
                self.bin.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `create --bundle B --pid-file P ID`, with the container's stdout/stderr on the given pipe
    /// ends (the runtime passes its own stdio through to the container when no terminal is
    /// requested). Returns the container's PID 1.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<i32> {
        let pid_file = bundle.join("container.pid");
        let log = bundle.join("runtime.log");
        let mut c = self.cmd();
        c.args(Self::bundle_args("create", id, bundle));
        c.stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
        let status = c
            .status()
            .await
            .with_context(|| format!("running {} create", self.bin.display()))?;
        if !status.success() {
            bail!(
                "{} create {id}: {status}{}",
                self.bin.display(),
                last_log_error(&log)
            );
        }
        let pid = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("reading {}", pid_file.display()))?;
        pid.trim()
            .parse()
            .with_context(|| format!("{}: bad pid {pid:?}", pid_file.display()))
    }

    /// `run --bundle B --pid-file P ID` in the foreground, spawned and not waited for: one
    /// runtime process makes the container, starts it, waits for it and deletes it (runc's
    /// and crun's `run` do the same), where `create` + `start` + `delete` took three. For
    /// tasks that need nothing between create and start (no bridge network to attach).
    /// Returns the runtime's pid: its exit status is the task's (128+N for a signal).
    pub fn spawn_run(
        &self,
        id: &str,
        bundle: &Path,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<i32> {
        let mut c = self.std_cmd();
        c.args(Self::bundle_args("run", id, bundle));
        c.stdout(Stdio::from(stdout)).stderr(Stdio::from(stderr));
        let child = c
            .spawn()
            .with_context(|| format!("running {} run", self.bin.display()))?;
        // Reaped by the caller (waitpid); a std Child does not wait or kill when dropped.
        Ok(child.id() as i32)
    }

    /// Why a foreground `run` failed before its container existed (no pid file was written):
    /// the error the runtime logged, as `create` reports it.
    pub fn run_failure(&self, id: &str, bundle: &Path, code: i32) -> Option<anyhow::Error> {
        if bundle.join("container.pid").exists() {
            return None;
        }
        Some(anyhow::anyhow!(
            "{} run {id}: exit status: {code}{}",
            self.bin.display(),
            last_log_error(&bundle.join("runtime.log"))
        ))
    }

    /// `start ID`: the container's process execs the task.
    pub async fn start(&self, id: &str) -> Result<()> {
        let mut c = self.cmd();
        c.arg("start").arg(id);
        self.run("start", c).await.map(drop)
    }

    /// `kill ID SIG`.
    pub async fn kill(&self, id: &str, sig: &str) -> Result<()> {
        let mut c = self.cmd();
        c.arg("kill").arg(id).arg(sig);
        self.run(&format!("kill {sig}"), c).await.map(drop)
    }

    /// `delete --force ID`; a container that does not exist is not an error (cleanup is
    /// idempotent: a sweep may find it already gone).
    pub async fn delete(&self, id: &str) -> Result<()> {
        // No state directory: nothing the runtime could delete (a foreground `run` has
        // already deleted its container). runc and crun keep their state in `<root>/<id>` too.
        if !self.root.join(id).exists() {
            return Ok(());
        }
        let mut c = self.cmd();
        c.arg("delete").arg("--force").arg(id);
        match self.run("delete --force", c).await {
            Ok(_) => Ok(()),
            Err(e)
                if e.to_string().contains("does not exist")
                    || e.to_string().contains("not found") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// The last error line of a runtime's JSON log, for the create failure message.
fn last_log_error(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error" || v["level"] == "fatal")
        .and_then(|v| v["msg"].as_str().map(|m| format!(": {m}")))
        .unwrap_or_default()
}
