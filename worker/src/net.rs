//! A task's network: its own namespace on a bridge, set up by the standard CNI plugins.
//!
//! berth-worker is a CNI *runtime*: it runs the plugin binaries (Debian's
//! containernetworking-plugins: `loopback`, `bridge` with `host-local` IPAM, `firewall`,
//! `portmap`) with the CNI protocol — `CNI_COMMAND=ADD|CHECK|DEL` and friends in the
//! environment, the network config on stdin, the result JSON on stdout, chained through
//! `prevResult` — and never creates a veth or a NAT rule itself.
//!
//! Order, as Concourse's containerd backend does it: `<runtime> create` makes the container
//! and its network namespace (inside the task's user namespace, so the task can mount sysfs),
//! the worker bind-mounts `/proc/<pid>/ns/net` to `runs/<id>/net/ns` (the namespace then
//! outlives the container, so DEL can always find the veth), runs ADD against it, and only
//! then `<runtime> start`s the task.
//!
//! Crash safety: `runs/<id>/net/state.json` is written *before* ADD and updated after every
//! plugin, so a cleanup — the run's own, or a later worker's sweep after a `kill -9` — runs DEL
//! for every plugin in reverse with the last result as `prevResult`: the veth goes, the IPAM
//! lease is released, the firewall and masquerade rules are removed.
//!
//! Two bridges, fixed and worker-wide (created by the bridge plugin on first use):
//!
//! | bridge | subnet | the task can reach |
//! |---|---|---|
//! | `berth0` | 10.80.0.0/16 | the outside world through NAT; of the host, only the DNS proxy on the gateway |
//! | `berth1` | 10.81.0.0/16 (`--allow-host-access`) | the outside world and the host's addresses |
//!
//! Tasks never reach each other: every bridge port is *isolated* (a bridge port flag, so
//! frames between two tasks are not forwarded), and routed traffic between the two bridges is
//! rejected in the firewall plugin's administrator chain `CNI-ADMIN`. What the plugins do not
//! provide is the host side: like Concourse (`INPUT -i concourse0 -j REJECT`), berth0's traffic
//! to the host itself goes through a chain `BERTH-INPUT` that accepts replies and DNS to the
//! gateway and rejects the rest. These few rules are per bridge, not per task, and are
//! created once, idempotently, under a lock. A task can never reach the host's loopback
//! services: 127.0.0.1 in its namespace is its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::sys;

/// One of the worker's two bridges.
#[derive(Debug, Clone, Copy)]
pub struct Bridge {
    pub name: &'static str,
    pub subnet: &'static str,
    pub gateway: Ipv4Addr,
}

/// Tasks that must not reach the host.
pub const ISOLATED: Bridge = Bridge {
    name: "berth0",
    subnet: "10.80.0.0/16",
    gateway: Ipv4Addr::new(10, 80, 0, 1),
};
/// `--allow-host-access` tasks.
pub const HOST_ACCESS: Bridge = Bridge {
    name: "berth1",
    subnet: "10.81.0.0/16",
    gateway: Ipv4Addr::new(10, 81, 0, 1),
};

/// The DNS proxy's address for `--network host` tasks: on the host's loopback, which they
/// share, away from 127.0.0.1 and systemd-resolved's 127.0.0.53.
pub const HOST_MODE_DNS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 153)), 53);

/// The task's interface name inside its namespace.
const IFNAME: &str = "eth0";

/// `runs/<id>/net/state.json`: what DEL needs, written before ADD.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub container_id: String,
    pub bridge: String,
    /// The plugin configs of the chain, in ADD order (each with name and cniVersion).
    pub plugins: Vec<Value>,
    /// The result of the last plugin that completed ADD.
    pub result: Option<Value>,
}

/// The task's place on the bridge.
#[derive(Debug, Clone)]
pub struct Attached {
    pub ip: Ipv4Addr,
}

