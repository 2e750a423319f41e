//! cgroup v2: one hierarchy, controllers enabled from the top down through
//! `cgroup.subtree_control`, and different file names and units from v1.
//! The conversions from the OCI (v1-shaped) values are runc's.

use super::resources::BlockIo;
use super::{read_file, write_field, FreezerState, Result};
use crate::spec::{Cpu, HugepageLimit, Memory};
use anyhow::bail;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

/// Enable, in every ancestor of `dir` from `root` down to `dir`'s parent,
/// each controller the ancestor offers (its `cgroup.controllers`) for its
/// children. All at once first; if the kernel refuses (e.g. `cpu` while a
/// realtime task is around), one by one, ignoring the ones it refuses — as
/// runc does. A resource that then lacks its files fails at `apply` with
/// an error naming the file.
pub fn enable_controllers(root: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(root) else {
        return Ok(());
    };
    let mut level = root.to_path_buf();
    for comp in rel.components() {
        let offered = fs::read_to_string(level.join("cgroup.controllers")).unwrap_or_default();
        let wanted: Vec<String> = offered
            .split_whitespace()
            .map(|c| format!("+{c}"))
            .collect();
        if !wanted.is_empty() {
            let ctl = level.join("cgroup.subtree_control");
            if fs::write(&ctl, wanted.join(" ")).is_err() {
                for w in &wanted {
                    let _ = fs::write(&ctl, w);
                }
            }
        }
        level.push(comp);
    }
    Ok(())
}

/// cpu.shares (v1, 2..262144, default 1024) → cpu.weight (v2, 1..10000,
/// default 100). runc ≥ 1.3 and crun use this curve, which maps the
/// defaults onto each other (1024 → 100) and the ends onto the ends; the
/// older linear formula `1 + (shares-2)*9999/262142` mapped 1024 to 39.
/// 0 means "not set".
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

