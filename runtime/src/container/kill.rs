//! `kill`: send a signal to init, or with `--all` to every process.

use super::Container;
use crate::state::{Root, Status};
use anyhow::{bail, Result};

/// Parse `9`, `KILL` or `SIGKILL` (clients use all three). `0` sends no
/// signal but checks the target exists, as kill(2) does (runc passes any
/// number through; kill.bats sends 0 to a stopped container with `--all`).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    match name.parse::<nix::sys::signal::Signal>() {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("unknown signal {s:?}"),
    }
}

pub fn kill(root: &Root, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = parse_signal(signal)?;
    let c = Container::load(root, id)?;
    let status = c.status();
    if all {
        // Freeze, signal, thaw (or cgroup.kill): no process can fork
        // between listing and signalling. A missing cgroup (a stopped
        // container) has no processes: --all then succeeds, as with runc
        // (kata-containers#5555).
        if let Some(cg) = c.cgroup()? {
            cg.kill_all(sig)?;
        }
        return Ok(());
    }
    if matches!(status, Status::Stopped) {
        bail!("container not running");
    }
    let Some(init) = c.state.record.init.filter(|p| p.alive()) else {
        bail!("container not running");
    };
    // SAFETY: kill(2) on init, whose start time alive() just checked.
    if unsafe { libc::kill(init.pid, sig) } != 0 {
        return Err(crate::sys::last(format_args!("kill {} {sig}", init.pid)).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signals() {
        assert_eq!(super::parse_signal("9").unwrap(), 9);
        assert_eq!(super::parse_signal("KILL").unwrap(), 9);
        assert_eq!(super::parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(super::parse_signal("usr1").unwrap(), 10);
        assert!(super::parse_signal("SIGFOO").is_err());
        assert_eq!(super::parse_signal("0").unwrap(), 0);
        assert!(super::parse_signal("65").is_err());
        assert!(super::parse_signal("-1").is_err());
    }
}