/// Where the plugin binaries are: `BERTH_CNI_PATH` (colon-separated), else Debian's
/// `/usr/lib/cni`, else the upstream default `/opt/cni/bin`.
fn plugin_dirs() -> Vec<PathBuf> {
    match std::env::var_os("BERTH_CNI_PATH") {
        Some(p) => std::env::split_paths(&p).collect(),
        None => vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
    }
}

fn plugin(kind: &str) -> Result<PathBuf> {
    let dirs = plugin_dirs();
    dirs.iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "network: CNI plugin {kind:?} not found in {} (install containernetworking-plugins: `make deps`; or set BERTH_CNI_PATH, or pass --network none)",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
            )
        })
}

/// The plugin chain for a bridge (a CNI conflist's `plugins`, with name and version filled in).
pub fn chain(work_dir: &Path, b: &Bridge) -> Vec<Value> {
    let net = json!({"cniVersion": "1.0.0", "name": format!("berth-{}", b.name)});
    let with = |mut p: Value| {
        p["cniVersion"] = net["cniVersion"].clone();
        p["name"] = net["name"].clone();
        p
    };
    vec![
        with(json!({
            "type": "bridge",
            "bridge": b.name,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": b.subnet, "gateway": b.gateway.to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": work_dir.join("cni/ipam"),
            },
        })),
        with(json!({"type": "firewall", "backend": "iptables"})),
        with(json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true})),
    ]
}

fn loopback_conf() -> Value {
    json!({"cniVersion": "1.0.0", "name": "berth-lo", "type": "loopback"})
}

/// Run one plugin: `CNI_COMMAND=cmd`, config on stdin; returns its stdout JSON (ADD's result).
async fn exec(
    cmd: &str,
    conf: &Value,
    container_id: &str,
    netns: &str,
    ifname: &str,
) -> Result<Value> {
    use tokio::io::AsyncWriteExt;
    let kind = conf["type"].as_str().unwrap_or_default();
    let bin = plugin(kind)?;
    let dirs = std::env::join_paths(plugin_dirs())?;
    let mut c = tokio::process::Command::new(&bin);
    c.env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", dirs)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c
        .spawn()
        .with_context(|| format!("running CNI plugin {}", bin.display()))?;
    let input = serde_json::to_vec(conf)?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(&input).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        // The CNI error object: {"code": N, "msg": "...", "details": "..."}.
        let msg = v["msg"].as_str().unwrap_or_default();
        let details = v["details"].as_str().unwrap_or_default();
        bail!(
            "CNI {kind} {cmd} for {container_id}: {}{}{}",
            if msg.is_empty() {
                String::from_utf8_lossy(&out.stderr).trim().to_string()
            } else {
                msg.to_string()
            },
            if details.is_empty() { "" } else { ": " },
            details
        );
    }
    Ok(v)
}

fn net_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("net")
}

fn save(run_dir: &Path, st: &State) -> Result<()> {
    let d = net_dir(run_dir);
    let tmp = d.join(".state.json");
    std::fs::write(&tmp, serde_json::to_vec_pretty(st)?)?;
    std::fs::rename(&tmp, d.join("state.json")).context("saving the network state")
}

