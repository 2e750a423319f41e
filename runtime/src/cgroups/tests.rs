//! Unit tests: parsers, conversions and fake cgroup trees in a tempdir.
//! Tests against the real kernel (root) are in [`real`].

use super::*;
use crate::spec::{Cpu, HugepageLimit, Memory, Pids};
use std::fs;

mod real;

/// This project's host, verbatim: v1 controllers each on its own
/// hierarchy, systemd's named one, and cgroup2 at .../unified.
const HYBRID: &str = "\
22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// A classic systemd v1 host: cpu and cpuacct co-mounted, xattr options.
const V1: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
";

/// A modern v2-only host.
const V2: &str = "\
24 18 0:21 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

fn hier(pairs: &[(&str, &str)]) -> Vec<(String, PathBuf)> {
    pairs
        .iter()
        .map(|(c, p)| (c.to_string(), PathBuf::from(p)))
        .collect()
}

#[test]
fn mountinfo_hybrid() {
    let l = parse_mountinfo(HYBRID).unwrap();
    assert_eq!(
        l,
        Layout::Hybrid {
            hierarchies: hier(&[
                ("cpu", "/sys/fs/cgroup/cpu"),
                ("cpuacct", "/sys/fs/cgroup/cpuacct"),
                ("memory", "/sys/fs/cgroup/memory"),
                ("freezer", "/sys/fs/cgroup/freezer"),
                ("name=systemd", "/sys/fs/cgroup/systemd"),
            ]),
            unified: "/sys/fs/cgroup/unified".into(),
        }
    );
}

#[test]
fn mountinfo_v1_comounted() {
    let l = parse_mountinfo(V1).unwrap();
    assert_eq!(
        l.v1_mount("cpuacct"),
        Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
    );
    assert_eq!(
        l.v1_mount("net_prio"),
        Some(Path::new("/sys/fs/cgroup/net_cls,net_prio"))
    );
    assert_eq!(
        l.v1_mount("name=systemd"),
        Some(Path::new("/sys/fs/cgroup/systemd"))
    );
    assert_eq!(
        l.v1_mount("xattr"),
        None,
        "mount options are not controllers"
    );
    assert_eq!(l.unified_root(), None);
    assert_eq!(l.mounts().len(), 4, "one per hierarchy: {:?}", l.mounts());
}

#[test]
fn mountinfo_v2_and_none() {
    assert_eq!(
        parse_mountinfo(V2).unwrap(),
        Layout::V2 {
            root: "/sys/fs/cgroup".into()
        }
    );
    let e = parse_mountinfo("22 27 0:20 / /sys rw - sysfs sysfs rw\n").unwrap_err();
    assert!(e.to_string().contains("no cgroup filesystem"), "{e}");
}

#[test]
fn mountinfo_escaped_mount_point() {
    let l = parse_mountinfo("41 31 0:38 / /tmp/my\\040cgroups rw - cgroup2 cgroup2 rw\n").unwrap();
    assert_eq!(
        l,
        Layout::V2 {
            root: "/tmp/my cgroups".into()
        }
    );
}

#[test]
fn resolve_default_absolute_relative() {
    assert_eq!(resolve_path(None, "c1").unwrap(), "/berth/c1");
    assert_eq!(resolve_path(Some(""), "c1").unwrap(), "/berth/c1");
    assert_eq!(resolve_path(Some("/a//b/./c/"), "c1").unwrap(), "/a/b/c");
    assert_eq!(resolve_path(Some("a/b"), "c1").unwrap(), "a/b");
}

#[test]
fn resolve_refuses_systemd_dotdot_root() {
    assert_eq!(
        resolve_path(Some("system.slice:berth:c1"), "c1")
            .unwrap_err()
            .to_string(),
        "config.json: linux.cgroupsPath: \"system.slice:berth:c1\" is a systemd cgroup path; \
         berth uses cgroupfs (no systemd on this host)"
    );
    let e = resolve_path(Some("/berth/../../etc"), "c1").unwrap_err();
    assert_eq!(e.field, "linux.cgroupsPath");
    assert!(e.msg.contains("\"..\""), "{e}");
    assert!(resolve_path(Some("/"), "c1").is_err());
}

