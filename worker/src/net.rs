//! A task's network: its own namespace on a bridge, set up by the standard CNI plugins.
//!
//! berth-worker is a CNI *runtime*: it runs the plugin binaries (Debian's
//! containernetworking-plugins: `bridge` with `host-local` IPAM) with the CNI
//! protocol — `CNI_COMMAND=ADD|DEL` and friends in the environment, the network config on
//! stdin, the result JSON on stdout, chained through `prevResult` — and never creates a veth
//! itself.
//!
//! Order, as Concourse's containerd backend does it: `<runtime> create` makes the container
//! and its network namespace (inside the task's user namespace, so the task can mount sysfs),
//! the worker bind-mounts `/proc/<pid>/ns/net` to `runs/<id>/net/ns` (a path for the plugins,
//! and the namespace cannot vanish under ADD), runs ADD against it, and only then
//! `<runtime> start`s the task.
//!
//! The task's `lo` is brought up by the runtime itself, as for every new network namespace
//! (berth, runc and crun all do), so the `loopback` plugin, which only sets `lo` up, is not
//! run: it was one Go process per task for nothing.
//!
//! Crash safety: `runs/<id>/net/state.json` is written *before* ADD and updated after every
//! plugin. The run's cleanup (or a later worker's sweep after a `kill -9`) drops the namespace
//! (the veth goes with it) and moves the state to `<work-dir>/cni/del/<container-id>.json`:
//! a DEL owed. DEL for every plugin in reverse, with the last result as `prevResult`, releases
//! the IPAM lease; a run hands it to a background `berth-worker __cni-del` so that the task's
//! exit status is reported without waiting for it, and `gc` (or the next run's sweep) does
//! any DEL whose process died. An owed DEL is locked (flock) from the moment it is owed, by
//! the run and then by the process it hands the open record to.
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
//! rejected. NAT, forwarding and the host's INPUT are the same for every task on a bridge, so
//! they are not made per task (the bridge plugin's `ipMasq` and the `firewall` plugin did
//! that with a dozen `iptables` execs per ADD and DEL, most of a task's start): berth keeps
//! them in its own chains, per bridge (`BERTH-INPUT`, `BERTH-FORWARD`, nat
//! `BERTH-POSTROUTING`; like Concourse's `INPUT -i concourse0 -j REJECT`), checked by every
//! task and remade only when missing. A task can never reach the host's loopback services:
//! 127.0.0.1 in its namespace is its own. IPv4 only (docs/worker.md).

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
///
/// Only `bridge` (with `host-local` IPAM): what the `firewall` plugin and the bridge plugin's
/// `ipMasq` did per task (a few iptables rules each, made and removed with a dozen `iptables`
/// execs per task) is the same for every task on a bridge, so berth makes it once per bridge
/// ([`ensure_bridge_rules`]). `portmap` is left out because a task publishes no ports
/// (Concourse tasks have none); it only cost three execs per task.
pub fn chain(work_dir: &Path, b: &Bridge) -> Vec<Value> {
    vec![json!({
        "cniVersion": "1.0.0",
        "name": format!("berth-{}", b.name),
        "type": "bridge",
        "bridge": b.name,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": false,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": b.subnet, "gateway": b.gateway.to_string()}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": work_dir.join("cni/ipam"),
        },
    })]
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
        // The plugins are Go programs that live a few milliseconds: one OS thread and no
        // garbage collector save about a tenth of their CPU time (bench/results.md).
        .env("GOMAXPROCS", "1")
        .env("GOGC", "off")
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

/// `BERTH_WORKER_LOG=debug`: log how long each step of the setup took.
fn debug() -> bool {
    std::env::var("BERTH_WORKER_LOG").is_ok_and(|l| l == "debug")
}

