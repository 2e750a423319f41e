//! Test harness for driving berth end to end.
//!
//! The tests under `integration/tests/runtime_*.rs` start real containers as root
//! through the runtime's runc-compatible command line, so the same suite can be
//! pointed at `runc` to check that the tests themselves are right:
//!
//! ```text
//! BERTH_BIN=/usr/sbin/runc BERTH_FIXTURES=$PWD/build cargo test -p berth-integration
//! ```
//!
//! Environment:
//!
//! | variable | default | what |
//! |---|---|---|
//! | `BERTH_BIN` | `<workspace>/target/release/berth` | the runtime binary under test |
//! | `BERTH_FIXTURES` | `<workspace>/build` | fixtures built by `make fixtures` (`rootfs/busybox`) |
//! | `BERTH_ROOT` | `/run/berth` | the `--root` every invocation passes |
//!
//! The pieces, in the order a test uses them:
//!
//! - [`Bundle`]: a temp bundle directory with a runc-spec-like `config.json`, patched
//!   one line at a time with [`Bundle::with`] (runc's bats `update_config`).
//! - [`Runtime`]: the binary plus its `--root`; [`Output`] is one finished invocation.
//! - [`Container`]: one container id bound to a bundle; its verbs (`create`, `start`,
//!   `state`, `kill`, `delete`, …) always pass `--log <bundle>/log.json --log-format json`
//!   as containerd does, and its `Drop` runs `delete --force` so a failing test leaks
//!   nothing.
//! - [`leftovers`]: what a container left on the host (state dir, cgroups, mounts,
//!   processes); every test ends by asserting it is empty.
//! - [`ConsoleSocket`]: the receiving end of `--console-socket`.

mod bundle;
mod cgroup;
mod console;
mod container;
mod leftovers;
mod runtime;
pub mod testdns;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use bundle::Bundle;
pub use cgroup::{
    cgroup2_mountpoint, cgroup_file, missing_controller, mounted_memberships, CgroupFile,
};
pub use console::{ConsoleConn, ConsoleSocket, Pty};
pub use container::{Container, Spawned};
pub use leftovers::{leftovers, Leftover, Leftovers};
pub use runtime::{Output, Runtime};

/// The workspace root (the parent of this crate's directory).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_path_buf()
}

/// The runtime binary under test: `$BERTH_BIN`, else `<workspace>/target/release/berth`.
pub fn berth_bin() -> PathBuf {
    match std::env::var_os("BERTH_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => workspace_dir().join("target/release/berth"),
    }
}

/// The fixtures directory: `$BERTH_FIXTURES`, else `<workspace>/build`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("BERTH_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_dir().join("build"),
    }
}

/// The shared, read-only busybox rootfs (`make fixtures`). Tests never write to it:
/// bundles use it with `root.readonly = true`, and tests that need a writable or
/// modified tree copy it ([`Bundle::busybox_copy`]).
pub fn busybox_rootfs() -> PathBuf {
    let rootfs = fixtures_dir().join("rootfs/busybox");
    assert!(
        rootfs.join("bin/busybox").exists(),
        "busybox fixture missing at {} (run `make fixtures` or set BERTH_FIXTURES)",
        rootfs.display()
    );
    rootfs
}

/// A container id unique across the tests of this process and across processes:
/// `it-<pid>-<counter>-<tag>`. The counter is fixed-width and comes before the tag,
/// so no id is a substring of another one (which the leftover scan relies on when it
/// greps mountinfo, cgroup paths and command lines for the id).
pub fn unique_id(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    format!("it-{}-{n:04}-{tag}", std::process::id())
}

/// Polls `cond` every 10 ms until it returns `Some`, panicking with `what` after
/// `timeout`. This is waiting for an event (a file to appear, a state to change),
/// never measuring how long something took.
///
/// `timeout` is stretched by [`scaled`] on slow machines.
pub fn poll_until<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = cond() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records that `test` is skipped on this kernel because `reason` (the missing
/// kernel feature, e.g. "idmapped mounts on tmpfs: Linux 6.3") and prints it. The
/// caller then returns without asserting. The kernel matrix (`make
/// test-kernels`, docs/kernels.md) sets `$BERTH_SKIP_LOG` and lists each line,
/// so a skip is always visible, never a silent pass.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let line = format!("{test}: {reason}");
    eprintln!("SKIP {line}");
    if let Some(path) = std::env::var_os("BERTH_SKIP_LOG") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("opening $BERTH_SKIP_LOG {path:?}: {e}"));
        writeln!(f, "{line}").expect("writing $BERTH_SKIP_LOG");
    }
}

/// The default patience for events in a container (state changes, output lines),
/// before [`scaled`].
pub const PATIENCE: Duration = Duration::from_secs(10);

/// `d` times `$BERTH_TEST_TIME_SCALE` (default 1): the kernel matrix runs the
/// suite in emulated (TCG) VMs, ten or more times slower than the host, and
/// sets it there (`make test-kernels`, docs/kernels.md). Only waits for events
/// are stretched, never a duration a test measures.
pub fn scaled(d: Duration) -> Duration {
    let factor = std::env::var("BERTH_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|f| *f >= 1)
        .unwrap_or(1);
    d * factor
}

/// `n` divided by `$BERTH_TEST_TIME_SCALE` (at least 1): how many times to repeat
/// something whose assertion holds for any count (no leftovers after N runs, no
/// failure in N runs). The kernel matrix's emulated VMs run fewer rounds; `make
/// test` runs all `n`. Never for a count the test asserts on.
pub fn scaled_count(n: usize) -> usize {
    let factor = std::env::var("BERTH_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|f| *f >= 1)
        .unwrap_or(1);
    (n / factor).max(1)
}

/// `readlink` of one of this (host) process's namespaces, e.g. `"net:[4026531840]"`.
pub fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap_or_else(|e| panic!("readlink /proc/self/ns/{kind}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Asserts that `haystack` contains every one of `needles` (case-insensitive),
/// printing the whole text on failure.
#[track_caller]
pub fn assert_mentions(haystack: &str, needles: &[&str]) {
    let lower = haystack.to_lowercase();
    for needle in needles {
        assert!(
            lower.contains(&needle.to_lowercase()),
            "expected the message to mention {needle:?}, got:\n{haystack}"
        );
    }
}