/// blkio.weight (10..1000) → io.weight (1..10000), runc's linear map.
pub fn blkio_weight_to_io(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// The OCI `swap` is memory+swap (v1 semantics); v2's memory.swap.max is
/// swap alone. Returns the value for memory.swap.max, `None` to leave it.
/// - limit -1 and swap unset → "max" (unlimited memory means unlimited swap)
/// - swap -1 → "max"; swap 0/unset → leave
/// - otherwise swap must be ≥ limit and a limit must be set: swap − limit.
pub fn swap_to_v2(
    limit: Option<i64>,
    swap: Option<i64>,
) -> std::result::Result<Option<String>, String> {
    let limit = limit.unwrap_or(0);
    let swap = swap.unwrap_or(0);
    if limit == -1 && swap == 0 {
        return Ok(Some("max".into()));
    }
    match swap {
        0 => Ok(None),
        -1 => Ok(Some("max".into())),
        s if s < -1 => Err(format!("invalid value {s}")),
        s => {
            if limit == 0 || limit == -1 {
                return Err(
                    "a swap limit needs a memory limit (linux.resources.memory.limit)".into(),
                );
            }
            if s < limit {
                return Err(format!("memory+swap {s} is below the memory limit {limit}"));
            }
            Ok(Some((s - limit).to_string()))
        }
    }
}

fn bytes_or_max(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// memory.max, memory.low, memory.swap.max. `kernel`/`kernelTCP` and
/// `swappiness` have no v2 files (the kernel accounts kernel memory with
/// the rest); runc ignores them there and so does berth.
/// `disableOOMKiller` has no v2 equivalent either: refused, since silently
/// keeping the OOM killer on could kill what the user meant to protect.
pub fn set_memory(dir: &Path, m: &Memory) -> Result<()> {
    let swap = swap_to_v2(m.limit, m.swap)
        .map_err(|e| anyhow::anyhow!("linux.resources.memory.swap: {e}"))?;
    let write_swap =
        |s: &str| write_field("linux.resources.memory.swap", dir, "memory.swap.max", s);
    let limit = m.limit.filter(|&v| v != 0);
    // Like v1: when raising, the order does not matter on v2 (the files are
    // independent), but write swap after max so a failing max leaves swap.
    if let Some(l) = limit {
        write_field(
            "linux.resources.memory.limit",
            dir,
            "memory.max",
            &bytes_or_max(l),
        )?;
    }
    if let Some(s) = swap {
        // Without swap accounting the file is missing; "max" needs nothing.
        if s != "max" || dir.join("memory.swap.max").exists() {
            write_swap(&s)?;
        }
    }
    if let Some(r) = m.reservation.filter(|&v| v != 0) {
        write_field(
            "linux.resources.memory.reservation",
            dir,
            "memory.low",
            &bytes_or_max(r),
        )?;
    }
    if m.disable_oom_killer == Some(true) {
        bail!("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer");
    }
    Ok(())
}

/// cpu.weight (from shares), cpu.max ("quota period"), cpu.max.burst,
/// cpu.idle. Realtime limits have no v2 interface: refused.
pub fn set_cpu(dir: &Path, c: &Cpu) -> Result<()> {
    if c.realtime_runtime.is_some_and(|v| v != 0) || c.realtime_period.is_some_and(|v| v != 0) {
        bail!("linux.resources.cpu.realtimeRuntime: realtime scheduling limits are not supported on cgroup v2");
    }
    if let Some(i) = c.idle {
        write_field("linux.resources.cpu.idle", dir, "cpu.idle", &i.to_string())?;
    }
    let w = shares_to_weight(c.shares.unwrap_or(0));
    if w != 0 {
        write_field(
            "linux.resources.cpu.shares",
            dir,
            "cpu.weight",
            &w.to_string(),
        )?;
    }
    if let Some(v) = cpu_max(c.quota, c.period) {
        write_field("linux.resources.cpu.quota", dir, "cpu.max", &v)?;
    }
    if let Some(b) = c.burst {
        write_field(
            "linux.resources.cpu.burst",
            dir,
            "cpu.max.burst",
            &b.to_string(),
        )?;
    }
    Ok(())
}

/// The cpu.max line: quota ("max" when ≤ 0) and the period if given (the
/// kernel keeps the old period otherwise). `None` when neither is set.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let q = quota.unwrap_or(0);
    let p = period.unwrap_or(0);
    if q == 0 && p == 0 {
        return None;
    }
    let mut s = if q > 0 {
        q.to_string()
    } else {
        "max".to_string()
    };
    if p != 0 {
        s.push_str(&format!(" {p}"));
    }
    Some(s)
}

/// io.bfq.weight (same scale as blkio) when BFQ is there, else io.weight
/// (converted); io.max for throttles (`rbps=N`, 0 → max).
pub fn set_io(dir: &Path, b: &BlockIo) -> Result<()> {
    if b.leaf_weight.is_some_and(|v| v != 0) {
        bail!("linux.resources.blockIO.leafWeight: not supported on cgroup v2");
    }
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight.filter(|&v| v != 0) {
        if bfq {
            write_field(
                "linux.resources.blockIO.weight",
                dir,
                "io.bfq.weight",
                &w.to_string(),
            )?;
        } else {
            write_field(
                "linux.resources.blockIO.weight",
                dir,
                "io.weight",
                &blkio_weight_to_io(w).to_string(),
            )?;
        }
    }
    for (i, d) in b.weight_device.iter().enumerate() {
        if let Some(w) = d.weight.filter(|&v| v != 0) {
            let field = format!("linux.resources.blockIO.weightDevice[{i}].weight");
            let (file, v) = if bfq {
                ("io.bfq.weight", u64::from(w))
            } else {
                ("io.weight", blkio_weight_to_io(w))
            };
            write_field(&field, dir, file, &format!("{}:{} {v}", d.major, d.minor))?;
        }
    }
    for (name, list, _, key) in b.throttles() {
        for (i, t) in list.iter().enumerate() {
            let field = format!("linux.resources.blockIO.{name}[{i}]");
            let rate = if t.rate == 0 {
                "max".to_string()
            } else {
                t.rate.to_string()
            };
            write_field(
                &field,
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", t.major, t.minor),
            )?;
        }
    }
    Ok(())
}

/// hugetlb.<size>.max, and .rsvd.max where present.
pub fn set_hugetlb(dir: &Path, field: &str, h: &HugepageLimit) -> Result<()> {
    let stem = super::v1::hugetlb_stem(dir, field, h, "max")?;
    let v = h.limit.to_string();
    write_field(&format!("{field}.limit"), dir, &format!("{stem}.max"), &v)?;
    let rsvd = format!("{stem}.rsvd.max");
    if dir.join(&rsvd).exists() {
        write_field(&format!("{field}.limit"), dir, &rsvd, &v)?;
    }
    Ok(())
}

/// Check a `unified` key: a plain file name `<controller>.<knob>`, no
/// path separators, no dot-files. Returns the controller prefix.
pub fn check_unified_key(key: &str) -> std::result::Result<&str, String> {
    if key.is_empty() || key.contains('/') || key.starts_with('.') || key.contains('\0') {
        return Err("must be a cgroup file name like \"memory.high\"".into());
    }
    match key.split_once('.') {
        Some((ctrl, knob)) if !ctrl.is_empty() && !knob.is_empty() => Ok(ctrl),
        _ => Err("must be a cgroup file name like \"memory.high\"".into()),
    }
}

/// `linux.resources.unified`: each key is a file in the container's
/// cgroup2 directory. The key is validated; a missing file is reported as
/// the controller not being enabled, or the kernel not having that file.
pub fn set_unified(dir: &Path, unified: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in unified {
        let field = format!("linux.resources.unified[{key:?}]");
        let ctrl = check_unified_key(key).map_err(|e| anyhow::anyhow!("{field}: {e}"))?;
        if !dir.join(key).exists() {
            let enabled = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            if ctrl != "cgroup" && !enabled.split_whitespace().any(|c| c == ctrl) {
                bail!("{field}: the {ctrl} controller is not enabled for {} (cgroup.controllers: {:?})", dir.display(), enabled.trim());
            }
            bail!("{field}: {} does not exist", dir.join(key).display());
        }
        write_field(&field, dir, key, value)?;
    }
    Ok(())
}

/// Write cgroup.freeze and wait until cgroup.events agrees.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    let (v, what) = if frozen {
        ("1", "pause")
    } else {
        ("0", "resume")
    };
    write_field(what, dir, "cgroup.freeze", v)?;
    for _ in 0..2000 {
        if (freezer_state(dir)? == FreezerState::Frozen) == frozen {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if frozen {
        let _ = write_field(what, dir, "cgroup.freeze", "0");
    }
    bail!(
        "{what}: {} did not report frozen {v} in cgroup.events",
        dir.display()
    )
}

/// Frozen when cgroup.events says `frozen 1`; freezing when asked
/// (cgroup.freeze 1) but not there yet.
pub fn freezer_state(dir: &Path) -> Result<FreezerState> {
    let events = super::parse_kv(&read_file(dir, "cgroup.events")?);
    if events.get("frozen") == Some(&1) {
        return Ok(FreezerState::Frozen);
    }
    Ok(if read_file(dir, "cgroup.freeze")? == "1" {
        FreezerState::Freezing
    } else {
        FreezerState::Thawed
    })
}