#[test]
fn relative_path_goes_under_own_cgroup_per_hierarchy() {
    let layout = parse_mountinfo(HYBRID).unwrap();
    let own = "4:memory:/process_api/abc\n1:cpu:/\n0::/user.slice\n";
    let cg = Cgroup::with_own_cgroups(layout.clone(), "ctr/x", own);
    let dirs = cg.leaves();
    assert!(
        dirs.contains(&PathBuf::from(
            "/sys/fs/cgroup/memory/process_api/abc/ctr/x"
        )),
        "{dirs:?}"
    );
    assert!(
        dirs.contains(&PathBuf::from("/sys/fs/cgroup/cpu/ctr/x")),
        "{dirs:?}"
    );
    assert!(
        dirs.contains(&PathBuf::from("/sys/fs/cgroup/unified/user.slice/ctr/x")),
        "{dirs:?}"
    );
    // An absolute path ignores the caller's cgroup.
    let abs = Cgroup::with_own_cgroups(layout, "/berth/x", own);
    assert!(abs
        .leaves()
        .contains(&PathBuf::from("/sys/fs/cgroup/memory/berth/x")));
    assert_eq!(abs.leaves().len(), 6, "5 v1 hierarchies + unified");
}

#[test]
fn container_mounts_v1_v2() {
    let v1 = Cgroup::with_own_cgroups(parse_mountinfo(V1).unwrap(), "/berth/x", "");
    let m = v1.container_mounts();
    assert!(
        m.contains(&(
            "/sys/fs/cgroup/cpu,cpuacct/berth/x".into(),
            "cpu,cpuacct".into()
        )),
        "{m:?}"
    );
    assert!(
        m.contains(&("/sys/fs/cgroup/systemd/berth/x".into(), "systemd".into())),
        "{m:?}"
    );
    let links = v1.container_symlinks();
    assert!(
        links.contains(&("cpu".into(), "cpu,cpuacct".into())),
        "{links:?}"
    );
    assert!(
        links.contains(&("net_prio".into(), "net_cls,net_prio".into())),
        "{links:?}"
    );
    let hy = Cgroup::with_own_cgroups(parse_mountinfo(HYBRID).unwrap(), "/berth/x", "");
    assert!(hy
        .container_mounts()
        .contains(&("/sys/fs/cgroup/unified/berth/x".into(), "unified".into())));
    assert!(hy.container_symlinks().is_empty());
    let v2 = Cgroup::with_own_cgroups(parse_mountinfo(V2).unwrap(), "/berth/x", "");
    assert_eq!(
        v2.container_mounts(),
        vec![("/sys/fs/cgroup/berth/x".into(), ".".into())]
    );
}

#[test]
fn shares_to_weight_curve() {
    assert_eq!(v2::shares_to_weight(0), 0, "unset stays unset");
    assert_eq!(v2::shares_to_weight(2), 1);
    assert_eq!(
        v2::shares_to_weight(1024),
        100,
        "defaults map onto each other"
    );
    assert_eq!(v2::shares_to_weight(262_144), 10_000);
    let mut last = 0;
    for s in (2..=262_144).step_by(997) {
        let w = v2::shares_to_weight(s);
        assert!(w >= last && (1..=10_000).contains(&w), "shares {s} → {w}");
        last = w;
    }
}

#[test]
fn blkio_weight_conversion() {
    assert_eq!(v2::blkio_weight_to_io(10), 1);
    assert_eq!(v2::blkio_weight_to_io(1000), 10_000);
    assert_eq!(v2::blkio_weight_to_io(500), 1 + 490 * 9999 / 990);
}

#[test]
fn swap_semantics_v2() {
    // v1 swap is memory+swap; v2 wants swap alone.
    assert_eq!(v2::swap_to_v2(Some(100), Some(300)), Ok(Some("200".into())));
    assert_eq!(
        v2::swap_to_v2(Some(100), Some(100)),
        Ok(Some("0".into())),
        "no swap at all"
    );
    assert_eq!(v2::swap_to_v2(Some(-1), None), Ok(Some("max".into())));
    assert_eq!(v2::swap_to_v2(Some(100), Some(-1)), Ok(Some("max".into())));
    assert_eq!(v2::swap_to_v2(Some(100), None), Ok(None));
    assert!(v2::swap_to_v2(Some(300), Some(100))
        .unwrap_err()
        .contains("below the memory limit"));
    assert!(v2::swap_to_v2(None, Some(100))
        .unwrap_err()
        .contains("needs a memory limit"));
}

#[test]
fn swap_write_order_v1() {
    use v1::MemoryOrder::*;
    // Raising memsw above the current limit must come first…
    assert_eq!(v1::memory_order(100, 500), SwapThenLimit);
    assert_eq!(v1::memory_order(100, -1), SwapThenLimit);
    // …lowering: the limit first, so memsw ≥ limit holds throughout.
    assert_eq!(v1::memory_order(1000, 500), LimitThenSwap);
}

