//! The runtime binary and the result of one invocation of it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;

use tempfile::TempDir;

/// The runtime under test plus the `--root` every invocation passes.
///
/// Cheap to clone: a private root (see [`Runtime::private`]) is shared and removed
/// when the last clone is dropped.
#[derive(Clone)]
pub struct Runtime {
    bin: PathBuf,
    root: PathBuf,
    _private_root: Option<Arc<TempDir>>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// The runtime with the shared state root: `$BERTH_ROOT`, else `/run/berth`
    /// (berth's default, which the tests still pass explicitly like containerd does).
    pub fn new() -> Self {
        let root = std::env::var_os("BERTH_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/berth"));
        Runtime {
            bin: crate::berth_bin(),
            root,
            _private_root: None,
        }
    }

    /// The runtime with a fresh, empty state root of its own, for tests that look at
    /// the whole root (`list` must be empty) while other tests run in parallel.
    pub fn private() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("berth-itest-root-")
            .tempdir_in("/run")
            .expect("creating a private state root under /run");
        Runtime {
            bin: crate::berth_bin(),
            root: dir.path().to_path_buf(),
            _private_root: Some(Arc::new(dir)),
        }
    }

    /// Another OCI runtime binary (e.g. `/usr/sbin/runc`, to show what runc does on
    /// the same bundle) with a private state root like [`Runtime::private`], so its
    /// state never mixes with berth's in `/run/berth`.
    pub fn other(bin: impl Into<PathBuf>) -> Self {
        Runtime {
            bin: bin.into(),
            ..Self::private()
        }
    }

    /// The binary under test.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The state root passed as `--root`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<bin> --root <root> <args…>` with stdin from /dev/null, not yet started.
    /// Global flags go before the verb, as go-runc puts them.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root);
        cmd.args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `<bin> --root <root> <args…>` to completion and captures its output.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        Output::of(self.command(args))
    }
}

/// One finished invocation of the runtime: exit status and captured output.
#[derive(Debug)]
pub struct Output {
    /// The command line, for failure messages.
    pub command: String,
    /// How the process ended.
    pub status: ExitStatus,
    /// Everything written to stdout (including a detached container's, if it wrote
    /// before we read).
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Output {
    /// Runs `cmd` to completion, with stdout and stderr sent to unnamed temp files
    /// rather than pipes: a detached container inherits the runtime's stdio, and a
    /// pipe would then never reach EOF while the container lives.
    pub fn of(mut cmd: Command) -> Output {
        let (out, err) = (capture_file(), capture_file());
        cmd.stdout(out.try_clone().expect("dup stdout file"));
        cmd.stderr(err.try_clone().expect("dup stderr file"));
        let command = describe(&cmd);
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("running {command}: {e}"));
        Output {
            command,
            status,
            stdout: read_file(&out),
            stderr: read_file(&err),
        }
    }

    /// The exit code, or `None` when the process was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// True on exit status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout and stderr together, for "the message names X" checks.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics (showing the command and its output) unless the exit status is 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Panics unless the process exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit status:\n{self}");
        self
    }

    /// Panics unless the process exited non-zero (not by a signal) and its output
    /// mentions every one of `needles` (case-insensitive).
    #[track_caller]
    pub fn assert_fails_mentioning(&self, needles: &[&str]) -> &Self {
        match self.code() {
            Some(code) if code != 0 => {}
            _ => panic!("expected a non-zero exit:\n{self}"),
        }
        let lower = self.text().to_lowercase();
        for needle in needles {
            assert!(
                lower.contains(&needle.to_lowercase()),
                "expected the error to mention {needle:?}:\n{self}"
            );
        }
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "unknown status".to_string(),
        };
        write!(
            f,
            "$ {}\n{how}\n--- stdout\n{}--- stderr\n{}---",
            self.command, self.stdout, self.stderr
        )
    }
}

/// An unnamed temp file to capture a stream into.
pub(crate) fn capture_file() -> File {
    tempfile::tempfile().expect("creating a capture file")
}

/// The whole content of `file` from offset 0 (works while another process still
/// appends to it through its own fd).
pub(crate) fn read_file(file: &File) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = file
            .read_at(&mut buf, data.len() as u64)
            .expect("reading a capture file");
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&data).into_owned()
}

/// `program arg arg…` for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}