/// Run `f`, and under debug logging print how long `what` took.
async fn timed<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    let t = std::time::Instant::now();
    let r = f.await;
    if debug() {
        eprintln!(
            "berth-worker: debug: network: {what}: {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    r
}

/// Put the container (PID `pid`) on `bridge`. On error, whatever was set up stays recorded
/// and [`release`] (which the run's cleanup always calls) hands it to DEL.
///
/// The independent steps run at once: the bridge plugin (veth, address, route) and the check
/// of the per-bridge rules. The task's `lo` is already up: the runtime brings it up in every
/// new network namespace (runc: `specconv` adds a `loopback` network for a new netns;
/// berth: `BringUpLoopback`), so the `loopback` plugin has nothing to do.
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

    let chain = async {
        for p in st.plugins.clone() {
            let mut conf = p;
            if let Some(prev) = &st.result {
                conf["prevResult"] = prev.clone();
            }
            let kind = conf["type"].as_str().unwrap_or_default().to_string();
            let r = timed(
                &format!("{kind} ADD"),
                exec("ADD", &conf, container_id, &ns_s, IFNAME),
            )
            .await?;
            st.result = Some(r);
            save(run_dir, &st)?;
        }
        anyhow::Ok(())
    };
    let rules = timed("bridge rules", ensure_bridge_rules(work_dir));
    let (chain, rules) = tokio::join!(chain, rules);
    chain?;
    rules?;
    let result = st.result.clone().expect("the chain is not empty");
    timed("isolate port", isolate_port(&result, bridge)).await?;
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

/// Where owed DELs wait: `<work-dir>/cni/del/<container-id>.json`, each a [`State`].
fn owed_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("cni/del")
}

/// A DEL owed, locked by whoever holds this (see [`release`]).
pub struct Owed {
    pub container_id: String,
    path: PathBuf,
    /// The record, open and `flock`ed: its DEL is ours to do.
    file: std::fs::File,
}

fn flock(f: &std::fs::File, wait: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on an fd we own; the lock goes with the open file (and its process).
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(e)
}

/// Take a finished run off the network, up to the DEL: drop our hold on the namespace and move
/// its recorded state into the owed DELs, locked. Returns the DEL owed (`None`: the run had
/// no network). Idempotent; fast (no plugin runs): the run's exit status does not wait for
/// DEL.
///
/// The namespace goes first: with the task's processes gone, unmounting our hold on it lets
/// the kernel destroy it, and the veth pair with it, in the background. DEL then runs with an
/// empty `CNI_NETNS` ("the namespace is gone", which every plugin must accept): the bridge
/// plugin releases the IPAM lease. Asking the plugin to delete the veth itself instead waits
/// out an RCU grace period per device (`ip link del` of a veth: ~10-30 ms). Nothing is left
/// either way: the veth lives exactly as long as the namespace.
pub fn release(work_dir: &Path, run_dir: &Path) -> Result<Option<Owed>> {
    let d = net_dir(run_dir);
    let file = match std::fs::File::open(d.join("state.json")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading the network state"),
    };
    // Locked before it is visible in the queue: no sweep takes a DEL its owner is about to do.
    flock(&file, true).context("locking the network state")?;
    // Another cleanup of the same run (two sweeps) may have moved it meanwhile.
    let same = |m: std::fs::Metadata| {
        use std::os::unix::fs::MetadataExt;
        file.metadata()
            .is_ok_and(|f| (f.dev(), f.ino()) == (m.dev(), m.ino()))
    };
    if !std::fs::metadata(d.join("state.json")).is_ok_and(same) {
        return Ok(None);
    }
    let st: State = serde_json::from_reader(&file).context("reading the network state")?;
    sys::umount(&d.join("ns"))?;
    let owed = owed_dir(work_dir);
    std::fs::create_dir_all(&owed).with_context(|| format!("creating {}", owed.display()))?;
    let path = owed.join(format!("{}.json", st.container_id));
    // A rename: the state is always in exactly one place, the run's or the queue's.
    std::fs::rename(d.join("state.json"), &path)
        .with_context(|| format!("moving the network state to {}", path.display()))?;
    Ok(Some(Owed {
        container_id: st.container_id,
        path,
        file,
    }))
}