#[test]
fn cpu_max_line() {
    assert_eq!(
        v2::cpu_max(Some(50_000), Some(100_000)).as_deref(),
        Some("50000 100000")
    );
    assert_eq!(v2::cpu_max(Some(-1), None).as_deref(), Some("max"));
    assert_eq!(
        v2::cpu_max(None, Some(20_000)).as_deref(),
        Some("max 20000")
    );
    assert_eq!(v2::cpu_max(None, None), None);
}

#[test]
fn unified_keys_validated() {
    assert_eq!(v2::check_unified_key("memory.high"), Ok("memory"));
    for bad in ["../memory.high", "memory", ".memory", "a/b.c", ""] {
        assert!(v2::check_unified_key(bad).is_err(), "{bad:?}");
    }
}

/// A device rule, briefly.
pub(super) fn rule(
    allow: bool,
    typ: &str,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> crate::spec::DeviceRule {
    crate::spec::DeviceRule {
        allow,
        typ: Some(typ.into()),
        major,
        minor,
        access: Some(access.into()),
    }
}

fn touch(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (f, v) in files {
        fs::write(dir.join(f), v).unwrap();
    }
}

fn read(dir: &Path, f: &str) -> String {
    fs::read_to_string(dir.join(f)).unwrap()
}

#[test]
fn v2_create_enables_controllers_in_ancestors() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    touch(root, &[("cgroup.controllers", "cpu memory pids\n")]);
    // A pre-existing parent, as the kernel shows it: offering only memory.
    touch(&root.join("berth"), &[("cgroup.controllers", "memory\n")]);
    let cg = Cgroup::with_own_cgroups(Layout::V2 { root: root.into() }, "/berth/c1", "");
    assert_eq!(cg.dirs(), vec![root.join("berth/c1")]);
    cg.create().unwrap();
    assert!(root.join("berth/c1").is_dir());
    assert_eq!(read(root, "cgroup.subtree_control"), "+cpu +memory +pids");
    assert_eq!(
        read(&root.join("berth"), "cgroup.subtree_control"),
        "+memory"
    );
    assert!(
        !root.join("berth/c1/cgroup.subtree_control").exists(),
        "the leaf keeps its processes"
    );
    cg.create().unwrap(); // pre-existing is fine
    cg.destroy().unwrap();
    assert!(!root.join("berth/c1").exists());
    assert!(root.join("berth").exists(), "shared parents stay");
    cg.destroy().unwrap(); // idempotent
}

#[test]
fn dirs_records_missing_ancestors_parents_first() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    touch(&root.join("a"), &[]);
    let cg = Cgroup::with_own_cgroups(Layout::V2 { root: root.into() }, "/a/b/c/d", "");
    let recorded = cg.dirs();
    assert_eq!(
        recorded,
        vec![root.join("a/b"), root.join("a/b/c"), root.join("a/b/c/d")]
    );
    assert_eq!(cg.leaves(), vec![root.join("a/b/c/d")]);
    cg.create().unwrap();
    assert_eq!(
        cg.dirs(),
        cg.leaves(),
        "after create only the leaf is new to anyone"
    );
    // What delete does with the record: destroy (the leaf), then rmdir the
    // rest in reverse.
    cg.destroy().unwrap();
    for d in recorded.iter().rev().skip(1) {
        fs::remove_dir(d).unwrap();
    }
    assert!(root.join("a").is_dir() && !root.join("a/b").exists());
}

fn fake_v2(root: &Path) -> (Cgroup, PathBuf) {
    touch(
        root,
        &[("cgroup.controllers", "cpu cpuset memory pids io hugetlb\n")],
    );
    let dir = root.join("berth/c1");
    touch(
        &dir,
        &[
            ("memory.max", ""),
            ("memory.swap.max", ""),
            ("memory.low", ""),
            ("cpu.weight", ""),
            ("cpu.max", ""),
            ("cpu.idle", ""),
            ("cpuset.cpus", ""),
            ("pids.max", ""),
            ("io.weight", ""),
            ("io.max", ""),
            ("hugetlb.2MB.max", ""),
            ("memory.high", ""),
            ("cgroup.controllers", "cpu memory"),
        ],
    );
    (
        Cgroup::with_own_cgroups(Layout::V2 { root: root.into() }, "/berth/c1", ""),
        dir,
    )
}

