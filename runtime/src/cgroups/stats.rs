//! Usage numbers in the JSON shape of runc's `events --stats` `data`
//! object (runc's `types/events.go`), which containerd's shim (go-runc)
//! and podman decode. Field names and omit-when-zero rules follow it.

use super::{parse_kv, read_file, read_kv, read_u64, Cgroup, Placement, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: BTreeMap<String, u64>,
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// nanoseconds
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Collect every controller this host serves. Missing files (a controller
/// not mounted, a kernel without some counter) leave zeros, as runc's
/// stats do; a missing cgroup directory is an error.
pub fn collect(cg: &Cgroup) -> Result<Stats> {
    let mut s = Stats::default();
    let dirs = cg.leaves();
    if let Some(d) = dirs.iter().find(|d| !d.exists()) {
        anyhow::bail!("reading stats: cgroup {} does not exist", d.display());
    }
    match cg.placement("cpu") {
        Some(Placement::V1(d)) => {
            let t = read_kv(&d, "cpu.stat").unwrap_or_default();
            s.cpu.throttling = Throttling {
                periods: t.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: t.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: t.get("throttled_time").copied().unwrap_or(0),
            };
        }
        Some(Placement::V2(d)) => cpu_v2(&d, &mut s.cpu),
        None => {}
    }
    if let Some(Placement::V1(d)) = cg.placement("cpuacct") {
        cpuacct_v1(&d, &mut s.cpu.usage);
    } else if let Some(d) = cg
        .v2_dir()
        .filter(|_| matches!(cg.layout, super::Layout::V2 { .. }))
    {
        // cpu.stat's usage lines are there even without the cpu controller.
        cpu_v2(&d, &mut s.cpu);
    }
    if let Some(Placement::V1(d) | Placement::V2(d)) = cg.placement("cpuset") {
        s.cpuset.cpus = parse_list(
            &read_file(&d, "cpuset.effective_cpus")
                .or_else(|_| read_file(&d, "cpuset.cpus.effective"))
                .unwrap_or_default(),
        );
        s.cpuset.mems = parse_list(
            &read_file(&d, "cpuset.effective_mems")
                .or_else(|_| read_file(&d, "cpuset.mems.effective"))
                .unwrap_or_default(),
        );
        s.cpuset.cpu_exclusive = read_u64(&d, "cpuset.cpu_exclusive").unwrap_or(0);
        s.cpuset.mem_exclusive = read_u64(&d, "cpuset.mem_exclusive").unwrap_or(0);
    }
    match cg.placement("memory") {
        Some(Placement::V1(d)) => memory_v1(&d, &mut s.memory),
        Some(Placement::V2(d)) => memory_v2(&d, &mut s.memory),
        None => {}
    }
    if let Some(Placement::V1(d) | Placement::V2(d)) = cg.placement("pids") {
        s.pids.current = read_u64(&d, "pids.current").unwrap_or(0);
        s.pids.limit = match read_u64(&d, "pids.max").unwrap_or(0) {
            u64::MAX => 0,
            n => n,
        };
    }
    match cg.placement("blkio").or_else(|| cg.placement("io")) {
        Some(Placement::V1(d)) => {
            for (file, out) in [
                (
                    "io_service_bytes_recursive",
                    &mut s.blkio.io_service_bytes_recursive,
                ),
                ("io_serviced_recursive", &mut s.blkio.io_serviced_recursive),
            ] {
                // BFQ's counters when the disk uses it, else the throttle layer's (runc's order).
                let text = ["blkio.bfq.", "blkio.", "blkio.throttle."]
                    .iter()
                    .find_map(|p| {
                        read_file(&d, &format!("{p}{file}"))
                            .ok()
                            .filter(|t| !t.is_empty() && !t.starts_with("Total"))
                    })
                    .unwrap_or_default();
                *out = parse_blkio_v1(&text);
            }
        }
        Some(Placement::V2(d)) => {
            let (bytes, ios) = parse_io_stat(&read_file(&d, "io.stat").unwrap_or_default());
            s.blkio.io_service_bytes_recursive = bytes;
            s.blkio.io_serviced_recursive = ios;
        }
        None => {}
    }
    match cg.placement("hugetlb") {
        Some(Placement::V1(d)) => {
            for size in hugetlb_sizes(&d, ".limit_in_bytes") {
                let f = |k: &str| read_u64(&d, &format!("hugetlb.{size}.{k}")).unwrap_or(0);
                s.hugetlb.insert(
                    size.clone(),
                    Hugetlb {
                        usage: f("usage_in_bytes"),
                        max: f("max_usage_in_bytes"),
                        failcnt: f("failcnt"),
                    },
                );
            }
        }
        Some(Placement::V2(d)) => {
            for size in hugetlb_sizes(&d, ".max") {
                let usage = read_u64(&d, &format!("hugetlb.{size}.current")).unwrap_or(0);
                let ev = read_kv(&d, &format!("hugetlb.{size}.events")).unwrap_or_default();
                s.hugetlb.insert(
                    size.clone(),
                    Hugetlb {
                        usage,
                        max: 0,
                        failcnt: ev.get("max").copied().unwrap_or(0),
                    },
                );
            }
        }
        None => {}
    }
    Ok(s)
}

/// "2MB", "1GB"… from `hugetlb.<size><suffix>` files.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|r| r.strip_suffix(suffix))
        {
            if !size.contains('.') {
                out.push(size.to_string());
            }
        }
    }
    out.sort();
    out
}