/// Put the container (PID `pid`) on `bridge`. On error, whatever was set up stays recorded
/// and [`detach`] (which the run's cleanup always calls) removes it.
pub async fn attach(
    work_dir: &Path,
    run_dir: &Path,
    container_id: &str,
    pid: i32,
    bridge: &Bridge,
) -> Result<Attached> {
    let d = net_dir(run_dir);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let mut st = State {
        container_id: container_id.to_string(),
        bridge: bridge.name.to_string(),
        plugins: chain(work_dir, bridge),
        result: None,
    };
    save(run_dir, &st)?;
    // Keep the namespace alive on our own path: DEL must find it even after the task died.
    let ns = d.join("ns");
    std::fs::write(&ns, b"").context("creating the netns mount point")?;
    sys::bind_mount(Path::new(&format!("/proc/{pid}/ns/net")), &ns)
        .context("holding the task's network namespace")?;
    let ns_s = ns.to_string_lossy().into_owned();

    exec("ADD", &loopback_conf(), container_id, &ns_s, "lo").await?;
    let _lock = lock(work_dir)?;
    for p in st.plugins.clone() {
        let mut conf = p;
        if let Some(prev) = &st.result {
            conf["prevResult"] = prev.clone();
        }
        let r = exec("ADD", &conf, container_id, &ns_s, IFNAME).await?;
        st.result = Some(r);
        save(run_dir, &st)?;
    }
    let result = st.result.clone().expect("the chain is not empty");
    // CHECK: the plugins confirm what they just set up (CNI ≥ 0.4).
    let mut prev = result.clone();
    for p in &st.plugins {
        let mut conf = p.clone();
        conf["prevResult"] = prev;
        exec("CHECK", &conf, container_id, &ns_s, IFNAME).await?;
        prev = conf["prevResult"].take();
    }
    isolate_port(&result, bridge).await?;
    ensure_bridge_rules(bridge).await?;
    let ip = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
        .next()
        .ok_or_else(|| anyhow!("CNI bridge result has no IPv4 address: {result}"))?;
    Ok(Attached { ip })
}

/// DEL for every plugin of a recorded network, in reverse, then release the namespace.
/// Idempotent: no state, nothing to do; a namespace already gone is fine (CNI DEL must
/// succeed then too).
pub async fn detach(run_dir: &Path) -> Result<()> {
    let d = net_dir(run_dir);
    let st: State = match std::fs::read(d.join("state.json")) {
        Ok(b) => serde_json::from_slice(&b).context("reading the network state")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).context("reading the network state"),
    };
    let ns = d.join("ns");
    // Only a mounted namespace is a namespace; an empty file means ADD never got that far.
    let ns_s = if sys::mounts_under(&ns)?.is_empty() {
        String::new()
    } else {
        ns.to_string_lossy().into_owned()
    };
    let mut errs = Vec::new();
    for p in st.plugins.iter().rev() {
        let mut conf = p.clone();
        if let Some(r) = &st.result {
            conf["prevResult"] = r.clone();
        }
        if let Err(e) = exec("DEL", &conf, &st.container_id, &ns_s, IFNAME).await {
            errs.push(format!("{e:#}"));
        }
    }
    if !ns_s.is_empty() {
        if let Err(e) = exec("DEL", &loopback_conf(), &st.container_id, &ns_s, "lo").await {
            errs.push(format!("{e:#}"));
        }
    }
    sys::umount(&ns)?;
    if !errs.is_empty() {
        bail!("network cleanup: {}", errs.join("; "));
    }
    let _ = std::fs::remove_file(d.join("state.json"));
    Ok(())
}

/// Mark the task's bridge port isolated: the bridge forwards nothing between two isolated
/// ports, so tasks cannot reach each other, while the gateway (the bridge itself) stays
/// reachable.
async fn isolate_port(result: &Value, bridge: &Bridge) -> Result<()> {
    let host_if = result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i.get("sandbox").is_none() && i["name"] != bridge.name)
        .and_then(|i| i["name"].as_str())
        .ok_or_else(|| anyhow!("CNI bridge result names no host-side veth: {result}"))?;
    run_tool("bridge", &["link", "set", "dev", host_if, "isolated", "on"]).await
}