#[test]
fn v2_apply_converts_oci_values() {
    let t = tempfile::tempdir().unwrap();
    let (cg, dir) = fake_v2(t.path());
    let r = Resources {
        memory: Some(Memory {
            limit: Some(100 << 20),
            swap: Some(300 << 20),
            reservation: Some(50 << 20),
            ..Default::default()
        }),
        cpu: Some(Cpu {
            shares: Some(1024),
            quota: Some(50_000),
            period: Some(100_000),
            cpus: Some("0".into()),
            ..Default::default()
        }),
        pids: Some(Pids { limit: -1 }),
        block_io: Some(
            serde_json::from_value(serde_json::json!({"weight": 1000, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]})).unwrap(),
        ),
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 21,
        }],
        unified: [("memory.high".to_string(), "123456".to_string())].into(),
        ..Default::default()
    };
    cg.apply(&r).unwrap();
    assert_eq!(read(&dir, "memory.max"), (100u64 << 20).to_string());
    assert_eq!(
        read(&dir, "memory.swap.max"),
        (200u64 << 20).to_string(),
        "swap alone"
    );
    assert_eq!(read(&dir, "memory.low"), (50u64 << 20).to_string());
    assert_eq!(read(&dir, "cpu.weight"), "100");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(read(&dir, "pids.max"), "max");
    assert_eq!(read(&dir, "io.weight"), "10000");
    assert_eq!(read(&dir, "io.max"), "8:0 rbps=1048576");
    assert_eq!(read(&dir, "hugetlb.2MB.max"), (4u64 << 21).to_string());
    assert_eq!(read(&dir, "memory.high"), "123456");
}