/// Run an owed DEL we hold the lock of: DEL for every plugin in reverse, then the record goes.
/// A failed DEL stays owed. Returns false if someone did it before we got the lock.
async fn del_locked(owed: Owed) -> Result<bool> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let Owed {
        container_id,
        path,
        mut file,
    } = owed;
    // Whoever held the lock before us may have finished it (and unlinked the record).
    if file.metadata()?.nlink() == 0 {
        return Ok(false);
    }
    // The offset may be shared with the process that handed the lock over.
    file.seek(SeekFrom::Start(0))?;
    let st: State = serde_json::from_reader(&file)
        .with_context(|| format!("reading the network state {}", path.display()))?;
    let mut errs = Vec::new();
    for p in st.plugins.iter().rev() {
        let mut conf = p.clone();
        if let Some(r) = &st.result {
            conf["prevResult"] = r.clone();
        }
        let kind = conf["type"].as_str().unwrap_or_default().to_string();
        if let Err(e) = timed(
            &format!("{kind} DEL"),
            exec("DEL", &conf, &st.container_id, "", IFNAME),
        )
        .await
        {
            errs.push(format!("{e:#}"));
        }
    }
    if !errs.is_empty() {
        bail!("network cleanup of {container_id}: {}", errs.join("; "));
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    Ok(true)
}

/// Run the owed DEL of `container_id` (see [`release`]) now. `wait`: wait for a DEL of it
/// running elsewhere, else leave that one alone. Returns whether this call did the DEL.
pub async fn del_owed(work_dir: &Path, container_id: &str, wait: bool) -> Result<bool> {
    let path = owed_dir(work_dir).join(format!("{container_id}.json"));
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    if !flock(&file, wait).with_context(|| format!("locking {}", path.display()))? {
        return Ok(false);
    }
    del_locked(Owed {
        container_id: container_id.to_string(),
        path,
        file,
    })
    .await
}

/// Run a DEL [`release`] handed us, here and now.
pub async fn del_now(owed: Owed) -> Result<()> {
    del_locked(owed).await.map(|_| ())
}