async fn run_tool(prog: &str, args: &[&str]) -> Result<()> {
    let out = tokio::process::Command::new(prog)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {prog}"))?;
    if !out.status.success() {
        bail!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `iptables -w ARGS` succeeded?
async fn ipt_ok(args: &[&str]) -> bool {
    tokio::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Append `rule` to `chain` unless it is there.
async fn ensure_rule(chain: &str, rule: &[&str]) -> Result<()> {
    let mut check = vec!["-C", chain];
    check.extend_from_slice(rule);
    if ipt_ok(&check).await {
        return Ok(());
    }
    let mut add = vec!["-w", "-A", chain];
    add.extend_from_slice(rule);
    run_tool("iptables", &add).await
}

/// The per-bridge rules the CNI plugins do not make (see the module doc).
async fn ensure_bridge_rules(b: &Bridge) -> Result<()> {
    let other = if b.name == ISOLATED.name {
        HOST_ACCESS.name
    } else {
        ISOLATED.name
    };
    // No task reaches a task on the other bridge by routing through the host.
    ensure_rule("CNI-ADMIN", &["-i", b.name, "-o", other, "-j", "REJECT"]).await?;
    if b.name != ISOLATED.name {
        return Ok(());
    }
    let gw = b.gateway.to_string();
    if !ipt_ok(&["-L", "BERTH-INPUT", "-n"]).await {
        run_tool("iptables", &["-w", "-N", "BERTH-INPUT"]).await?;
    }
    for r in [
        vec![
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
        vec!["-d", &gw, "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
        vec!["-d", &gw, "-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
        vec!["-j", "REJECT"],
    ] {
        ensure_rule("BERTH-INPUT", &r).await?;
    }
    if !ipt_ok(&["-C", "INPUT", "-i", b.name, "-j", "BERTH-INPUT"]).await {
        run_tool(
            "iptables",
            &["-w", "-I", "INPUT", "1", "-i", b.name, "-j", "BERTH-INPUT"],
        )
        .await?;
    }
    Ok(())
}

/// An exclusive lock on `<work-dir>/cni/lock` while the shared rules are checked and made.
fn lock(work_dir: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let d = work_dir.join("cni");
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let f = std::fs::File::create(d.join("lock"))?;
    // SAFETY: flock on an fd we own; released when the file is dropped.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context("locking the CNI state");
    }
    Ok(f)
}

/// The task's resolv.conf: one nameserver (the DNS proxy), and the host's `search`, `domain`
/// and `options` lines.
pub fn proxied_resolv_conf(host: &str, proxy: std::net::IpAddr) -> String {
    let mut out = format!("nameserver {proxy}\n");
    for l in host.lines() {
        let k = l.split_whitespace().next();
        if matches!(k, Some("search" | "domain" | "options")) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// /etc/hosts as Concourse writes it, plus the usual IPv6 names: localhost, then the task's
/// own address and hostname (`<ip> <handle>`, `cni_network.go Add`).
pub fn hosts(own: Option<Ipv4Addr>, hostname: &str) -> String {
    let me = own.map_or_else(|| "127.0.1.1".to_string(), |ip| ip.to_string());
    format!("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{me} {hostname}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_points_at_the_proxy_and_keeps_search() {
        let host =
            "# generated\nnameserver 127.0.0.53\nsearch corp.example lab\noptions edns0 trust-ad\n";
        assert_eq!(
            proxied_resolv_conf(host, "10.80.0.1".parse().unwrap()),
            "nameserver 10.80.0.1\nsearch corp.example lab\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn hosts_name_the_task() {
        assert!(
            hosts(Some(Ipv4Addr::new(10, 80, 0, 5)), "berth-ab").ends_with("10.80.0.5 berth-ab\n")
        );
        assert!(hosts(None, "h").ends_with("127.0.1.1 h\n"));
    }

    #[test]
    fn chain_is_bridge_firewall_portmap_with_ipam_in_the_work_dir() {
        let c = chain(Path::new("/w"), &ISOLATED);
        let kinds: Vec<&str> = c.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["bridge", "firewall", "portmap"]);
        assert_eq!(c[0]["ipam"]["dataDir"], "/w/cni/ipam");
        assert_eq!(c[0]["bridge"], "berth0");
        assert!(c
            .iter()
            .all(|p| p["cniVersion"] == "1.0.0" && p["name"] == "berth-berth0"));
    }
}