#[test]
fn v2_refusals_name_the_field() {
    let t = tempfile::tempdir().unwrap();
    let (cg, _) = fake_v2(t.path());
    let err = |r: Resources| cg.apply(&r).unwrap_err().to_string();
    let e = err(Resources {
        unified: [("../x.y".to_string(), "1".to_string())].into(),
        ..Default::default()
    });
    assert!(
        e.starts_with("linux.resources.unified[\"../x.y\"]: "),
        "{e}"
    );
    let e = err(Resources {
        unified: [("rdma.max".to_string(), "1".to_string())].into(),
        ..Default::default()
    });
    assert!(e.contains("the rdma controller is not enabled"), "{e}");
    let e = err(Resources {
        cpu: Some(Cpu {
            realtime_runtime: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(
        e.starts_with("linux.resources.cpu.realtimeRuntime: "),
        "{e}"
    );
    let e = err(Resources {
        hugepage_limits: vec![HugepageLimit {
            page_size: "3MB".into(),
            limit: 1,
        }],
        ..Default::default()
    });
    assert!(
        e.starts_with(
            "linux.resources.hugepageLimits[0].pageSize: \"3MB\" is not a huge page size"
        ),
        "{e}"
    );
    let e = err(Resources {
        network: Some(serde_json::from_value(serde_json::json!({"classID": 7})).unwrap()),
        ..Default::default()
    });
    assert!(
        e.starts_with("linux.resources.network.classID: the net_cls cgroup controller is not"),
        "{e}"
    );
}

/// net_cls,net_prio co-mounted (systemd's layout): the class id and each
/// priority go to the one directory both controllers share, a relative
/// cgroupsPath lands under the caller's cgroup of that hierarchy, and a
/// class id of 0 is not written (runc v1.1.5's net_cls.go).
#[test]
fn v1_network_goes_to_the_comounted_hierarchy() {
    let t = tempfile::tempdir().unwrap();
    let net = t.path().join("net_cls,net_prio");
    let layout = Layout::V1 {
        hierarchies: vec![
            ("net_cls".into(), net.clone()),
            ("net_prio".into(), net.clone()),
        ],
    };
    let r = |class: u32| Resources {
        network: Some(crate::spec::Network {
            class_id: Some(class),
            priorities: vec![
                crate::spec::InterfacePriority {
                    name: "lo".into(),
                    priority: 7,
                },
                crate::spec::InterfacePriority {
                    name: "eth0".into(),
                    priority: 3,
                },
            ],
        }),
        ..Default::default()
    };
    for (path, own, dir) in [
        ("/berth/c1", "", net.join("berth/c1")),
        (
            "rel/c1",
            "4:net_cls,net_prio:/outer\n",
            net.join("outer/rel/c1"),
        ),
    ] {
        let cg = Cgroup::with_own_cgroups(layout.clone(), path, own);
        assert_eq!(cg.leaves(), vec![dir.clone()]);
        touch(
            &dir,
            &[("net_cls.classid", "0"), ("net_prio.ifpriomap", "")],
        );
        cg.apply(&r(0x10_0001)).unwrap();
        assert_eq!(read(&dir, "net_cls.classid"), "1048577");
        // A fake file keeps only the last write; the kernel keeps one line
        // per interface. Each entry is its own write.
        assert_eq!(read(&dir, "net_prio.ifpriomap"), "eth0 3");
        cg.apply(&r(0)).unwrap();
        assert_eq!(read(&dir, "net_cls.classid"), "1048577", "0 is not written");
    }
}

fn fake_v1(root: &Path) -> (Cgroup, PathBuf, PathBuf) {
    let mem = root.join("memory");
    let cpu = root.join("cpu,cpuacct");
    let layout = Layout::V1 {
        hierarchies: vec![
            ("memory".into(), mem.clone()),
            ("cpu".into(), cpu.clone()),
            ("cpuacct".into(), cpu.clone()),
        ],
    };
    let md = mem.join("berth/c1");
    touch(
        &md,
        &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.swappiness", ""),
            ("memory.oom_control", ""),
        ],
    );
    let cd = cpu.join("berth/c1");
    touch(
        &cd,
        &[
            ("cpu.shares", ""),
            ("cpu.cfs_quota_us", ""),
            ("cpu.cfs_period_us", ""),
        ],
    );
    (Cgroup::with_own_cgroups(layout, "/berth/c1", ""), md, cd)
}

#[test]
fn v1_apply_keeps_memsw_semantics() {
    let t = tempfile::tempdir().unwrap();
    let (cg, md, cd) = fake_v1(t.path());
    let r = Resources {
        memory: Some(Memory {
            limit: Some(100 << 20),
            swap: Some(300 << 20),
            swappiness: Some(10),
            disable_oom_killer: Some(true),
            ..Default::default()
        }),
        cpu: Some(Cpu {
            shares: Some(512),
            quota: Some(20_000),
            period: Some(100_000),
            ..Default::default()
        }),
        ..Default::default()
    };
    cg.apply(&r).unwrap();
    assert_eq!(
        read(&md, "memory.limit_in_bytes"),
        (100u64 << 20).to_string()
    );
    assert_eq!(
        read(&md, "memory.memsw.limit_in_bytes"),
        (300u64 << 20).to_string(),
        "v1 takes memory+swap as is"
    );
    assert_eq!(read(&md, "memory.swappiness"), "10");
    assert_eq!(read(&md, "memory.oom_control"), "1");
    assert_eq!(read(&cd, "cpu.shares"), "512");
    assert_eq!(read(&cd, "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&cd, "cpu.cfs_period_us"), "100000");
    // Unlimited memory with swap unset also lifts memory+swap.
    cg.update(&Resources {
        memory: Some(Memory {
            limit: Some(-1),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(read(&md, "memory.memsw.limit_in_bytes"), "-1");
}

#[test]
fn v1_errors_name_field_file_and_errno() {
    let t = tempfile::tempdir().unwrap();
    let (cg, md, _) = fake_v1(t.path());
    // A directory where the file should be: the write fails with EISDIR.
    fs::remove_file(md.join("memory.limit_in_bytes")).unwrap();
    fs::create_dir(md.join("memory.limit_in_bytes")).unwrap();
    let e = cg.apply(&Resources {
        memory: Some(Memory {
            limit: Some(1_048_576),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        e.unwrap_err().to_string(),
        format!(
            "linux.resources.memory.limit: writing 1048576 to {}: Is a directory",
            md.join("memory.limit_in_bytes").display()
        )
    );
    // pids is not mounted in this layout and there is no cgroup2: refused, naming the field…
    let e = cg
        .apply(&Resources {
            pids: Some(Pids { limit: 10 }),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("linux.resources.pids.limit: the pids cgroup controller is not available"),
        "{e}"
    );
    // …but only when asked for.
    cg.apply(&Resources {
        pids: Some(Pids { limit: 0 }),
        ..Default::default()
    })
    .unwrap();
    let e = cg
        .apply(&Resources {
            unified: [("memory.high".into(), "1".into())].into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "linux.resources.unified[\"memory.high\"]: invalid configuration: cannot use unified on cgroup v1"
        ),
        "{e}"
    );
}

/// A file the kernel does not offer is reported as missing, naming field,
/// value and file — never with an errno a host picks for a create attempt.
#[test]
fn missing_cgroup_file_is_named_not_created() {
    let t = tempfile::tempdir().unwrap();
    let (cg, md, _) = fake_v1(t.path());
    fs::remove_file(md.join("memory.swappiness")).unwrap();
    let e = cg
        .apply(&Resources {
            memory: Some(Memory {
                swappiness: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "linux.resources.memory.swappiness: cannot write 10: {} does not exist (this kernel or controller offers no such cgroup file)",
            md.join("memory.swappiness").display()
        )
    );
    assert!(
        !md.join("memory.swappiness").exists(),
        "berth must not create it"
    );
}

/// `unified` on a cgroup v1 / hybrid host, and `network` where net_cls /
/// net_prio are not mounted: refused by `check` (no host change needed,
/// so `create` refuses before its state directory exists).
#[test]
fn check_refuses_what_the_layout_cannot_do() {
    let unified = |k: &str| Resources {
        unified: [(k.to_string(), "1".to_string())].into(),
        ..Default::default()
    };
    let hybrid = Cgroup::with_own_cgroups(parse_mountinfo(HYBRID).unwrap(), "/x", "");
    let e = hybrid
        .check(&unified("memory.min"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "linux.resources.unified[\"memory.min\"]: invalid configuration: cannot use unified on cgroup v1: \
         the memory controller is a cgroup v1 hierarchy on this host (/sys/fs/cgroup/memory)"
    );
    // hugetlb is served by cgroup2 on a hybrid host: its keys are fine.
    hybrid.check(&unified("hugetlb.2MB.max")).unwrap();
    let v1 = Cgroup::with_own_cgroups(parse_mountinfo(V1).unwrap(), "/x", "");
    let e = v1.check(&unified("pids.max")).unwrap_err().to_string();
    assert!(
        e.starts_with("linux.resources.unified[\"pids.max\"]: invalid configuration: cannot use unified on cgroup v1"),
        "{e}"
    );
    let v2 = Cgroup::with_own_cgroups(parse_mountinfo(V2).unwrap(), "/x", "");
    v2.check(&unified("memory.min")).unwrap();

    let net = |class: Option<u32>, prio: bool| Resources {
        network: Some(crate::spec::Network {
            class_id: class,
            priorities: if prio {
                vec![crate::spec::InterfacePriority {
                    name: "eth0".into(),
                    priority: 5,
                }]
            } else {
                vec![]
            },
        }),
        ..Default::default()
    };
    let e = hybrid.check(&net(Some(7), false)).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "linux.resources.network.classID: the net_cls cgroup controller is not mounted"
        ),
        "{e}"
    );
    let e = hybrid.check(&net(None, true)).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "linux.resources.network.priorities: the net_prio cgroup controller is not mounted"
        ),
        "{e}"
    );
    // classID 0 means "not set" (runc writes nothing): no net_cls needed.
    hybrid.check(&net(Some(0), false)).unwrap();
    // The V1 sample mounts net_cls,net_prio.
    v1.check(&net(Some(7), true)).unwrap();
    let e = v2.check(&net(Some(7), false)).unwrap_err().to_string();
    assert!(e.starts_with("linux.resources.network.classID: "), "{e}");
}

/// `exec --cgroup`: runc's syntax, and a sub-cgroup never above the
/// container's.
#[test]
fn exec_sub_cgroups_parse_like_runc() {
    let hybrid = Cgroup::with_own_cgroups(parse_mountinfo(HYBRID).unwrap(), "/x/c1", "");
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let err = |cg: &Cgroup, a: &[&str]| cg.with_sub_cgroups(&args(a)).unwrap_err().to_string();
    assert_eq!(
        err(&hybrid, &[".."]),
        "--cgroup ..: .. is not a sub cgroup path"
    );
    assert_eq!(
        err(&hybrid, &["memory:a/../../b"]),
        "--cgroup memory:a/../../b: a/../../b is not a sub cgroup path"
    );
    assert_eq!(
        err(&hybrid, &["whaaat:/"]),
        "--cgroup whaaat:/: unknown controller whaaat"
    );
    assert!(err(&hybrid, &["a", "b"]).contains("a controller prefix"));
    assert!(err(&hybrid, &["a:b:c"]).contains("invalid --cgroup argument"));
    let v2 = Cgroup::with_own_cgroups(parse_mountinfo(V2).unwrap(), "/x/c1", "");
    assert!(err(&v2, &["memory:sub"])
        .starts_with("--cgroup memory:sub: unknown controller memory (cgroup v2"));

    let cg = hybrid
        .with_sub_cgroups(&args(&["memory:sub/./m", "cpu,cpuacct:/subcpu"]))
        .unwrap();
    let m = |p: &str| PathBuf::from(p);
    assert_eq!(
        cg.join_sub.get(&m("/sys/fs/cgroup/memory")),
        Some(&m("sub/m"))
    );
    assert_eq!(
        cg.join_sub.get(&m("/sys/fs/cgroup/cpu")),
        Some(&m("subcpu"))
    );
    assert_eq!(
        cg.join_sub.get(&m("/sys/fs/cgroup/cpuacct")),
        Some(&m("subcpu"))
    );
    assert_eq!(cg.join_sub.get(&m("/sys/fs/cgroup/unified")), None);
    let cg = hybrid.with_sub_cgroups(&args(&["/"])).unwrap();
    assert!(cg.join_sub.values().all(|p| p == &m("")));
    assert_eq!(cg.join_sub.len(), hybrid.layout.mounts().len());
    // The sub-cgroups are not recorded: they belong to one exec only.
    let json = serde_json::to_value(&cg).unwrap();
    assert!(json.get("join_sub").is_none(), "{json}");
}

/// A fake v1 freezer: a frozen directory — or a frozen ancestor of a
/// directory not made yet — is reported; processes are counted.
#[test]
fn preexisting_reports_frozen_and_processes() {
    let t = tempfile::tempdir().unwrap();
    let fr = t.path().join("freezer");
    let layout = Layout::V1 {
        hierarchies: vec![("freezer".into(), fr.clone())],
    };
    let cg = Cgroup::with_own_cgroups(layout, "/a/b", "");
    assert_eq!(
        cg.preexisting().unwrap(),
        (vec![], None),
        "nothing exists yet"
    );
    touch(&fr.join("a"), &[("freezer.state", "FROZEN\n")]);
    assert_eq!(
        cg.preexisting().unwrap(),
        (vec![], Some(fr.join("a"))),
        "the ancestor b would be made under"
    );
    touch(
        &fr.join("a/b"),
        &[("freezer.state", "THAWED\n"), ("cgroup.procs", "12\n34\n")],
    );
    assert_eq!(cg.preexisting().unwrap(), (vec![12, 34], None));
    touch(&fr.join("a/b"), &[("freezer.state", "FROZEN\n")]);
    assert_eq!(cg.preexisting().unwrap().1, Some(fr.join("a/b")));
}

#[test]
fn v1_cpuset_filled_from_parent() {
    let t = tempfile::tempdir().unwrap();
    let mount = t.path().join("cpuset");
    touch(&mount, &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]);
    // The kernel would create these files empty in each new level.
    for lvl in ["berth", "berth/c1"] {
        touch(
            &mount.join(lvl),
            &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        );
    }
    v1::fill_cpuset(&mount, &mount.join("berth/c1")).unwrap();
    assert_eq!(read(&mount.join("berth"), "cpuset.cpus"), "0-1");
    assert_eq!(read(&mount.join("berth/c1"), "cpuset.mems"), "0");
}

#[test]
fn device_rules_v1_syntax_and_order() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    touch(d, &[("devices.allow", ""), ("devices.deny", "")]);
    let devices = vec![
        rule(false, "a", None, None, "rwm"),
        rule(false, "c", Some(1), Some(5), "w"),
        rule(true, "c", Some(10), Some(229), ""),
        rule(true, "c", None, None, "m"),
        rule(true, "c", Some(136), None, "rwm"),
    ];
    let r = Resources {
        devices,
        ..Default::default()
    };
    assert!(v1::is_catch_all(&r.devices[0]));
    assert!(!v1::is_catch_all(&r.devices[3]));
    assert_eq!(v1::device_rule_line(&r.devices[0]).unwrap(), "a *:* rwm");
    assert_eq!(v1::device_rule_line(&r.devices[1]).unwrap(), "c 1:5 w");
    assert_eq!(
        v1::device_rule_line(&r.devices[2]).unwrap(),
        "c 10:229 rwm",
        "empty access means rwm"
    );
    assert_eq!(v1::device_rule_line(&r.devices[3]).unwrap(), "c *:* m");
    v1::set_devices(d, &r.devices).unwrap();
    // Plain files keep the last write: the last allow is /dev/pts/*.
    assert_eq!(read(d, "devices.allow"), "c 136:* rwm");
    assert_eq!(read(d, "devices.deny"), "c 1:5 w");
    let bad = crate::spec::DeviceRule {
        allow: true,
        typ: Some("x".into()),
        ..Default::default()
    };
    let e = v1::set_devices(d, &[bad]).unwrap_err().to_string();
    assert!(
        e.starts_with("linux.resources.devices[0]: unknown device type"),
        "{e}"
    );
}

/// runc accepts any order of r, w, m, and ignores other letters in a deny
/// rule (runc's update.bats uses `rwa`); berth writes the kernel's order.
#[test]
fn device_access_any_order_and_runc_deny_letters() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    touch(d, &[("devices.allow", ""), ("devices.deny", "")]);
    assert_eq!(
        v1::device_rule_line(&rule(true, "c", Some(1), Some(3), "mwr")).unwrap(),
        "c 1:3 rwm"
    );
    assert_eq!(
        v1::device_rule_line(&rule(true, "b", Some(8), None, "mm")).unwrap(),
        "b 8:* m"
    );
    let rules = vec![
        rule(false, "a", None, None, "rwm"),
        rule(false, "c", Some(1), Some(11), "rwa"),
    ];
    v1::set_devices(d, &rules).unwrap();
    assert_eq!(read(d, "devices.deny"), "c 1:11 rw");
    // A deny naming nothing known denies nothing: not written at all.
    v1::set_devices(d, &[rule(false, "c", Some(1), Some(12), "a")]).unwrap();
    assert_eq!(read(d, "devices.allow"), "a *:* rwm", "reset, then nothing");
    assert_eq!(read(d, "devices.deny"), "c 1:11 rw", "unchanged");
    // The same rules compile to the same eBPF program as their clean form.
    let clean = vec![
        rule(false, "a", None, None, "rwm"),
        rule(false, "c", Some(1), Some(11), "rw"),
    ];
    let a = devices::compile(&rules).unwrap();
    let b = devices::compile(&clean).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    // An allow rule may not carry an unknown letter (the kernel would
    // refuse it on v1; runc's v2 filter refuses it too).
    let e = v1::set_devices(d, &[rule(true, "c", Some(1), Some(3), "rwa")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linux.resources.devices[0]: access \"rwa\": unknown access 'a'"),
        "{e}"
    );
    let e = devices::compile(&[rule(true, "c", Some(1), Some(3), "rx")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linux.resources.devices[0].access: \"rx\": unknown access 'x'"),
        "{e}"
    );
}

#[test]
fn ebpf_program_shape() {
    let deny_all = crate::spec::DeviceRule {
        allow: false,
        typ: Some("a".into()),
        access: Some("rwm".into()),
        ..Default::default()
    };
    // Only a catch-all: the prologue, then "return 0" — nothing unreachable after.
    let p = devices::compile(std::slice::from_ref(&deny_all)).unwrap();
    assert_eq!(p.len(), 8);
    assert_eq!((p[6].code, p[6].imm), (0xb7, 0));
    assert_eq!(p[7].code, 0x95);
    // deny-all then allow c 1:3 rwm: checked last-first, so /dev/null first.
    let null = crate::spec::DeviceRule {
        allow: true,
        typ: Some("c".into()),
        major: Some(1),
        minor: Some(3),
        access: Some("rwm".into()),
    };
    let p = devices::compile(&[deny_all, null]).unwrap();
    // prologue(6) + [jne type, jne major, jne minor, mov 1, exit] + [mov 0, exit]
    assert_eq!(p.len(), 13);
    assert_eq!(
        (p[6].code, p[6].imm, p[6].off),
        (0x55, 2, 4),
        "not a char device → skip the block"
    );
    assert_eq!((p[8].code, p[8].imm, p[8].off), (0x55, 3, 2));
    assert_eq!((p[9].imm, p[11].imm), (1, 0));
}

#[test]
fn stats_parsers() {
    assert_eq!(stats::parse_list("0-2,5\n"), vec![0, 1, 2, 5]);
    let e = stats::parse_blkio_v1("8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n");
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[1].major, e[1].minor, e[1].op.as_str(), e[1].value),
        (8, 0, "Write", 8192)
    );
    let (bytes, ios) =
        stats::parse_io_stat("259:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n");
    assert_eq!(
        bytes
            .iter()
            .map(|b| (b.op.as_str(), b.value))
            .collect::<Vec<_>>(),
        vec![("Read", 100), ("Write", 200)]
    );
    assert_eq!(ios[1].value, 4);
    assert_eq!(ios[0].major, 259);
}

#[test]
fn stats_json_shape() {
    let t = tempfile::tempdir().unwrap();
    let (cg, md, _) = fake_v1(t.path());
    touch(
        &md,
        &[
            ("memory.usage_in_bytes", "4096"),
            ("memory.stat", "cache 10\nrss 20\n"),
        ],
    );
    let v = serde_json::to_value(cg.stats().unwrap()).unwrap();
    assert_eq!(v["memory"]["usage"]["usage"], 4096);
    assert_eq!(v["memory"]["cache"], 10);
    assert_eq!(v["memory"]["raw"]["rss"], 20);
    for k in [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert!(v["memory"].get("kernelTCP").is_some());
}

/// A cgroup file the kernel does not offer is named with the field, the file
/// and what would add it: a Linux release, or a kernel build option.
#[test]
fn missing_cgroup_files_say_what_would_add_them() {
    let dir = tempfile::tempdir().unwrap();
    let e = write_field("linux.resources.cpu.idle", dir.path(), "cpu.idle", "1")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("linux.resources.cpu.idle: cannot write 1: "),
        "{e}"
    );
    assert!(e.contains("cpu.idle needs Linux >= 5.15"), "{e}");
    let e = write_field(
        "linux.resources.cpu.realtimePeriod",
        dir.path(),
        "cpu.rt_period_us",
        "100000",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("needs a kernel built with CONFIG_RT_GROUP_SCHED"),
        "{e}"
    );
    let e = write_field("linux.resources.x", dir.path(), "x.y", "1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("offers no such cgroup file"), "{e}");
}
