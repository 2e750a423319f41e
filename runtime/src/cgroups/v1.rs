//! cgroup v1: one hierarchy per controller (or co-mounted group), each
//! with its own files. Each function takes the container's directory in
//! the hierarchy serving the controller.

use super::resources::{BlockIo, Network};
use super::{
    errno_text, read_file, read_u64, write_field, Cgroup, FreezerState, Placement, Result,
};
use crate::spec::{Cpu, DeviceRule, HugepageLimit, Memory};
use anyhow::{anyhow, bail};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// A new v1 cpuset cgroup has empty `cpuset.cpus` and `cpuset.mems`, and
/// the kernel refuses to add tasks to it until both are set. Copy them from
/// the parent, level by level from the mount point down to `dir` (runc
/// does the same for every level it may have created).
pub fn fill_cpuset(mount: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut parent = mount.to_path_buf();
    for comp in rel.components() {
        let child = parent.join(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if read_file(&child, file)?.is_empty() {
                let v = read_file(&parent, file)?;
                write_field("linux.resources.cpu", &child, file, &v)?;
            }
        }
        parent = child;
    }
    Ok(())
}

/// The order in which to write memory and memory+swap limits.
#[derive(Debug, PartialEq, Eq)]
pub enum MemoryOrder {
    LimitThenSwap,
    SwapThenLimit,
}

/// The kernel insists memory.limit ≤ memory.memsw.limit at every moment,
/// so when both change the write order matters: raise memsw first when the
/// new memsw is above the current limit (or unlimited), lower the limit
/// first otherwise. Same rule as runc's `setMemoryAndSwap`.
pub fn memory_order(current_limit: u64, swap: i64) -> MemoryOrder {
    if swap == -1 || (swap > 0 && current_limit < swap as u64) {
        MemoryOrder::SwapThenLimit
    } else {
        MemoryOrder::LimitThenSwap
    }
}

/// limit, reservation, swap (v1 semantics: `swap` is memory+swap, written
/// to memory.memsw.limit_in_bytes), kernel, kernelTCP, swappiness,
/// disableOOMKiller. Zero means "not set", as in runc.
pub fn set_memory(dir: &Path, m: &Memory) -> Result<()> {
    let limit = m.limit.filter(|&v| v != 0);
    let mut swap = m.swap.filter(|&v| v != 0);
    let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    // Unlimited memory with swap unset means unlimited memory+swap too:
    // otherwise an old memsw limit would keep capping the container.
    if limit == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    if swap.is_some() && !has_memsw {
        bail!(
            "linux.resources.memory.swap: {} does not exist: this kernel has no swap accounting \
             (boot with swapaccount=1) ",
            dir.join("memory.memsw.limit_in_bytes").display()
        );
    }
    let write_limit = |v: i64| {
        write_field(
            "linux.resources.memory.limit",
            dir,
            "memory.limit_in_bytes",
            &v.to_string(),
        )
    };
    let write_swap = |v: i64| {
        write_field(
            "linux.resources.memory.swap",
            dir,
            "memory.memsw.limit_in_bytes",
            &v.to_string(),
        )
    };
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let cur = read_u64(dir, "memory.limit_in_bytes")?;
            match memory_order(cur, s) {
                MemoryOrder::SwapThenLimit => {
                    write_swap(s)?;
                    write_limit(l)?;
                }
                MemoryOrder::LimitThenSwap => {
                    write_limit(l)?;
                    write_swap(s)?;
                }
            }
        }
        (Some(l), None) => write_limit(l)?,
        (None, Some(s)) => write_swap(s)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation.filter(|&v| v != 0) {
        write_field(
            "linux.resources.memory.reservation",
            dir,
            "memory.soft_limit_in_bytes",
            &r.to_string(),
        )?;
    }
    // Kernel memory limits are deprecated (Linux 5.4) and gone on recent
    // kernels; runc ignores `kernel`. berth sets it only where the file
    // still exists and the kernel still accepts it.
    if let Some(k) = m.kernel.filter(|&v| v != 0) {
        if dir.join("memory.kmem.limit_in_bytes").exists() {
            if let Err(e) = fs::write(dir.join("memory.kmem.limit_in_bytes"), k.to_string()) {
                if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    bail!(
                        "linux.resources.memory.kernel: writing {k} to {}: {}",
                        dir.join("memory.kmem.limit_in_bytes").display(),
                        errno_text(&e)
                    );
                }
            }
        }
    }
    if let Some(k) = m.kernel_tcp.filter(|&v| v != 0) {
        write_field(
            "linux.resources.memory.kernelTCP",
            dir,
            "memory.kmem.tcp.limit_in_bytes",
            &k.to_string(),
        )?;
    }
    if let Some(s) = m.swappiness {
        if s > 100 {
            bail!("linux.resources.memory.swappiness: {s} is outside 0..100");
        }
        write_field(
            "linux.resources.memory.swappiness",
            dir,
            "memory.swappiness",
            &s.to_string(),
        )?;
    }
    if m.disable_oom_killer == Some(true) {
        write_field(
            "linux.resources.memory.disableOOMKiller",
            dir,
            "memory.oom_control",
            "1",
        )?;
    }
    Ok(())
}

