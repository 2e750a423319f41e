//! One container id bound to a bundle, with the runtime's verbs as methods.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use serde_json::Value;

use crate::runtime::{capture_file, describe, read_file};
use crate::{leftovers, poll_until, Bundle, Leftovers, Output, Runtime, PATIENCE};

/// A container under test. Owns its bundle; dropping it runs `delete --force` (so a
/// failed assertion does not leak the container) before the bundle dir goes.
///
/// Every invocation passes `--log <bundle>/log.json --log-format json`, the way
/// containerd's shim calls runc.
pub struct Container {
    rt: Runtime,
    id: String,
    // Dropped after `Drop::drop` ran `delete --force`.
    bundle: Bundle,
    /// The stdout/stderr files handed to the last `create` (and so to the
    /// container's process).
    stdio: RefCell<Option<(File, File)>>,
}

impl Container {
    /// Binds a fresh unique id (tagged with `tag`, usually the test name) to `bundle`.
    /// Nothing runs yet.
    pub fn new(rt: &Runtime, bundle: Bundle, tag: &str) -> Container {
        Container {
            rt: rt.clone(),
            id: crate::unique_id(tag),
            bundle,
            stdio: RefCell::new(None),
        }
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The bundle, to patch in place before `create` (e.g. with the id).
    pub fn bundle_mut(&mut self) -> &mut Bundle {
        &mut self.bundle
    }

    /// The runtime.
    pub fn rt(&self) -> &Runtime {
        &self.rt
    }

    /// `<bin> --root R --log <bundle>/log.json --log-format json <args…>`, not started.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let log = self.bundle.path().join("log.json");
        let mut cmd = self.rt.command(&["--log".as_ref(), log.as_os_str()]);
        cmd.args(["--log-format", "json"]);
        cmd.args(args);
        cmd
    }

    /// Runs a verb to completion (`args` are everything after the global flags).
    pub fn invoke<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        Output::of(self.command(args))
    }

    /// `create --bundle B ID`.
    pub fn create(&self) -> Output {
        self.create_with(&[])
    }

    /// `create --bundle B <extra…> ID`. The container's stdio are two files kept for
    /// [`Container::output`].
    pub fn create_with(&self, extra: &[&str]) -> Output {
        self.create_with_fds(extra, &[])
    }

    /// `create --bundle B <extra…> ID` with `fds[i]` passed to the runtime as fd
    /// `3 + i` (for `--preserve-fds`).
    pub fn create_with_fds(&self, extra: &[&str], fds: &[RawFd]) -> Output {
        let mut args = vec!["create", "--bundle"];
        let bundle = self.bundle.path_str();
        args.push(&bundle);
        args.extend_from_slice(extra);
        args.push(&self.id);
        let mut cmd = self.command(&args);
        pass_fds(&mut cmd, fds);
        let out = capture_file();
        let err = capture_file();
        let output = run_with_stdio(cmd, &out, &err);
        *self.stdio.borrow_mut() = Some((out, err));
        output
    }

    /// `create`, panicking unless it succeeds.
    #[track_caller]
    pub fn create_ok(&self) {
        self.create().assert_ok();
    }

    /// `start ID`.
    pub fn start(&self) -> Output {
        self.invoke(&["start", &self.id])
    }

    /// `create` then `start`, both must succeed.
    #[track_caller]
    pub fn create_and_start(&self) {
        self.create().assert_ok();
        self.start().assert_ok();
    }

    /// Foreground `run --bundle B <extra…> ID` to completion: the exit status is the
    /// container's, the captured output is the container's stdio.
    pub fn run_with(&self, extra: &[&str]) -> Output {
        self.spawn_run(extra).wait()
    }

    /// Foreground `run --bundle B ID` to completion.
    pub fn run(&self) -> Output {
        self.run_with(&[])
    }

    /// Starts foreground `run --bundle B <extra…> ID` without waiting.
    pub fn spawn_run(&self, extra: &[&str]) -> Spawned {
        let bundle = self.bundle.path_str();
        let mut args = vec!["run", "--bundle", bundle.as_str()];
        args.extend_from_slice(extra);
        args.push(&self.id);
        Spawned::start(self.command(&args))
    }

    /// Starts `create --bundle B ID` without waiting (for killing it mid-way).
    pub fn spawn_create(&self) -> Spawned {
        let bundle = self.bundle.path_str();
        Spawned::start(self.command(&["create", "--bundle", bundle.as_str(), &self.id]))
    }

    /// `state ID` parsed as JSON; panics unless it succeeds.
    #[track_caller]
    pub fn state(&self) -> Value {
        let out = self.invoke(&["state", &self.id]);
        out.assert_ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}):\n{out}"))
    }

    /// The `status` field of `state`.
    #[track_caller]
    pub fn status(&self) -> String {
        self.state()["status"]
            .as_str()
            .expect("state has a string status")
            .to_string()
    }

    /// The `pid` field of `state` (the container's init on the host).
    #[track_caller]
    pub fn pid(&self) -> i32 {
        let pid = self.state()["pid"]
            .as_i64()
            .expect("state has a numeric pid");
        i32::try_from(pid).expect("pid fits i32")
    }

    /// `kill ID SIGNAL`.
    pub fn kill(&self, signal: &str) -> Output {
        self.invoke(&["kill", &self.id, signal])
    }

    /// `delete ID`.
    pub fn delete(&self) -> Output {
        self.invoke(&["delete", &self.id])
    }

    /// `delete --force ID`.
    pub fn delete_force(&self) -> Output {
        self.invoke(&["delete", "--force", &self.id])
    }

    /// Polls `state` until the status is `stopped`.
    #[track_caller]
    pub fn wait_stopped(&self) {
        poll_until(&format!("{} to stop", self.id), PATIENCE, || {
            (self.status() == "stopped").then_some(())
        });
    }

    /// What the container (and the `create` that started it) wrote so far:
    /// (stdout, stderr).
    pub fn output(&self) -> (String, String) {
        match &*self.stdio.borrow() {
            Some((out, err)) => (read_file(out), read_file(err)),
            None => (String::new(), String::new()),
        }
    }

    /// Polls the container's stdout until it contains `needle`; returns it.
    #[track_caller]
    pub fn wait_output(&self, needle: &str) -> String {
        poll_until(
            &format!("{needle:?} on {}'s stdout", self.id),
            PATIENCE,
            || {
                let (out, _) = self.output();
                out.contains(needle).then_some(out)
            },
        )
    }

    /// The JSON log lines written to `<bundle>/log.json` so far.
    pub fn log_lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.bundle.path().join("log.json")).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// What this container left on the host (see [`leftovers`]).
    pub fn leftovers(&self) -> Leftovers {
        leftovers(self.rt.root(), &self.id, self.bundle.path())
    }

    /// Panics unless the container left nothing on the host.
    #[track_caller]
    pub fn assert_no_leftovers(&self) {
        self.leftovers().assert_empty(&self.id);
    }

    /// The end of most tests: `delete --force` must succeed and leave nothing.
    #[track_caller]
    pub fn finish(&self) {
        self.delete_force().assert_ok();
        self.assert_no_leftovers();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // Best effort: the test already reported its own failure (if any). What
        // the runtime still fails to remove is scrubbed so the machine stays clean.
        let _ = self.delete_force();
        self.leftovers().scrub();
    }
}