fn cpuacct_v1(d: &Path, u: &mut CpuUsage) {
    u.total = read_u64(d, "cpuacct.usage").unwrap_or(0);
    let list = |f: &str| -> Vec<u64> {
        read_file(d, f)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    u.percpu = list("cpuacct.usage_percpu");
    u.percpu_kernel = list("cpuacct.usage_percpu_sys");
    u.percpu_user = list("cpuacct.usage_percpu_user");
    // cpuacct.stat counts clock ticks; runc reports nanoseconds.
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let st = read_kv(d, "cpuacct.stat").unwrap_or_default();
    u.user = st.get("user").copied().unwrap_or(0) * 1_000_000_000 / hz;
    u.kernel = st.get("system").copied().unwrap_or(0) * 1_000_000_000 / hz;
}

fn cpu_v2(d: &Path, c: &mut Cpu) {
    let st = read_kv(d, "cpu.stat").unwrap_or_default();
    let us = |k: &str| st.get(k).copied().unwrap_or(0) * 1000;
    c.usage.total = us("usage_usec");
    c.usage.user = us("user_usec");
    c.usage.kernel = us("system_usec");
    c.throttling.periods = st.get("nr_periods").copied().unwrap_or(0);
    c.throttling.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
    c.throttling.throttled_time = us("throttled_usec");
}

fn entry(d: &Path, prefix: &str) -> MemoryEntry {
    let f = |k: &str| read_u64(d, &format!("{prefix}{k}")).unwrap_or(0);
    MemoryEntry {
        usage: f("usage_in_bytes"),
        max: f("max_usage_in_bytes"),
        failcnt: f("failcnt"),
        limit: f("limit_in_bytes"),
    }
}

fn memory_v1(d: &Path, m: &mut Memory) {
    m.usage = entry(d, "memory.");
    m.swap = entry(d, "memory.memsw.");
    m.kernel = entry(d, "memory.kmem.");
    m.kernel_tcp = entry(d, "memory.kmem.tcp.");
    m.raw = read_kv(d, "memory.stat").unwrap_or_default();
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
}

fn memory_v2(d: &Path, m: &mut Memory) {
    m.raw = read_kv(d, "memory.stat").unwrap_or_default();
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    let events = read_kv(d, "memory.events").unwrap_or_default();
    m.usage = MemoryEntry {
        usage: read_u64(d, "memory.current").unwrap_or(0),
        max: read_u64(d, "memory.peak").unwrap_or(0),
        failcnt: events.get("max").copied().unwrap_or(0),
        limit: read_u64(d, "memory.max").unwrap_or(u64::MAX),
    };
    // v1 clients expect swap = memory+swap; runc reports it that way on v2.
    let swap = read_u64(d, "memory.swap.current").unwrap_or(0);
    let swap_max = read_u64(d, "memory.swap.max").unwrap_or(u64::MAX);
    m.swap = MemoryEntry {
        usage: swap + m.usage.usage,
        max: read_u64(d, "memory.swap.peak").unwrap_or(0),
        failcnt: 0,
        limit: if swap_max == u64::MAX || m.usage.limit == u64::MAX {
            u64::MAX
        } else {
            swap_max + m.usage.limit
        },
    };
}

/// "0-2,5" → [0,1,2,5]
pub fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// v1 blkio lines: `8:0 Read 4096` (a final `Total N` is skipped).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            let (op, value) = match f.len() {
                3 => (f[1].to_string(), f[2].parse().ok()?),
                2 => (String::new(), f[1].parse().ok()?),
                _ => return None,
            };
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op,
                value,
            })
        })
        .collect()
}

/// v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` →
/// (service bytes, serviced) entries with runc's `Read`/`Write` ops.
pub fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        let kv = parse_kv(
            &f.map(|p| p.replacen('=', " ", 1))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        for (key, op, is_bytes) in [
            ("rbytes", "Read", true),
            ("wbytes", "Write", true),
            ("rios", "Read", false),
            ("wios", "Write", false),
        ] {
            if let Some(&value) = kv.get(key) {
                let e = BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                };
                if is_bytes {
                    bytes.push(e)
                } else {
                    ios.push(e)
                }
            }
        }
    }
    (bytes, ios)
}
