//! Task networks: bridge (CNI plugins, NAT, the DNS proxy), none and host, isolation, and no
//! leftovers after many runs or a `kill -9`.
//!
//! The worker runs inside a namespace the test makes ("host", `nsenter --net`), so its
//! bridge, veths, IPAM leases and iptables rules all live there. "The internet" is another
//! namespace reached through the host namespace's explicit route to TEST-NET-2
//! (198.51.100.0/24); the host's resolver is the test's DNS server on 127.0.0.53 (like
//! systemd-resolved), passed with `--dns`. No packet leaves the test's namespaces.

mod netns_common;
mod worker_common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use netns_common::*;
use worker_common::*;

struct Lab {
    host: Netns,
    _inet: Netns,
    _dns: DnsServer,
    env: Env,
    probes: PathBuf,
}

/// A TCP server that tells each client the address it came from.
fn peer_server(ns: &Netns, addr: &'static str) {
    let l = ns.run(move || TcpListener::bind(addr).unwrap());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let _ = writeln!(c, "peer={}", c.peer_addr().unwrap().ip());
        }
    });
}

impl Lab {
    fn new() -> Lab {
        let host = Netns::new("nethost");
        let inet = Netns::new("netinet");
        link(&host, "192.0.2.1/24", &inet, "192.0.2.2/24");
        run_sh(&format!(
            "ip -n {i} addr add 198.51.100.80/32 dev lo && \
             ip -n {h} route add 198.51.100.0/24 via 192.0.2.2",
            i = inet.name,
            h = host.name
        ));
        peer_server(&inet, "198.51.100.80:8080");
        let dns = DnsServer::start(&host, "127.0.0.53:53", false);
        let env = Env::new();
        let probes = env.path("probes");
        std::fs::create_dir_all(&probes).unwrap();
        for p in ["berth-probe", "berth-probe-musl"] {
            std::fs::copy(fixtures().join("probes").join(p), probes.join(p)).unwrap();
        }
        Lab {
            host,
            _inet: inet,
            _dns: dns,
            env,
            probes,
        }
    }