/// A runtime process started in the background (foreground `run`, or a `create` to
/// be killed mid-way), its stdout/stderr going to files.
pub struct Spawned {
    command: String,
    child: Child,
    out: File,
    err: File,
}

impl Spawned {
    /// Starts `cmd` with captured stdio.
    pub fn start(mut cmd: Command) -> Spawned {
        let out = capture_file();
        let err = capture_file();
        cmd.stdout(out.try_clone().expect("dup stdout file"));
        cmd.stderr(err.try_clone().expect("dup stderr file"));
        let command = describe(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command}: {e}"));
        Spawned {
            command,
            child,
            out,
            err,
        }
    }

    /// The runtime process's pid.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Sends `signal` to the runtime process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, which we have not reaped yet, so the pid
        // cannot have been reused.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(
            rc,
            0,
            "kill({}, {signal}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// stdout so far.
    pub fn stdout(&self) -> String {
        read_file(&self.out)
    }

    /// Polls stdout until it contains `needle`; returns it. Panics (with the
    /// output so far) if the process exits first or nothing comes in time.
    #[track_caller]
    pub fn wait_stdout(&mut self, needle: &str) -> String {
        let what = format!("{needle:?} on stdout of {}", self.command);
        let mut exited = None;
        let found = poll_until(&what, PATIENCE, || {
            if self.stdout().contains(needle) {
                return Some(true);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            None
        });
        let out = self.stdout();
        assert!(
            found,
            "{what}: the process ended first ({exited:?})\n--- stdout\n{out}--- stderr\n{}---",
            read_file(&self.err)
        );
        out
    }

    /// Waits for the process to end (at most [`PATIENCE`], then kills it and panics).
    pub fn wait(mut self) -> Output {
        let status = poll_until(&format!("{} to exit", self.command), PATIENCE, || {
            self.child.try_wait().expect("waiting for the runtime")
        });
        Output {
            command: self.command.clone(),
            status,
            stdout: read_file(&self.out),
            stderr: read_file(&self.err),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` with stdout/stderr to the given files and stdin from /dev/null.
fn run_with_stdio(mut cmd: Command, out: &File, err: &File) -> Output {
    cmd.stdout(out.try_clone().expect("dup stdout file"));
    cmd.stderr(err.try_clone().expect("dup stderr file"));
    let command = describe(&cmd);
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {command}: {e}"));
    Output {
        command,
        status,
        stdout: read_file(out),
        stderr: read_file(err),
    }
}

/// Arranges for `fds[i]` to be fd `3 + i` in the spawned runtime.
fn pass_fds(cmd: &mut Command, fds: &[RawFd]) {
    if fds.is_empty() {
        return;
    }
    let fds = fds.to_vec();
    // First move every source out of the 3..3+n range, so that placing one fd
    // cannot clobber a source not placed yet.
    let high = 100;
    // SAFETY: the closure runs between fork and exec and calls only dup2, fcntl and
    // close, which are async-signal-safe; it allocates nothing (`fds` was moved in
    // before the fork).
    unsafe {
        cmd.pre_exec(move || {
            for (i, &fd) in fds.iter().enumerate() {
                if libc::dup2(fd, high + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..fds.len() {
                let target = 3 + i as RawFd;
                // dup2 clears FD_CLOEXEC on the new fd, so it survives the exec.
                if libc::dup2(high + i as RawFd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(high + i as RawFd);
            }
            Ok(())
        });
    }
}
