//! runc's log format, so containerd's shim and conmon can read berth's
//! errors back: one JSON object per line, `{"level":"error","msg":"…","time":"…"}`
//! with `--log-format json`, or logrus's text form
//! `time="…" level=error msg="…"` otherwise. The log file is appended to,
//! never truncated (containerd reuses `<bundle>/log.json`).

use std::fs::OpenOptions;
use std::io::Write;
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
    file: Option<PathBuf>,
    json: bool,
    min: Level,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    file: None,
    json: false,
    min: Level::Info,
});

/// Configure from the global flags. The file is created at once, so a
/// client finds it even when berth fails before logging anything.
pub fn init(file: Option<PathBuf>, json: bool, debug: bool) {
    if let Some(f) = &file {
        let _ = OpenOptions::new().create(true).append(true).open(f);
    }
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    l.file = file;
    l.json = json;
    l.min = if debug { Level::Debug } else { Level::Info };
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
    let line = if l.json {
        serde_json::json!({"level": level.name(), "msg": msg, "time": now_rfc3339()}).to_string()
    } else {
        format!(
            "time={:?} level={} msg={:?}",
            now_rfc3339(),
            level.name(),
            msg
        )
    };
    match &l.file {
        Some(path) => {
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{line}");
            }
        }
        // Without --log, runc's logrus writes to stderr. Errors are printed
        // by main already ("berth: …"); warnings would otherwise be lost.
        None if level == Level::Warn => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        None => {}
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