    /// `berth-worker` in the lab's host namespace.
    fn worker(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.host.name))
            .arg(worker_bin())
            .arg("--work-dir")
            .arg(self.env.work_dir())
            .env("BERTH_BIN", runtime_bin());
        c
    }

    fn task(&self, script: &str) -> PathBuf {
        self.env.write(
            &format!("task-{}.yml", sha8(script)),
            &format!(
                "platform: linux\ninputs: [{{name: probes}}]\nrun:\n  path: sh\n  args: [\"-c\", {}]\n",
                serde_json::to_string(script).unwrap()
            ),
        )
    }

    /// `berth-worker run TASK` on busybox with the probes input and the lab's resolver.
    fn run_cmd(&self, task: &Path) -> Command {
        let mut c = self.worker();
        c.arg("run")
            .arg(task)
            .arg("--image")
            .arg(busybox())
            .arg("-i")
            .arg(format!("probes={}", self.probes.display()))
            .args(["--dns", "127.0.0.53"]);
        c
    }

    fn run(&self, script: &str, extra: &[&str]) -> Output {
        self.run_cmd(&self.task(script))
            .args(extra)
            .output()
            .unwrap()
    }

    fn ok(&self, script: &str, extra: &[&str]) -> String {
        let o = self.run(script, extra);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        stdout(&o)
    }

    fn in_host(&self, cmd: &str) -> String {
        sh_out(&format!("ip netns exec {} sh -c '{cmd}'", self.host.name))
    }

    /// The IPAM leases held (files under `<work-dir>/cni/ipam`, bookkeeping aside).
    fn leases(&self) -> Vec<String> {
        walk(&self.env.work_dir().join("cni/ipam"))
            .into_iter()
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n != "lock" && !n.starts_with("last_reserved_ip")
            })
            .map(|p| p.display().to_string())
            .collect()
    }

    /// The CNI DELs owed (`<work-dir>/cni/del/*.json`).
    fn owed(&self) -> Vec<PathBuf> {
        walk(&self.env.work_dir().join("cni/del"))
    }

    /// What the worker's network may leave in the host namespace between runs: the two
    /// bridges and the per-bridge rules. Everything per task must be gone.
    fn assert_no_task_leftovers(&self) {
        // A veth goes with the task's namespace, which the kernel destroys in the background
        // once the worker lets go of it, and a run's CNI DEL (the lease) runs in a background
        // process after the run returns: give both a moment, but they must go.
        let deadline =
            std::time::Instant::now() + berth_integration::scaled(Duration::from_secs(10));
        let veths = loop {
            let v = self.in_host("ip -o link | grep -E \"master berth[01]\" || true");
            let settled = v.trim().is_empty() && self.owed().is_empty() && self.leases().is_empty();
            if settled || std::time::Instant::now() > deadline {
                break v;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(veths.trim(), "", "veths left behind");
        assert_eq!(self.owed(), Vec::<PathBuf>::new(), "CNI DELs never done");
        // The rules are per bridge, in berth's own chains; no plugin makes any per task
        // (no CNI-* chain, no task address).
        let rules = self.in_host("iptables-save | grep -E \"^-A\"");
        for r in rules.lines() {
            assert!(
                r.contains("BERTH-") && !r.contains("CNI-"),
                "a per-task iptables rule left behind: {r}\nall:\n{rules}"
            );
            for w in r.split_whitespace() {
                let task_addr = (w.starts_with("10.80.") || w.starts_with("10.81."))
                    && w.ends_with("/32")
                    && !w.starts_with("10.80.0.1/")
                    && !w.starts_with("10.81.0.1/");
                assert!(!task_addr, "a task's address in a rule: {r}");
            }
        }
        let leases = self.leases();
        assert!(leases.is_empty(), "IPAM leases left behind: {leases:?}");
        self.env.assert_clean(&[]);
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn a_bridge_task_reaches_the_internet_through_nat_and_musl_resolves() {
    let lab = Lab::new();
    let out = lab.ok(
        "./probes/berth-probe-musl getaddrinfo a.test; ./probes/berth-probe getaddrinfo a.test; \
         busybox nc 198.51.100.80 8080 </dev/null; cat /etc/resolv.conf /etc/hosts /etc/hostname",
        &[],
    );
    // musl through berth's proxy, although the upstream answers AAAA with NXDOMAIN.
    assert_eq!(
        out.matches("gai=OK addrs=198.51.100.10\n").count(),
        2,
        "{out}"
    );
    // The far side sees the host namespace's address: masqueraded.
    assert!(out.contains("peer=192.0.2.1\n"), "{out}");
    assert!(out.contains("nameserver 10.80.0.1\n"), "{out}");
    let hostname = out.lines().last().unwrap();
    assert!(
        out.lines()
            .any(|l| l.starts_with("10.80.") && l.ends_with(&format!(" {hostname}"))),
        "/etc/hosts names the task's own address: {out}"
    );
    // The repair off: the musl incident, in a task.
    let out = lab.ok(
        "./probes/berth-probe-musl getaddrinfo a.test; ./probes/berth-probe getaddrinfo a.test",
        &["--no-dns-rewrite"],
    );
    assert!(out.starts_with("gai=EAI_NONAME"), "{out}");
    assert!(out.contains("gai=OK addrs=198.51.100.10"), "{out}");
    lab.assert_no_task_leftovers();
}

#[test]
fn a_task_reaches_neither_the_host_nor_another_task_unless_allowed() {
    let lab = Lab::new();
    for addr in ["0.0.0.0:8081", "127.0.0.1:8082"] {
        peer_server(&lab.host, addr);
    }
    let probe = |gw: &str| {
        format!(
            "for a in {gw}:8081 192.0.2.1:8081 127.0.0.1:8082; do \
               if busybox nc -w 2 ${{a%:*}} ${{a#*:}} </dev/null | grep -q peer=; \
               then echo $a=open; else echo $a=closed; fi; done"
        )
    };
    let out = lab.ok(&probe("10.80.0.1"), &[]);
    assert!(out.contains("10.80.0.1:8081=closed"), "{out}");
    assert!(out.contains("192.0.2.1:8081=closed"), "{out}");
    assert!(out.contains("127.0.0.1:8082=closed"), "{out}");
    let out = lab.ok(&probe("10.81.0.1"), &["--allow-host-access"]);
    assert!(out.contains("10.81.0.1:8081=open"), "{out}");
    assert!(out.contains("192.0.2.1:8081=open"), "{out}");
    // The host's loopback services stay out of reach: 127.0.0.1 is the task's own.
    assert!(out.contains("127.0.0.1:8082=closed"), "{out}");

    // Two tasks on the bridge: the second cannot reach the first.
    let task = lab.task("echo ready; busybox nc -l -p 9000 -e echo hello-from-a");
    let mut a = lab
        .run_cmd(&task)
        .args(["--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut r = std::io::BufReader::new(a.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let ids = lab.env.run_ids();
    assert_eq!(ids.len(), 1);
    let st: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            lab.env
                .work_dir()
                .join("runs")
                .join(&ids[0])
                .join("net/state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let a_ip = st["result"]["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let out = lab.ok(
        &format!(
            "if busybox nc -w 2 {a_ip} 9000 </dev/null | grep -q hello; then echo peer=open; else echo peer=closed; fi"
        ),
        &[],
    );
    assert!(out.contains("peer=closed"), "{out}");
    // It was listening all along: the host (the bridge's own port) reaches it.
    let from_host = lab.in_host(&format!("busybox nc -w 5 {a_ip} 9000 </dev/null"));
    assert!(from_host.contains("hello-from-a"), "{from_host:?}");
    let st = a.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{st}");
    lab.assert_no_task_leftovers();
}

#[test]
fn the_bridge_rules_are_made_once_and_again_after_a_flush() {
    let lab = Lab::new();
    // Whether this run had to make the per-bridge rules (it says so at debug level).
    let run = || {
        let o = lab
            .worker()
            .env("BERTH_WORKER_LOG", "debug")
            .arg("run")
            .arg(lab.task("true"))
            .arg("--image")
            .arg(busybox())
            .arg("-i")
            .arg(format!("probes={}", lab.probes.display()))
            .args(["--dns", "127.0.0.53"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).contains("installing the bridge rules")
    };
    assert!(run(), "the first run on a fresh host makes the rules");
    assert!(!run(), "the second run finds them in place");
    lab.in_host("iptables -F BERTH-INPUT");
    assert!(run(), "a flushed chain is noticed and remade");
    let rules = lab.in_host("iptables-save");
    assert!(
        rules.contains("-A BERTH-INPUT -j REJECT"),
        "the isolation is back: {rules}"
    );
    assert_eq!(
        rules.matches("-A INPUT -i berth0 -j BERTH-INPUT").count(),
        1,
        "jumps are not duplicated: {rules}"
    );
    lab.assert_no_task_leftovers();
}

#[test]
fn network_none_has_only_loopback_and_host_mode_resolves_through_the_proxy() {
    let lab = Lab::new();
    let out = lab.ok(
        "tail -n +3 /proc/net/dev | cut -d: -f1",
        &["--network", "none"],
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"], "{out}");
    // Host network: the host's resolver is on loopback (127.0.0.53); the task gets the proxy
    // on another loopback address it shares with the host, and musl resolves.
    let out = lab.ok(
        "cat /etc/resolv.conf; ./probes/berth-probe-musl getaddrinfo a.test",
        &["--network", "host"],
    );
    assert!(out.contains("nameserver 127.0.0.153\n"), "{out}");
    assert!(out.contains("gai=OK addrs=198.51.100.10"), "{out}");
    lab.assert_no_task_leftovers();
}

#[test]
fn no_leftovers_after_100_runs_or_a_kill_9_and_gc() {
    let lab = Lab::new();
    // A leak shows after any number of runs; the emulated kernel matrix runs fewer.
    for i in 0..berth_integration::scaled_count(100) {
        let o = lab.run("true", &[]);
        assert_eq!(o.status.code(), Some(0), "run {i}: {}", text(&o));
    }
    lab.assert_no_task_leftovers();

    let task = lab.task("echo running; sleep 100");
    let mut w = lab
        .worker()
        .arg("run")
        .arg(&task)
        .arg("--image")
        .arg(busybox())
        .arg("-i")
        .arg(format!("probes={}", lab.probes.display()))
        .args(["--dns", "127.0.0.53"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut r = std::io::BufReader::new(w.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    assert_eq!(line.trim(), "running");
    assert_ne!(
        lab.in_host("ip -o link | grep -E \"master berth[01]\" || true")
            .trim(),
        ""
    );
    w.kill().unwrap();
    w.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let o = lab.worker().arg("gc").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("removed stale run"), "{}", text(&o));
    lab.assert_no_task_leftovers();
}

/// Where the real CNI plugins are (as the worker looks for them).
fn real_plugins() -> PathBuf {
    ["/usr/lib/cni", "/opt/cni/bin"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("bridge").is_file())
        .expect("the CNI plugins (make deps)")
}

#[test]
fn the_exit_status_does_not_wait_for_del_and_a_killed_del_is_done_by_gc() {
    let lab = Lab::new();
    // A plugin directory without `loopback` (the runtime brings lo up itself), whose `bridge`
    // hangs on DEL while `hold` exists, after saying who ran it: the background DEL process.
    let cni = lab.env.path("cni-plugins");
    std::fs::create_dir_all(&cni).unwrap();
    let real = real_plugins();
    std::os::unix::fs::symlink(real.join("host-local"), cni.join("host-local")).unwrap();
    let hold = lab.env.path("hold");
    let del_pid = lab.env.path("del.pid");
    std::fs::write(&hold, "").unwrap();
    let wrapper = lab.env.write(
        "cni-plugins/bridge",
        &format!(
            "#!/bin/sh\nif [ \"$CNI_COMMAND\" = DEL ] && [ -e {hold} ]; then echo $PPID > {pid}; exec sleep 60; fi\nexec {real}/bridge\n",
            hold = hold.display(),
            pid = del_pid.display(),
            real = real.display()
        ),
    );
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let task = lab.task("cat /sys/class/net/lo/flags; exit 3");
    let w = lab
        .run_cmd(&task)
        .env("BERTH_CNI_PATH", &cni)
        // (with debug logging the background DEL would share our stderr pipe)
        .env_remove("BERTH_WORKER_LOG")
        .args(["--network", "bridge"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // (nsenter execs the worker: same pid)
    let worker_pid = w.id() as i32;
    let o = w.wait_with_output().unwrap();
    // The task's exit status came back while its DEL hangs: DEL is off the run's path.
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // lo is up (IFF_UP) with no loopback plugin.
    let flags = u32::from_str_radix(stdout(&o).trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is down: {flags:#x}");
    // The DEL is owed on disk, and its lease is still held, until the DEL runs.
    // (the shell creates the file before it writes the pid: wait for the number)
    let pid: i32 = berth_integration::poll_until(
        "the background DEL to run the plugin",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&del_pid)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        },
    );
    assert_ne!(pid, worker_pid, "the run's own worker ran the DEL");
    assert_eq!(lab.owed().len(), 1, "{:?}", lab.owed());
    assert_eq!(lab.leases().len(), 1, "{:?}", lab.leases());
    // Another run's sweep leaves a DEL that a live process holds alone.
    lab.ok("true", &["--network", "none"]);
    assert_eq!(lab.owed().len(), 1, "{:?}", lab.owed());
    assert_eq!(lab.leases().len(), 1, "{:?}", lab.leases());
    // kill -9 the background DEL (its own process group: the worker and the plugin).
    // SAFETY: kill(2) on a process group this test made the worker start.
    assert_eq!(unsafe { libc::kill(-pid, libc::SIGKILL) }, 0);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(lab.owed().len(), 1, "the owed DEL must survive its process");
    assert_eq!(lab.leases().len(), 1);
    // gc does it, with the real plugins.
    std::fs::remove_file(&hold).unwrap();
    let o = lab.worker().arg("gc").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains("released the network of"),
        "{}",
        text(&o)
    );
    lab.assert_no_task_leftovers();
}
