//! OCI lifecycle hooks (runtime-spec config.md §POSIX-platform Hooks).
//!
//! Who runs which hook, and with which state on stdin:
//!
//! | hook | run by | where | `status` on stdin | a failure |
//! |---|---|---|---|---|
//! | prestart | runtime | host, during `create` | `created` | fails `create` |
//! | createRuntime | runtime | host, during `create` | `creating` | fails `create` |
//! | createContainer | init | container namespaces, cwd = rootfs, before pivot_root | `creating` | fails `create` |
//! | startContainer | init | container, after `start`, before the program | `created` | fails the start |
//! | poststart | runtime | host, before `start` returns | `running` | warning, the rest still run |
//! | poststop | runtime | host, during `delete` | `stopped` | warning, the rest still run |
//!
//! The prestart `created` and poststart `running` are what runtime-tools'
//! `hooks_stdin` checks and crun sends (runc 1.1.5 sends `creating` and
//! `created`). This module is used by both sides (the runtime process and
//! init), so it depends on nothing but the spec types.

use crate::spec::Hook;
use std::fmt;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The six hook lists of `config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    /// The field name under `hooks` in config.json.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    /// The `status` the state on the hook's stdin carries (see the table above).
    pub fn status(self) -> &'static str {
        match self {
            Kind::Prestart | Kind::StartContainer => "created",
            Kind::CreateRuntime | Kind::CreateContainer => "creating",
            Kind::Poststart => "running",
            Kind::Poststop => "stopped",
        }
    }

    /// runtime-spec: a failing poststart or poststop hook is logged as a
    /// warning and the remaining hooks and the lifecycle go on.
    pub fn failure_is_fatal(self) -> bool {
        !matches!(self, Kind::Poststart | Kind::Poststop)
    }
}

/// Why one hook failed. The text contains runc's "error running hook", which
/// clients and runc's test-suite match.
#[derive(Debug)]
pub struct HookError {
    pub kind: Kind,
    pub index: usize,
    pub path: String,
    pub why: String,
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hooks.{}[{}] ({}): error running hook: {}",
            self.kind.field(),
            self.index,
            self.path,
            self.why
        )
    }
}

impl std::error::Error for HookError {}

/// `state` with the status for `kind` (the caller's copy is not changed).
pub fn state_for(kind: Kind, state: &serde_json::Value) -> serde_json::Value {
    let mut st = state.clone();
    if let Some(o) = st.as_object_mut() {
        o.insert("status".into(), kind.status().into());
    }
    st
}

/// Run the hooks of one kind in the listed order, each with `state` (status
/// set for `kind`) on stdin. For fatal kinds the first failure stops the
/// list and is returned; for poststart/poststop every failure is passed to
/// `warn` and the next hook still runs.
pub fn run(
    kind: Kind,
    hooks: &[Hook],
    state: &serde_json::Value,
    warn: &mut dyn FnMut(&HookError),
) -> Result<(), HookError> {
    let st = state_for(kind, state).to_string();
    for (index, h) in hooks.iter().enumerate() {
        if let Err(why) = run_one(h, &st) {
            let e = HookError {
                kind,
                index,
                path: h.path.display().to_string(),
                why,
            };
            if kind.failure_is_fatal() {
                return Err(e);
            }
            warn(&e);
        }
    }
    Ok(())
}

/// Run non-fatal hooks (poststart, poststop), logging each failure as a
/// warning in runc's log format.
pub fn run_warn(kind: Kind, hooks: &[Hook], state: &serde_json::Value) {
    let _ = run(kind, hooks, state, &mut |e| {
        crate::log::warn(&e.to_string())
    });
}

/// Describe how a hook ended when it did not exit 0.
pub fn describe_status(status: ExitStatus) -> String {
    match status.signal() {
        Some(libc::SIGSYS) => "killed by signal SIGSYS: bad system call (seccomp)".into(),
        Some(sig) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("killed by signal {}", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => format!("exit status {}", status.code().unwrap_or(-1)),
    }
}

fn run_one(h: &Hook, state: &str) -> Result<(), String> {
    let mut cmd = Command::new(&h.path);
    if let Some((argv0, rest)) = h.args.split_first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in &h.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("starting it: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin: EPIPE is not an error.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = h
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                let err = err.trim();
                let how = describe_status(status);
                return Err(if err.is_empty() {
                    how
                } else {
                    format!("{how}: {err}")
                });
            }
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {} s", h.timeout.unwrap_or(0)));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }
    }

    #[test]
    fn status_per_kind() {
        let st = serde_json::json!({"status": "creating", "id": "x"});
        assert_eq!(state_for(Kind::Prestart, &st)["status"], "created");
        assert_eq!(state_for(Kind::Poststart, &st)["status"], "running");
        assert_eq!(state_for(Kind::Poststop, &st)["status"], "stopped");
        assert_eq!(state_for(Kind::CreateRuntime, &st)["id"], "x");
    }

    #[test]
    fn fatal_kinds_stop_at_first_failure() {
        let dir = std::env::temp_dir().join(format!("berth-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let hooks = [
            sh("exit 3"),
            sh(&format!("echo second >> {}", out.display())),
        ];
        let e = run(Kind::Prestart, &hooks, &serde_json::json!({}), &mut |_| {
            panic!("no warning for a fatal kind")
        })
        .unwrap_err();
        assert_eq!(e.index, 0);
        assert!(e.to_string().contains("hooks.prestart[0]"), "{e}");
        assert!(e.to_string().contains("error running hook"), "{e}");
        assert!(!out.exists());

        let mut warned = Vec::new();
        run(Kind::Poststop, &hooks, &serde_json::json!({}), &mut |e| {
            warned.push(e.index)
        })
        .unwrap();
        assert_eq!(warned, vec![0]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "second\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sigsys_is_named() {
        let e = run(
            Kind::StartContainer,
            &[sh("kill -SYS $$")],
            &serde_json::json!({}),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("bad system call (seccomp)"), "{e}");
    }
}
