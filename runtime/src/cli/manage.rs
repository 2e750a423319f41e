//! ps, pause, resume, update, events, checkpoint, restore.

use crate::container::manage;
use crate::spec::Resources;
use crate::state::Root;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct PsArgs {
    /// table (runs ps and keeps the container's lines) or json (pids).
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    pub id: String,
    /// Arguments for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// runc's update flags. Numbers may be negative (`--memory-swap -1`,
/// `--cpu-quota -1`, `--pids-limit -1` mean unlimited), hence
/// `allow_negative_numbers`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct UpdateArgs {
    /// LinuxResources JSON from a file, or `-` for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "kernel-memory")]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp")]
    pub kernel_memory_tcp: Option<String>,
    /// CPU shares (runc spells it `--cpu-share`; `--cpu-shares` also works).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Accepted for runc compatibility (Intel RDT is not supported).
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// Accepted for runc compatibility (Intel RDT is not supported).
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print one stats object and exit.
    #[arg(long)]
    pub stats: bool,
    /// Interval between stats objects (e.g. 5s).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Everything else criu-related is accepted and ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

pub fn ps(root: &Root, a: PsArgs) -> Result<i32> {
    let pids = manage::pids(root, &a.id)?;
    match a.format.as_str() {
        "json" => super::out(format_args!("{}", serde_json::to_string(&pids)?)),
        "table" => {
            let args = if a.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                a.ps_args.clone()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            super::out(format_args!("{header}"));
            for l in lines {
                if let Some(pid) = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    if pids.contains(&pid) {
                        super::out(format_args!("{l}"));
                    }
                }
            }
        }
        other => bail!("--format: unknown format {other:?} (table or json)"),
    }
    Ok(0)
}

pub fn pause(root: &Root, id: &str) -> Result<i32> {
    manage::pause(root, id)?;
    Ok(0)
}

pub fn resume(root: &Root, id: &str) -> Result<i32> {
    manage::resume(root, id)?;
    Ok(0)
}

/// `512m`, `1g`, `1048576` → bytes (docker/runc units, binary); `-1` = unlimited.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("--{flag}: {s:?} is not a size"))?;
    Ok((n * mult as f64) as i64)
}

fn resources(a: &UpdateArgs) -> Result<Resources> {
    let parse = |what: &str, s: &str| -> Result<Resources> {
        let de = &mut serde_json::Deserializer::from_str(s);
        let r: Resources = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("--resources {what}: {}: {}", e.path(), e.inner()))?;
        crate::spec::validate_resources(&r)
            .map_err(|e| anyhow::anyhow!("--resources {what}: {}: {}", e.field, e.msg))?;
        Ok(r)
    };
    let mut r = match a.resources.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            parse("(stdin)", &s)?
        }
        Some(path) => {
            let s = std::fs::read_to_string(PathBuf::from(path))
                .with_context(|| format!("--resources {path}"))?;
            parse(path, &s)?
        }
        None => Resources::default(),
    };
    let mem = |r: &mut Resources| r.memory.get_or_insert_with(Default::default).clone();
    for (flag, val, set) in [
        ("memory", &a.memory, 0),
        ("memory-swap", &a.memory_swap, 1),
        ("memory-reservation", &a.memory_reservation, 2),
        ("kernel-memory", &a.kernel_memory, 3),
        ("kernel-memory-tcp", &a.kernel_memory_tcp, 4),
    ] {
        if let Some(v) = val {
            let n = parse_bytes(flag, v)?;
            let mut m = mem(&mut r);
            match set {
                0 => m.limit = Some(n),
                1 => m.swap = Some(n),
                2 => m.reservation = Some(n),
                3 => m.kernel = Some(n),
                _ => m.kernel_tcp = Some(n),
            }
            r.memory = Some(m);
        }
    }
    let any_cpu = a.cpu_shares.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_period.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if any_cpu {
        let c = r.cpu.get_or_insert_with(Default::default);
        c.shares = a.cpu_shares.or(c.shares);
        c.quota = a.cpu_quota.or(c.quota);
        c.period = a.cpu_period.or(c.period);
        c.realtime_period = a.cpu_rt_period.or(c.realtime_period);
        c.realtime_runtime = a.cpu_rt_runtime.or(c.realtime_runtime);
        c.cpus = a.cpuset_cpus.clone().or(c.cpus.take());
        c.mems = a.cpuset_mems.clone().or(c.mems.take());
    }
    if let Some(p) = a.pids_limit {
        r.pids = Some(crate::spec::Pids { limit: p });
    }
    if let Some(w) = a.blkio_weight {
        if w > 1000 {
            bail!("--blkio-weight: {w} is outside 1..1000");
        }
        r.block_io = Some(crate::spec::BlockIo {
            weight: Some(w),
            ..Default::default()
        });
    }
    Ok(r)
}

pub fn update(root: &Root, a: UpdateArgs) -> Result<i32> {
    let r = resources(&a)?;
    manage::update(root, &a.id, &r)?;
    Ok(0)
}

fn parse_interval(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len()));
    let n: f64 = num
        .parse()
        .with_context(|| format!("--interval: {s:?} is not a duration"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("--interval: unknown unit in {s:?}"),
    };
    Ok(Duration::from_secs_f64(secs.max(0.001)))
}

pub fn events(root: &Root, a: EventsArgs) -> Result<i32> {
    if a.stats {
        super::out(format_args!("{}", manage::stats(root, &a.id)?));
        return Ok(0);
    }
    let every = parse_interval(&a.interval)?;
    // runc prints {"type":"oom"} as soon as the kernel reports one, and a
    // stats object every interval, until the container stops.
    let mut oom = manage::oom_watcher(root, &a.id).ok();
    while manage::alive(root, &a.id) {
        match manage::stats(root, &a.id) {
            Ok(s) => super::out(format_args!("{s}")),
            Err(_) => break,
        }
        match oom.as_mut() {
            Some(w) => {
                if w.wait(every).unwrap_or(0) > 0 {
                    super::out(manage::Event {
                        kind: "oom",
                        id: a.id.clone(),
                        data: None,
                    });
                }
            }
            None => std::thread::sleep(every),
        }
    }
    Ok(0)
}

pub fn checkpoint(verb: &str) -> Result<i32> {
    bail!("{verb} is not supported by berth (no CRIU integration)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_bytes("memory", "512m").unwrap(), 512 << 20);
        assert_eq!(super::parse_bytes("memory", "1G").unwrap(), 1 << 30);
        assert_eq!(super::parse_bytes("memory", "1048576").unwrap(), 1048576);
        assert_eq!(super::parse_bytes("memory", "-1").unwrap(), -1);
        assert!(super::parse_bytes("memory", "lots").is_err());
    }

    #[test]
    fn intervals() {
        assert_eq!(super::parse_interval("5s").unwrap().as_secs(), 5);
        assert_eq!(super::parse_interval("250ms").unwrap().as_millis(), 250);
        assert!(super::parse_interval("5y").is_err());
    }
}