/// Every owed DEL (see [`del_owed`]); returns the container ids done. All are tried; the
/// first error is returned after.
pub async fn del_all_owed(work_dir: &Path, wait: bool) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let rd = match std::fs::read_dir(owed_dir(work_dir)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).context("reading the owed CNI DELs"),
    };
    let mut first_err = None;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(".json") else {
            continue;
        };
        match del_owed(work_dir, id, wait).await {
            Ok(true) => done.push(id.to_string()),
            Ok(false) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Hand an owed DEL, and its lock, to a background `berth-worker __cni-del` (its own process
/// group, so a Ctrl-C at the terminal does not cut it short) and return at once. The locked
/// record is passed down as an open fd, so the DEL is never unlocked while a process is about
/// to do it. Should that process die, the DEL stays owed on disk for `gc` or the next run's
/// sweep. If it cannot be started, the DEL runs here.
pub async fn del_in_background(work_dir: &Path, owed: Owed) -> Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = owed.file.as_raw_fd();
    // Inherited by the child (we start nothing else meanwhile); our copy closes when `owed`
    // drops, the lock stays with the child's.
    // SAFETY: F_SETFD on an fd we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let spawned = std::env::current_exe()
        .context("locating berth-worker")
        .and_then(|exe| {
            std::process::Command::new(exe)
                .arg("--work-dir")
                .arg(work_dir)
                .arg("__cni-del")
                .arg(&owed.container_id)
                .arg("--lock-fd")
                .arg(fd.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                // Debug logging: its step timings go where ours go.
                .stderr(if debug() {
                    std::process::Stdio::inherit()
                } else {
                    std::process::Stdio::null()
                })
                .process_group(0)
                .spawn()
                .context("starting the background CNI DEL")
        });
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    match spawned {
        // Not waited for: it outlives us, and is reaped by our parent (or init) once we exit.
        Ok(_child) => Ok(()),
        Err(e) => {
            if debug() {
                eprintln!("berth-worker: debug: network: {e:#}; DEL runs in the foreground");
            }
            del_now(owed).await
        }
    }
}

/// `berth-worker __cni-del ID [--lock-fd FD]`: the background DEL (see [`del_in_background`]);
/// `FD` is the record, open and locked, handed down by the run.
pub async fn del_main(work_dir: &Path, container_id: &str, lock_fd: Option<i32>) -> Result<()> {
    use std::os::fd::FromRawFd;
    match lock_fd {
        Some(fd) => {
            // SAFETY: the fd was left open for us by the run, and nothing else here uses it.
            // Close-on-exec again: the plugins must not hold the lock.
            let file = unsafe {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                std::fs::File::from_raw_fd(fd)
            };
            del_now(Owed {
                container_id: container_id.to_string(),
                path: owed_dir(work_dir).join(format!("{container_id}.json")),
                file,
            })
            .await?;
        }
        None => {
            del_owed(work_dir, container_id, true).await?;
        }
    }
    if debug() {
        // SAFETY: getrusage fills the struct we pass.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
            ru
        };
        let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
        eprintln!(
            "berth-worker: debug: network: background DEL plugins cpu: {:.1} ms",
            ms(ru.ru_utime) + ms(ru.ru_stime)
        );
    }
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

/// The per-bridge rules the CNI plugins no longer make per task (see the module doc), in
/// the exact form `iptables-save` prints them, table by table: berth's own chains (flushed and
/// refilled as a whole) and the jumps into them from the built-in chains.
fn bridge_rules() -> Vec<(&'static str, Vec<&'static str>, Vec<String>)> {
    let (iso, acc) = (ISOLATED, HOST_ACCESS);
    let gw = iso.gateway;
    let filter_chains = vec!["BERTH-INPUT", "BERTH-FORWARD"];
    let mut filter = vec![
        // berth0 reaches, of the host, only the DNS proxy (Concourse: `INPUT -i concourse0
        // -j REJECT`, the proxy excepted).
        "-A BERTH-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
        format!("-A BERTH-INPUT -d {gw}/32 -p udp -m udp --dport 53 -j ACCEPT"),
        format!("-A BERTH-INPUT -d {gw}/32 -p tcp -m tcp --dport 53 -j ACCEPT"),
        "-A BERTH-INPUT -j REJECT --reject-with icmp-port-unreachable".to_string(),
    ];
    for (a, b) in [(iso, acc), (acc, iso)] {
        // No task reaches a task on the other bridge by routing through the host.
        filter.push(format!(
            "-A BERTH-FORWARD -i {} -o {} -j REJECT --reject-with icmp-port-unreachable",
            a.name, b.name
        ));
    }
    for b in [iso, acc] {
        // What the firewall plugin's CNI-FORWARD did per task address: forward the bridge's
        // traffic out, and replies in, even where FORWARD's policy is DROP (Docker hosts).
        filter.push(format!(
            "-A BERTH-FORWARD -o {} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            b.name
        ));
        filter.push(format!("-A BERTH-FORWARD -i {} -j ACCEPT", b.name));
    }
    let mut nat = Vec::new();
    for b in [iso, acc] {
        // What the bridge plugin's ipMasq did per task address: NAT out of the bridge's
        // subnet, except to the subnet itself and to multicast.
        nat.push(format!("-A BERTH-POSTROUTING -d {} -j RETURN", b.subnet));
    }
    nat.push("-A BERTH-POSTROUTING -d 224.0.0.0/4 -j RETURN".to_string());
    nat.push("-A BERTH-POSTROUTING -j MASQUERADE".to_string());
    vec![
        ("filter", filter_chains, filter),
        ("nat", vec!["BERTH-POSTROUTING"], nat),
    ]
}

/// The jumps into berth's chains: (table, the rule as `iptables-save` prints it, how to insert
/// it at the top of its built-in chain).
fn bridge_jumps() -> Vec<(&'static str, String, String)> {
    let mut v = vec![(
        "filter",
        format!("-A INPUT -i {} -j BERTH-INPUT", ISOLATED.name),
        format!("-I INPUT 1 -i {} -j BERTH-INPUT", ISOLATED.name),
    )];
    v.push((
        "filter",
        "-A FORWARD -j BERTH-FORWARD".to_string(),
        "-I FORWARD 1 -j BERTH-FORWARD".to_string(),
    ));
    for b in [ISOLATED, HOST_ACCESS] {
        v.push((
            "nat",
            format!("-A POSTROUTING -s {} -j BERTH-POSTROUTING", b.subnet),
            format!("-I POSTROUTING 1 -s {} -j BERTH-POSTROUTING", b.subnet),
        ));
    }
    v
}

/// `iptables-save` output → each table's `-A` lines, in order.
fn saved_rules(save: &str) -> std::collections::HashMap<&str, Vec<&str>> {
    let mut table = "";
    let mut have: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for l in save.lines() {
        if let Some(t) = l.strip_prefix('*') {
            table = t;
        } else if l.starts_with("-A ") {
            have.entry(table).or_default().push(l);
        }
    }
    have
}

/// Are all of berth's rules in this `iptables-save` output, its chains exactly as made?
fn rules_present(save: &str) -> bool {
    let have = saved_rules(save);
    let rules = |t: &str| have.get(t).cloned().unwrap_or_default();
    // Chain by chain: iptables-save orders chains by name, not as they were made.
    bridge_rules().iter().all(|(t, chains, want)| {
        chains.iter().all(|c| {
            let p = format!("-A {c} ");
            let got = rules(t).into_iter().filter(|l| l.starts_with(&p));
            got.eq(want
                .iter()
                .map(String::as_str)
                .filter(|l| l.starts_with(&p)))
        })
    }) && bridge_jumps()
        .iter()
        .all(|(t, rule, _)| rules(t).contains(&rule.as_str()))
}

async fn iptables_save() -> Result<String> {
    let out = tokio::process::Command::new("iptables-save")
        .output()
        .await
        .context("running iptables-save")?;
    if !out.status.success() {
        bail!(
            "iptables-save: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Make sure the per-bridge rules are in place. Every task checks (one `iptables-save`, run
/// alongside the plugins): a flushed firewall must not leave a task unisolated. Only when
/// something is missing are they made, under the lock, in one `iptables-restore --noflush`:
/// berth's chains are declared (which empties them) and refilled, and missing jumps inserted.
async fn ensure_bridge_rules(work_dir: &Path) -> Result<()> {
    if rules_present(&iptables_save().await?) {
        return Ok(());
    }
    let _lock = lock(work_dir)?;
    let save = iptables_save().await?;
    if rules_present(&save) {
        return Ok(()); // another worker made them meanwhile
    }
    if debug() {
        eprintln!("berth-worker: debug: network: installing the bridge rules");
    }
    let have = saved_rules(&save);
    let mut script = String::new();
    for (t, chains, rules) in bridge_rules() {
        script.push_str(&format!("*{t}\n"));
        for c in chains {
            script.push_str(&format!(":{c} - [0:0]\n"));
        }
        for r in rules {
            script.push_str(&r);
            script.push('\n');
        }
        let present = have.get(t).cloned().unwrap_or_default();
        for (jt, rule, insert) in bridge_jumps() {
            if jt == t && !present.contains(&rule.as_str()) {
                script.push_str(&insert);
                script.push('\n');
            }
        }
        script.push_str("COMMIT\n");
    }
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::process::Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("running iptables-restore")?;
    let mut stdin = c.stdin.take().expect("piped");
    stdin.write_all(script.as_bytes()).await?;
    drop(stdin);
    let out = c.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "iptables-restore (berth's bridge rules): {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
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
    fn chain_is_the_bridge_alone_with_ipam_in_the_work_dir() {
        // NAT and isolation are per-bridge rules made once (ensure_bridge_rules), so the
        // per-task chain is the bridge plugin with host-local IPAM, nothing else.
        let c = chain(Path::new("/w"), &ISOLATED);
        let kinds: Vec<&str> = c.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["bridge"]);
        assert_eq!(c[0]["ipMasq"], false);
        assert_eq!(c[0]["ipam"]["dataDir"], "/w/cni/ipam");
        assert_eq!(c[0]["bridge"], "berth0");
        assert!(c
            .iter()
            .all(|p| p["cniVersion"] == "1.0.0" && p["name"] == "berth-berth0"));
    }
}
