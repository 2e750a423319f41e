//! runc's log format, so containerd's shim and conmon can read berth's
//! errors back: one JSON object per line, `{"level":"error","msg":"…","time":"…"}`
//! with `--log-format json`, or logrus's text form
//! `time="…" level=error msg="…"` otherwise. The log file is appended to,
//! never truncated (containerd reuses `<bundle>/log.json`).
//!
//! Without `--log`, `--debug` lines go to stderr, as runc's do. The
//! destination is opened once, close-on-exec, and inherited by stage 1 and
//! init across fork: they log to it after pivot_root (where the log path no
//! longer resolves) and after their stdio became the container's.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    /// The `--log` file (O_APPEND), or a copy of stderr with `--debug` and
    /// no `--log`; None: nothing is logged (errors still reach stderr).
    out: Option<File>,
    /// `out` is the `--log` file (not stderr).
    is_file: bool,
    json: bool,
    min: Level,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    out: None,
    is_file: false,
    json: false,
    min: Level::Info,
});

/// Configure from the global flags. The file is created at once, so a
/// client finds it even when berth fails before logging anything.
pub fn init(file: Option<PathBuf>, json: bool, debug: bool) {
    let out = match &file {
        Some(f) => OpenOptions::new().create(true).append(true).open(f).ok(),
        // A close-on-exec copy of stderr (fd >= 3, like any fd berth opens),
        // so init still reaches the caller's stderr once fd 2 is the
        // container's.
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd we own, or -1.
        None if debug => match unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) } {
            -1 => None,
            // SAFETY: a fresh fd nobody else owns.
            fd => Some(File::from(unsafe { OwnedFd::from_raw_fd(fd) })),
        },
        None => None,
    };
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.out = out;
    l.is_file = file.is_some();
    l.json = json;
    l.min = if debug { Level::Debug } else { Level::Info };
}

/// Is `fd` the logger's own fd (the log file or the copy of stderr)?
pub fn owns_fd(fd: std::os::fd::RawFd) -> bool {
    use std::os::fd::AsRawFd;
    let l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.out.as_ref().is_some_and(|f| f.as_raw_fd() == fd)
}

/// Does the log go to stderr (`--debug` without `--log`)?
pub fn to_stderr() -> bool {
    let l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.out.is_some() && !l.is_file
}

/// Is `--debug` on (so a caller can skip building a costly message)?
pub fn debug_enabled() -> bool {
    let l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.out.is_some() && l.min == Level::Debug
}

/// RFC 3339 time with nanoseconds, UTC, computed without a date crate.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// Format a Unix time as `2026-11-23T08:21:00.123456789Z`.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Write one log line. Errors writing the log itself are ignored: the
/// message also goes to stderr for errors, and logging must never turn a
/// success into a failure.
pub fn log(level: Level, msg: &str) {
    let l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    if level < l.min {
        return;
    }
    let mut line = format_line(l.json, level, msg, &now_rfc3339());
    let Some(mut out) = l.out.as_ref() else {
        // Without --log, runc's logrus writes to stderr. Errors are printed
        // by main already ("berth: …"); warnings would otherwise be lost.
        if level == Level::Warn {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        return;
    };
    line.push('\n');
    // One write(2) per line: with O_APPEND, lines from the runtime, stage 1
    // and init never interleave.
    let _ = out.write_all(line.as_bytes());
}

/// One log line without its newline: runc's JSON
/// `{"level":…,"msg":…,"time":…}` or logrus's text form.
fn format_line(json: bool, level: Level, msg: &str, time: &str) -> String {
    if json {
        serde_json::json!({"level": level.name(), "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level={} msg={msg:?}", level.name())
    }
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_formats() {
        use super::{format_line, Level};
        let t = "2026-01-02T03:04:05.000000006Z";
        assert_eq!(
            format_line(true, Level::Debug, "a \"b\"", t),
            r#"{"level":"debug","msg":"a \"b\"","time":"2026-01-02T03:04:05.000000006Z"}"#
        );
        assert_eq!(
            format_line(false, Level::Warn, "x y", t),
            r#"time="2026-01-02T03:04:05.000000006Z" level=warning msg="x y""#
        );
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::rfc3339(1_795_392_000, 5),
            "2026-11-23T00:00:00.000000005Z"
        );
        assert_eq!(
            super::rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