/// shares, CFS quota/period/burst, realtime runtime/period, idle.
pub fn set_cpu(dir: &Path, c: &Cpu) -> Result<()> {
    if let Some(s) = c.shares.filter(|&v| v != 0) {
        write_field(
            "linux.resources.cpu.shares",
            dir,
            "cpu.shares",
            &s.to_string(),
        )?;
        // The kernel clamps silently to 2..262144; say so, as runc does.
        let got = read_u64(dir, "cpu.shares")?;
        if got != s {
            bail!("linux.resources.cpu.shares: {s} is outside what the kernel allows (it set {got}; the range is 2..262144)");
        }
    }
    let quota = c.quota.filter(|&v| v != 0);
    if let Some(p) = c.period.filter(|&v| v != 0) {
        // The kernel checks quota against period on each write; if the new
        // period does not fit the old quota, write the quota first (runc).
        if let Err(e) = write_field(
            "linux.resources.cpu.period",
            dir,
            "cpu.cfs_period_us",
            &p.to_string(),
        ) {
            let Some(q) = quota else { return Err(e) };
            write_field(
                "linux.resources.cpu.quota",
                dir,
                "cpu.cfs_quota_us",
                &q.to_string(),
            )?;
            write_field(
                "linux.resources.cpu.period",
                dir,
                "cpu.cfs_period_us",
                &p.to_string(),
            )?;
        }
    }
    if let Some(q) = quota {
        write_field(
            "linux.resources.cpu.quota",
            dir,
            "cpu.cfs_quota_us",
            &q.to_string(),
        )?;
    }
    if let Some(b) = c.burst {
        write_field(
            "linux.resources.cpu.burst",
            dir,
            "cpu.cfs_burst_us",
            &b.to_string(),
        )?;
    }
    if let Some(p) = c.realtime_period.filter(|&v| v != 0) {
        write_field(
            "linux.resources.cpu.realtimePeriod",
            dir,
            "cpu.rt_period_us",
            &p.to_string(),
        )?;
    }
    if let Some(r) = c.realtime_runtime.filter(|&v| v != 0) {
        write_field(
            "linux.resources.cpu.realtimeRuntime",
            dir,
            "cpu.rt_runtime_us",
            &r.to_string(),
        )?;
    }
    if let Some(i) = c.idle {
        write_field("linux.resources.cpu.idle", dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// weight, leafWeight, per-device weights and throttles. The BFQ
/// scheduler's `blkio.bfq.weight*` files are used when present, as runc does.
pub fn set_blkio(dir: &Path, b: &BlockIo) -> Result<()> {
    let bfq = dir.join("blkio.bfq.weight").exists();
    let (weight_file, weight_dev_file) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight.filter(|&v| v != 0) {
        write_field(
            "linux.resources.blockIO.weight",
            dir,
            weight_file,
            &w.to_string(),
        )?;
    }
    if let Some(w) = b.leaf_weight.filter(|&v| v != 0) {
        write_field(
            "linux.resources.blockIO.leafWeight",
            dir,
            "blkio.leaf_weight",
            &w.to_string(),
        )?;
    }
    for (i, d) in b.weight_device.iter().enumerate() {
        if let Some(w) = d.weight.filter(|&v| v != 0) {
            let field = format!("linux.resources.blockIO.weightDevice[{i}].weight");
            write_field(
                &field,
                dir,
                weight_dev_file,
                &format!("{}:{} {w}", d.major, d.minor),
            )?;
        }
        if let Some(w) = d.leaf_weight.filter(|&v| v != 0) {
            let field = format!("linux.resources.blockIO.weightDevice[{i}].leafWeight");
            write_field(
                &field,
                dir,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", d.major, d.minor),
            )?;
        }
    }
    for (name, list, file, _) in b.throttles() {
        for (i, t) in list.iter().enumerate() {
            let field = format!("linux.resources.blockIO.{name}[{i}]");
            write_field(
                &field,
                dir,
                file,
                &format!("{}:{} {}", t.major, t.minor, t.rate),
            )?;
        }
    }
    Ok(())
}

/// The hugetlb file stem for a page size: "2MB" → "hugetlb.2MB". The page
/// size must be one the kernel offers (its files exist).
pub fn hugetlb_stem(dir: &Path, field: &str, h: &HugepageLimit, probe: &str) -> Result<String> {
    let stem = format!("hugetlb.{}", h.page_size);
    if h.page_size.contains('/') || !dir.join(format!("{stem}.{probe}")).exists() {
        bail!(
            "{field}.pageSize: {:?} is not a huge page size this host supports ({} does not exist)",
            h.page_size,
            dir.join(format!("{stem}.{probe}")).display()
        );
    }
    Ok(stem)
}

/// hugetlb.<size>.limit_in_bytes, and the reservation limit where the
/// kernel has it (runc sets both so reservations cannot dodge the limit).
pub fn set_hugetlb(dir: &Path, field: &str, h: &HugepageLimit) -> Result<()> {
    let stem = hugetlb_stem(dir, field, h, "limit_in_bytes")?;
    let v = h.limit.to_string();
    write_field(
        &format!("{field}.limit"),
        dir,
        &format!("{stem}.limit_in_bytes"),
        &v,
    )?;
    let rsvd = format!("{stem}.rsvd.limit_in_bytes");
    if dir.join(&rsvd).exists() {
        write_field(&format!("{field}.limit"), dir, &rsvd, &v)?;
    }
    Ok(())
}

/// The container's directory in the v1 hierarchy of `ctrl` (net_cls or
/// net_prio), or an error naming `field` when the host has none.
pub fn network_dir(cg: &Cgroup, ctrl: &str, field: &str) -> Result<std::path::PathBuf> {
    match cg.placement(ctrl) {
        Some(Placement::V1(d)) => Ok(d),
        Some(Placement::V2(_)) => Err(anyhow!(
            "{field}: {ctrl} is a cgroup v1 controller; cgroup v2 has no equivalent"
        )),
        None => Err(anyhow!(
            "{field}: the {ctrl} cgroup controller is not mounted on this host (it needs a cgroup v1 {ctrl} hierarchy)"
        )),
    }
}

/// net_cls.classid and net_prio.ifpriomap: v1-only controllers. As runc
/// v1.1.5 (libcontainer/cgroups/fs/net_cls.go, net_prio.go): a class id of 0
/// means "not set" and is not written; each priority is written on its own
/// as `<interface> <priority>` (the kernel resolves the name in the writer's
/// network namespace: the runtime's, not the container's).
pub fn set_network(cg: &Cgroup, n: &Network) -> Result<()> {
    if let Some(id) = n.class_id.filter(|&id| id != 0) {
        let d = network_dir(cg, "net_cls", "linux.resources.network.classID")?;
        write_field(
            "linux.resources.network.classID",
            &d,
            "net_cls.classid",
            &id.to_string(),
        )?;
    }
    for (i, p) in n.priorities.iter().enumerate() {
        let field = format!("linux.resources.network.priorities[{i}]");
        let d = network_dir(cg, "net_prio", &field)?;
        write_field(
            &field,
            &d,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name, p.priority),
        )?;
    }
    Ok(())
}

/// A device rule in the kernel's v1 syntax: `c 1:3 rwm`, `a *:* rwm`.
pub fn device_rule_line(r: &DeviceRule) -> Result<String> {
    let typ = r.typ.as_deref().unwrap_or("a");
    if !matches!(typ, "a" | "b" | "c") {
        bail!("unknown device type {typ:?} (want a, b or c)");
    }
    let num = |n: Option<i64>| match n {
        None | Some(-1) => "*".to_string(),
        Some(n) => n.to_string(),
    };
    let access = r.access_string().map_err(|e| anyhow!("access {e}"))?;
    Ok(format!("{typ} {}:{} {access}", num(r.major), num(r.minor)))
}

/// Is `r` the catch-all `a *:*` rule?
pub fn is_catch_all(r: &DeviceRule) -> bool {
    r.typ.as_deref().unwrap_or("a") == "a"
        && r.major.unwrap_or(-1) == -1
        && r.minor.unwrap_or(-1) == -1
}

/// Write the rules in order to devices.allow / devices.deny. The kernel's
/// v1 list then means "the last rule that matches decides". The list is
/// first reset — to deny-all when it starts with a catch-all deny (the
/// usual OCI shape, never briefly too open), else to allow-all, the
/// default a fresh cgroup inherits — so an update replaces old rules.
pub fn set_devices(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let starts_deny_all = rules.first().is_some_and(|r| !r.allow && is_catch_all(r));
    if !starts_deny_all && !rules.first().is_some_and(|r| r.allow && is_catch_all(r)) {
        write_field("linux.resources.devices", dir, "devices.allow", "a *:* rwm")?;
    }
    for (i, r) in rules.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        if r.access_bits() == Ok(0) {
            // A deny rule naming no known access (runc's `a`): nothing to deny.
            continue;
        }
        let line = device_rule_line(r).map_err(|e| anyhow!("{field}: {e}"))?;
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write_field(&field, dir, file, &line)?;
    }
    Ok(())
}

/// Freeze via freezer.state and wait for the kernel to report FROZEN.
/// FREEZING means some task has not stopped yet; writing FROZEN again
/// nudges the kernel to retry it (runc does the same). If it never
/// settles, thaw again and fail rather than leave a half-frozen container.
pub fn freeze(dir: &Path) -> Result<()> {
    for attempt in 0..2000u32 {
        if attempt % 50 == 0 {
            write_field("pause", dir, "freezer.state", "FROZEN")?;
        }
        match read_file(dir, "freezer.state")?.as_str() {
            "FROZEN" => return Ok(()),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let _ = thaw(dir);
    bail!(
        "freezing {}: still FREEZING after 2000 tries; thawed again",
        dir.display()
    )
}

pub fn thaw(dir: &Path) -> Result<()> {
    write_field("resume", dir, "freezer.state", "THAWED")?;
    for _ in 0..1000 {
        if read_file(dir, "freezer.state")? == "THAWED" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    bail!(
        "thawing {}: freezer.state did not become THAWED",
        dir.display()
    )
}

pub fn freezer_state(dir: &Path) -> Result<FreezerState> {
    Ok(match read_file(dir, "freezer.state")?.as_str() {
        "FROZEN" => FreezerState::Frozen,
        "FREEZING" => FreezerState::Freezing,
        _ => FreezerState::Thawed,
    })
}
