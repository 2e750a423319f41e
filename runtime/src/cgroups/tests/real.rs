//! Tests against the running kernel (as root): real cgroups under unique
//! names `/berth-test-<pid>-<n>`, real processes moved in, limits read back
//! from the kernel's files. A guard kills, thaws and removes everything
//! even when an assertion fails. They adapt to the host's layout (v1, v2
//! or hybrid) by asking where each controller lives.

use super::super::*;
use crate::spec::{Cpu, DeviceRule, HugepageLimit, Memory, Pids};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// A test cgroup, removed (with its processes killed) on drop.
struct Guard(Cgroup);

impl Guard {
    fn new() -> Guard {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let path = format!("/berth-test-{}-{n}", std::process::id());
        let cg = Cgroup::new(detect().unwrap(), &path);
        let g = Guard(cg);
        g.0.create().unwrap();
        g
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.thaw();
        let _ = self.0.kill_all(libc::SIGKILL);
        for _ in 0..200 {
            if self.0.pids().map(|p| p.is_empty()).unwrap_or(true) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.0.destroy();
    }
}

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sh -c script` that waits for a line on stdin before running `script`,
/// so the test can move it into the cgroup first.
fn held(script: &str) -> Proc {
    Proc(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read _go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn release(p: &mut Proc) -> std::process::ExitStatus {
    p.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    p.0.wait().unwrap()
}

fn statfs_magic(p: &Path) -> i64 {
    nix::sys::statfs::statfs(p).unwrap().filesystem_type().0 as i64
}

#[test]
fn detect_matches_the_mounted_filesystems() {
    let l = detect().unwrap();
    if let Layout::V1 { hierarchies } | Layout::Hybrid { hierarchies, .. } = &l {
        assert!(!hierarchies.is_empty());
        for (_, m) in hierarchies {
            assert_eq!(statfs_magic(m), libc::CGROUP_SUPER_MAGIC, "{}", m.display());
        }
    }
    if let Some(u) = l.unified_root() {
        assert_eq!(
            statfs_magic(u),
            libc::CGROUP2_SUPER_MAGIC,
            "{}",
            u.display()
        );
    }
}

#[test]
fn lifecycle_limits_freeze_kill_destroy() {
    let g = Guard::new();
    let cg = &g.0;
    if let Some(why) = missing(cg, &["memory", "cpuset"]) {
        return skip("lifecycle_limits_freeze_kill_destroy", &why);
    }
    for d in cg.dirs() {
        assert!(d.is_dir(), "{} not created", d.display());
    }
    let mut r = Resources {
        memory: Some(Memory {
            limit: Some(64 << 20),
            swap: Some(128 << 20),
            reservation: Some(32 << 20),
            ..Default::default()
        }),
        cpu: Some(Cpu {
            shares: Some(512),
            quota: Some(50_000),
            period: Some(100_000),
            cpus: Some("0".into()),
            ..Default::default()
        }),
        pids: Some(Pids { limit: 42 }),
        ..Default::default()
    };
    // hugetlb where the host has it (here: on cgroup2 next to v1).
    let huge = cg.placement("hugetlb").is_some();
    if huge {
        r.hugepage_limits = vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 21,
        }];
    }
    cg.apply(&r).unwrap();
    let read = |ctrl: &str, v1: &str, v2: &str| -> String {
        let (d, f) = match cg.placement(ctrl).unwrap() {
            Placement::V1(d) => (d, v1),
            Placement::V2(d) => (d, v2),
        };
        fs::read_to_string(d.join(f)).unwrap().trim().to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    let swap_expect = match cg.placement("memory").unwrap() {
        Placement::V1(_) => 128u64 << 20, // memory+swap
        Placement::V2(_) => 64u64 << 20,  // swap alone
    };
    let swap_file = read("memory", "memory.memsw.limit_in_bytes", "memory.swap.max");
    assert_eq!(swap_file, swap_expect.to_string());
    assert_eq!(
        read("memory", "memory.soft_limit_in_bytes", "memory.low"),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        read("cpu", "cpu.shares", "cpu.weight"),
        match cg.placement("cpu").unwrap() {
            Placement::V1(_) => "512".to_string(),
            Placement::V2(_) => v2::shares_to_weight(512).to_string(),
        }
    );
    match cg.placement("cpu").unwrap() {
        Placement::V1(_) => assert_eq!(read("cpu", "cpu.cfs_quota_us", ""), "50000"),
        Placement::V2(_) => assert_eq!(read("cpu", "", "cpu.max"), "50000 100000"),
    }
    assert_eq!(read("cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    assert_eq!(read("pids", "pids.max", "pids.max"), "42");
    if huge {
        assert_eq!(
            read("hugetlb", "hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max"),
            (4u64 << 21).to_string()
        );
    }
    // update lowers a limit in place.
    cg.update(&Resources {
        memory: Some(Memory {
            limit: Some(48 << 20),
            swap: Some(48 << 20),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        read("memory", "memory.limit_in_bytes", "memory.max"),
        (48u64 << 20).to_string()
    );

    // A real process moves in, then execs sleep: the exec's new pages are
    // charged here (memory charged before the move stays where it was).
    let mut child = held("exec sleep 1000");
    let pid = child.0.id() as i32;
    cg.add_pid(pid).unwrap();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    for _ in 0..2000 {
        if fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() == "sleep\n" {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&cg.path), "{own}");
    let st = cg.stats().unwrap();
    assert_eq!(st.pids.current, 1);
    assert_eq!(st.pids.limit, 42);
    assert!(st.memory.usage.usage > 0);
    let js = serde_json::to_value(&st).unwrap();
    assert_eq!(js["memory"]["usage"]["limit"], 48u64 << 20);

    cg.freeze().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    // A frozen task sleeps uninterruptibly ("D") on v1, and on v2 since Linux
    // 6.1 (TASK_FROZEN); before, the v2 freezer parks it in an interruptible
    // job-control stop ("S"), and cgroup.events says "frozen 1".
    let v2 = matches!(cg.placement("pids"), Some(Placement::V2(_)));
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("State:\tD") || (v2 && l.starts_with("State:\tS"))),
        "{status}"
    );
    cg.thaw().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);

    // kill_all works on a frozen cgroup too (v1 path freezes anyway).
    cg.freeze().unwrap();
    cg.kill_all(libc::SIGKILL).unwrap();
    cg.thaw().unwrap();
    let status = child.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    cg.destroy().unwrap();
    for d in cg.leaves() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    cg.destroy().unwrap(); // idempotent
}

#[test]
fn destroy_removes_nested_cgroups() {
    let g = Guard::new();
    let nested: Vec<PathBuf> = g.0.leaves().iter().map(|d| d.join("sub/inner")).collect();
    for n in &nested {
        fs::create_dir_all(n).unwrap();
    }
    g.0.destroy().unwrap();
    for d in g.0.leaves() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// Deny everything but /dev/zero and /dev/urandom (so /dev/null is refused).
fn deny_null() -> Vec<DeviceRule> {
    vec![
        super::rule(false, "a", None, None, "rwm"),
        super::rule(true, "c", Some(1), Some(5), "rwm"),
        super::rule(true, "c", Some(1), Some(9), "rwm"),
    ]
}

#[test]
fn v1_device_rules_are_enforced() {
    let g = Guard::new();
    let Some(Placement::V1(_)) = g.0.placement("devices") else {
        // A v2 host has no devices controller: the eBPF test covers it.
        assert!(matches!(g.0.layout, Layout::V2 { .. }));
        return;
    };
    g.0.apply(&Resources {
        devices: deny_null(),
        ..Default::default()
    })
    .unwrap();
    let mut denied = held("exec cat /dev/null");
    g.0.add_pid(denied.0.id() as i32).unwrap();
    assert!(!release(&mut denied).success(), "/dev/null must be refused");
    let mut allowed = held("exec head -c1 /dev/zero");
    g.0.add_pid(allowed.0.id() as i32).unwrap();
    assert!(release(&mut allowed).success(), "/dev/zero must be allowed");
}

#[test]
fn ebpf_device_program_is_enforced_and_replaced() {
    let g = Guard::new();
    let Some(dir) = g.0.v2_dir() else {
        return skip(
            "ebpf_device_program_is_enforced_and_replaced",
            "no cgroup2 mount (a cgroup v1 layout)",
        );
    };
    devices::attach_program(&dir, &deny_null()).unwrap();
    let mut denied = held("exec cat /dev/null");
    g.0.add_pid(denied.0.id() as i32).unwrap();
    assert!(
        !release(&mut denied).success(),
        "/dev/null must be refused by the eBPF program"
    );
    let mut allowed = held("exec head -c1 /dev/zero");
    g.0.add_pid(allowed.0.id() as i32).unwrap();
    assert!(release(&mut allowed).success(), "/dev/zero must be allowed");
    // A second attach (update) replaces the first: still exactly one, and
    // now allowing /dev/null.
    let mut all = deny_null();
    all.push(DeviceRule {
        allow: true,
        typ: Some("c".into()),
        major: Some(1),
        minor: Some(3),
        access: Some("rw".into()),
    });
    devices::attach_program(&dir, &all).unwrap();
    let f = fs::File::open(&dir).unwrap();
    assert_eq!(devices::query_programs(&f).unwrap().len(), 1);
    let mut now_ok = held("exec cat /dev/null");
    g.0.add_pid(now_ok.0.id() as i32).unwrap();
    assert!(
        release(&mut now_ok).success(),
        "/dev/null allowed after the update"
    );
}

#[test]
fn oom_kill_is_counted_and_notified() {
    let g = Guard::new();
    let cg = &g.0;
    if let Some(why) = missing(cg, &["memory"]) {
        return skip("oom_kill_is_counted_and_notified", &why);
    }
    // 8 MiB and no swap: dd's 64 MiB buffer cannot fit.
    cg.apply(&Resources {
        memory: Some(Memory {
            limit: Some(8 << 20),
            swap: Some(8 << 20),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let before = cg.oom_events().unwrap();
    let mut watcher = OomWatcher::new(cg).unwrap();
    let mut p = held("exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    cg.add_pid(p.0.id() as i32).unwrap();
    let st = release(&mut p);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        st.signal(),
        Some(libc::SIGKILL),
        "dd should be OOM-killed: {st:?}"
    );
    let after = cg.oom_events().unwrap();
    assert!(after.oom_kill > before.oom_kill, "{before:?} → {after:?}");
    let mut fds = [libc::pollfd {
        fd: watcher.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: one valid pollfd; the event already happened, so no waiting.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
    assert_eq!(n, 1, "the OOM fd must be readable");
    assert!(watcher.wait(Duration::ZERO).unwrap() >= 1);
    assert_eq!(watcher.check().unwrap(), 0, "nothing new");
    assert_eq!(
        watcher.wait(Duration::from_millis(1)).unwrap(),
        0,
        "times out with nothing new"
    );
}

#[test]
fn missing_controller_only_fails_when_asked() {
    let g = Guard::new();
    // net_cls is not mounted on this project's host; if a host has it, check it works.
    let net = Resources {
        network: Some(serde_json::from_value(serde_json::json!({"classID": 1048577})).unwrap()),
        ..Default::default()
    };
    match g.0.placement("net_cls") {
        Some(Placement::V1(d)) => {
            g.0.apply(&net).unwrap();
            assert_eq!(
                fs::read_to_string(d.join("net_cls.classid"))
                    .unwrap()
                    .trim(),
                "1048577"
            );
        }
        _ => {
            let e = g.0.apply(&net).unwrap_err().to_string();
            assert!(e.starts_with("linux.resources.network.classID: "), "{e}");
        }
    }
    g.0.apply(&Resources::default()).unwrap();
}

use std::os::fd::AsRawFd;

/// The v2 code paths for real, on whatever cgroup2 mount the host has (on
/// a hybrid host: the unified hierarchy next to v1): cgroup.procs,
/// cgroup.freeze + cgroup.events, cgroup.kill, `unified` keys, stats.
#[test]
fn v2_paths_on_the_cgroup2_mount() {
    let Some(root) = detect().unwrap().unified_root().map(Path::to_path_buf) else {
        return skip(
            "v2_paths_on_the_cgroup2_mount",
            "no cgroup2 mount (a cgroup v1 layout)",
        );
    };
    let n = N.fetch_add(1, Ordering::SeqCst);
    let g = Guard({
        let cg = Cgroup::new(
            Layout::V2 { root },
            &format!("/berth-test-{}-{n}", std::process::id()),
        );
        cg.create().unwrap();
        cg
    });
    let cg = &g.0;
    let dir = cg.v2_dir().unwrap();
    cg.apply(&Resources {
        unified: [("cgroup.max.descendants".to_string(), "3".to_string())].into(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("cgroup.max.descendants"))
            .unwrap()
            .trim(),
        "3"
    );
    let e = cg
        .apply(&Resources {
            unified: [("nosuch.file".to_string(), "1".to_string())].into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "linux.resources.unified[\"nosuch.file\"]: the nosuch controller is not enabled"
        ),
        "{e}"
    );

    // A busy loop: frozen, it stops accumulating CPU time. (The v2 freezer
    // parks tasks in a signal-delivery trap, so they show "S", not "D".)
    let mut child = Proc(
        Command::new("/bin/sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id() as i32;
    cg.add_pid(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    cg.freeze().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    assert_eq!(
        fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    let cpu_ticks = || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after_comm.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap() // utime + stime
    };
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(cpu_ticks(), before, "a frozen busy loop must not run");
    cg.thaw().unwrap();
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    let st = serde_json::to_value(cg.stats().unwrap()).unwrap();
    assert!(st["cpu"].get("usage").is_some(), "{st}");
    cg.kill_all(libc::SIGKILL).unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.0.wait().unwrap().signal(), Some(libc::SIGKILL));
    for _ in 0..1000 {
        if cg.pids().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cg.destroy().unwrap();
    assert!(!dir.exists());
}

/// A relative cgroupsPath lands under the caller's own cgroup in each
/// hierarchy (runc's rule), as /proc/self/cgroup names it.
#[test]
fn relative_path_under_own_cgroups() {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let rel = format!("berth-test-rel-{}-{n}", std::process::id());
    let cg = Cgroup::new(detect().unwrap(), &rel);
    let g = Guard(cg);
    g.0.create().unwrap();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    for line in own.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let mount = if ctrls.is_empty() {
            g.0.layout.unified_root()
        } else {
            ctrls.split(',').find_map(|c| g.0.layout.v1_mount(c))
        };
        let Some(mount) = mount else { continue };
        let want = mount.join(path.trim_start_matches('/')).join(&rel);
        assert!(
            g.0.leaves().contains(&want),
            "{} not in {:?}",
            want.display(),
            g.0.leaves()
        );
        assert!(want.is_dir());
    }
}

/// blockIO throttles on a real block device of this machine, read back
/// from blkio.throttle.* (v1) or io.max (v2); a weight where the host's
/// I/O scheduler offers none is refused naming the field and file.
#[test]
fn block_io_throttles_on_a_real_device() {
    let g = Guard::new();
    let cg = &g.0;
    let dev = fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| {
            fs::read_to_string(e.path().join("dev"))
                .unwrap()
                .trim()
                .to_string()
        })
        .next()
        .expect("a block device");
    let (major, minor) = dev.split_once(':').unwrap();
    let r = Resources {
        block_io: Some(serde_json::from_value(serde_json::json!({
            "throttleReadBpsDevice": [{"major": major.parse::<i64>().unwrap(), "minor": minor.parse::<i64>().unwrap(), "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": major.parse::<i64>().unwrap(), "minor": minor.parse::<i64>().unwrap(), "rate": 100}]
        })).unwrap()),
        ..Default::default()
    };
    cg.apply(&r).unwrap();
    match cg
        .placement("blkio")
        .or_else(|| cg.placement("io"))
        .unwrap()
    {
        Placement::V1(d) => {
            assert_eq!(
                fs::read_to_string(d.join("blkio.throttle.read_bps_device"))
                    .unwrap()
                    .trim(),
                format!("{dev} 1048576")
            );
            assert_eq!(
                fs::read_to_string(d.join("blkio.throttle.write_iops_device"))
                    .unwrap()
                    .trim(),
                format!("{dev} 100")
            );
            let weight = Resources {
                block_io: Some(serde_json::from_value(serde_json::json!({"weight": 500})).unwrap()),
                ..Default::default()
            };
            if d.join("blkio.weight").exists() || d.join("blkio.bfq.weight").exists() {
                cg.apply(&weight).unwrap();
            } else {
                // berth's own words, whatever errno the host would pick for
                // a file cgroupfs does not offer: field, value, file.
                let e = cg.apply(&weight).unwrap_err().to_string();
                assert_eq!(
                    e,
                    format!("linux.resources.blockIO.weight: cannot write 500: {} does not exist (this kernel or controller offers no such cgroup file)", d.join("blkio.weight").display()),
                );
            }
        }
        Placement::V2(d) => {
            let max = fs::read_to_string(d.join("io.max")).unwrap();
            assert!(
                max.contains(&format!("{dev} rbps=1048576")) && max.contains("wiops=100"),
                "{max}"
            );
        }
    }
}

/// The first of `controllers` this layout has nowhere, as a skip reason. Linux ≥ 6.11 can be
/// built without the v1 memory controller, ≥ 6.12 without the v1 cpuset (Debian's 6.12 is):
/// a v1 layout there has neither (docs/kernels.md).
fn missing(cg: &Cgroup, controllers: &[&str]) -> Option<String> {
    let c = controllers.iter().find(|c| cg.placement(c).is_none())?;
    let config = if *c == "memory" {
        "CONFIG_MEMCG_V1"
    } else {
        "CONFIG_CPUSETS_V1"
    };
    Some(format!(
        "no {c} controller in this cgroup layout: in no v1 hierarchy, not offered by cgroup2 (a kernel built without {config} has no v1 {c} controller)"
    ))
}

/// A test that cannot run on this machine's kernel or cgroup layout says so
/// and returns without asserting; the kernel matrix (docs/kernels.md) sets
/// `$BERTH_SKIP_LOG` and lists every such line under its table.
fn skip(test: &str, reason: &str) {
    let line = format!("{test}: {reason}\n");
    eprint!("SKIP {line}");
    if let Some(log) = std::env::var_os("BERTH_SKIP_LOG") {
        let mut f = fs::OpenOptions::new().create(true).append(true).open(log);
        f.as_mut()
            .map(|f| f.write_all(line.as_bytes()))
            .unwrap()
            .unwrap();
    }
}

/// The rest of linux.resources.cpu: burst, idle and (v1) realtime.
#[test]
fn cpu_burst_idle_realtime() {
    let g = Guard::new();
    let cg = &g.0;
    let Some(place) = cg.placement("cpu") else {
        panic!("no cpu controller on this host");
    };
    let mut cpu = Cpu {
        quota: Some(20_000),
        period: Some(100_000),
        burst: Some(10_000),
        idle: Some(1),
        realtime_period: Some(100_000),
        realtime_runtime: Some(10_000),
        ..Default::default()
    };
    // Linux < 5.15 has no cpu.idle (< 5.14 no burst either): the error names
    // the field, the file and the kernel that added it; the rest still works.
    let (Placement::V1(d) | Placement::V2(d)) = &place;
    for (file, since) in [
        ("cpu.idle", "5.15"),
        ("cpu.cfs_burst_us", "5.14"),
        ("cpu.max.burst", "5.14"),
    ] {
        // cpu.idle is in both layouts; the burst has a file in each.
        let here = match file {
            "cpu.cfs_burst_us" => matches!(place, Placement::V1(_)),
            "cpu.max.burst" => matches!(place, Placement::V2(_)),
            _ => true,
        };
        if !here || d.join(file).exists() {
            continue;
        }
        let only = Cpu {
            idle: cpu.idle.filter(|_| file == "cpu.idle"),
            burst: cpu.burst.filter(|_| file != "cpu.idle"),
            ..Default::default()
        };
        let e = cg
            .apply(&Resources {
                cpu: Some(only),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(file) && e.contains(&format!("Linux >= {since}")),
            "{e}"
        );
        if file == "cpu.idle" {
            cpu.idle = None;
        } else {
            cpu.burst = None;
        }
    }
    let rd = |f: &str| fs::read_to_string(d.join(f)).unwrap().trim().to_string();
    let (burst, idle) = (cpu.burst.is_some(), cpu.idle.is_some());
    match place {
        Placement::V1(_) => {
            // A kernel built without CONFIG_RT_GROUP_SCHED (Debian's 5.10)
            // has no realtime files: the error names the field and the option.
            let realtime = d.join("cpu.rt_period_us").exists();
            if !realtime {
                let e = cg
                    .apply(&Resources {
                        cpu: Some(cpu.clone()),
                        ..Default::default()
                    })
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.starts_with("linux.resources.cpu.realtime")
                        && e.contains("CONFIG_RT_GROUP_SCHED"),
                    "{e}"
                );
                cpu.realtime_period = None;
                cpu.realtime_runtime = None;
            }
            cg.apply(&Resources {
                cpu: Some(cpu),
                ..Default::default()
            })
            .unwrap();
            if burst {
                assert_eq!(rd("cpu.cfs_burst_us"), "10000");
            }
            if idle {
                assert_eq!(rd("cpu.idle"), "1");
            }
            if realtime {
                assert_eq!(rd("cpu.rt_period_us"), "100000");
                assert_eq!(rd("cpu.rt_runtime_us"), "10000");
            }
        }
        Placement::V2(_) => {
            let e = cg
                .apply(&Resources {
                    cpu: Some(cpu.clone()),
                    ..Default::default()
                })
                .unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("linux.resources.cpu.realtimeRuntime: "),
                "{e}"
            );
            let cpu = Cpu {
                realtime_period: None,
                realtime_runtime: None,
                ..cpu
            };
            cg.apply(&Resources {
                cpu: Some(cpu),
                ..Default::default()
            })
            .unwrap();
            if burst {
                assert_eq!(rd("cpu.max.burst"), "10000");
            }
            if idle {
                assert_eq!(rd("cpu.idle"), "1");
            }
        }
    }
}
