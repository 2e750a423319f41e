//! Namespaces: each one really separate, host ones shared when not asked, joining an
//! existing one by path, user namespace id mapping, hostname and domainname.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use berth_integration::{host_ns, Bundle, Container, Runtime};
use serde_json::{json, Value};

/// Prints `kind=<readlink /proc/self/ns/kind>` for each namespace kind.
const PRINT_NS: &str =
    "for n in pid net ipc uts mnt cgroup user; do echo $n=$(readlink /proc/self/ns/$n); done";

fn parse_ns(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn add_namespace(c: &mut Value, ns: Value) {
    c["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
}

#[test]
fn every_requested_namespace_is_new() {
    let bundle = Bundle::busybox()
        .sh(&format!("echo pid1=$$; {PRINT_NS}"))
        .with(|c| add_namespace(c, json!({ "type": "cgroup" })));
    let c = Container::new(&Runtime::new(), bundle, "ns_separate");
    let out = c.run();
    out.assert_code(0);
    let inside = parse_ns(&out.stdout);
    assert_eq!(
        inside["pid1"], "1",
        "the program is pid 1 of its pid namespace: {out}"
    );
    for kind in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let host = host_ns(kind);
        assert!(
            inside[kind].starts_with(&format!("{kind}:[")),
            "{kind}: {out}"
        );
        assert_ne!(inside[kind], host, "{kind} namespace is the host's");
    }
    // No user namespace was asked for.
    assert_eq!(inside["user"], host_ns("user"));
    c.finish();
}

#[test]
fn namespaces_not_asked_for_are_the_hosts() {
    let bundle = Bundle::busybox().sh(PRINT_NS).with(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] == "mount");
        // Without its own network namespace, sysfs cannot be mounted fresh
        // (the kernel refuses), so bind the host's like runc's rootless spec.
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys" {
                *m = json!({ "destination": "/sys", "type": "bind", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] });
            }
        }
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/sys/fs/cgroup");
        c.as_object_mut().unwrap().remove("hostname");
    });
    let c = Container::new(&Runtime::new(), bundle, "ns_shared");
    let out = c.run();
    out.assert_code(0);
    let inside = parse_ns(&out.stdout);
    for kind in ["pid", "net", "ipc", "uts", "cgroup", "user"] {
        assert_eq!(
            inside[kind],
            host_ns(kind),
            "{kind} shared with the host: {out}"
        );
    }
    assert_ne!(inside["mnt"], host_ns("mnt"));
    c.finish();
}

#[test]
fn new_network_namespace_has_only_loopback() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["ls", "/sys/class/net"]),
        "netns_lo",
    );
    let out = c.run();
    out.assert_code(0);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{out}"
    );
    c.finish();
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new(name: &str) -> NetNs {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("running ip");
        assert!(status.success(), "ip netns add {name}");
        NetNs {
            name: name.to_string(),
        }
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn joins_an_existing_network_namespace_by_path() {
    let rt = Runtime::new();
    let netns = NetNs::new(&berth_integration::unique_id("netns"));
    let inode = std::fs::metadata(netns.path()).expect("netns file").ino();
    let path = netns.path();
    let bundle = Bundle::busybox()
        .args(&["readlink", "/proc/self/ns/net"])
        .with(|c| {
            for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
                if ns["type"] == "network" {
                    ns["path"] = path.clone().into();
                }
            }
        });
    let c = Container::new(&rt, bundle, "netns_join");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout.trim(), format!("net:[{inode}]"), "{out}");
    c.finish();
    // The namespace outlives the container: it was joined, not owned.
    assert!(std::path::Path::new(&netns.path()).exists());
}

#[test]
fn hostname_is_set() {
    let bundle = Bundle::busybox()
        .sh("hostname; cat /proc/sys/kernel/hostname")
        .with(|c| {
            c["hostname"] = "box-one".into();
        });
    let c = Container::new(&Runtime::new(), bundle, "hostname");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "box-one\nbox-one\n", "{out}");
    c.finish();
}

#[test]
fn domainname_is_set() {
    // runc 1.1 ignores `domainname` (added in runc 1.2); berth sets it.
    let bundle = Bundle::busybox()
        .args(&["cat", "/proc/sys/kernel/domainname"])
        .with(|c| c["domainname"] = "example.test".into());
    let c = Container::new(&Runtime::new(), bundle, "domainname");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "example.test\n", "{out}");
    c.finish();
}

const USERNS_HOST_ID: u32 = 100_000;

fn userns_bundle() -> Bundle {
    Bundle::busybox().with(|c| {
        add_namespace(c, json!({ "type": "user" }));
        let map = json!([{ "containerID": 0, "hostID": USERNS_HOST_ID, "size": 65536 }]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    })
}

#[test]
fn user_namespace_maps_root_to_the_host_range() {
    let bundle = userns_bundle();
    let data = bundle.make_dir("data", 0o1777);
    let data_str = data.to_string_lossy().into_owned();
    let bundle = bundle
        .sh("id -u > /tmp/id; touch /tmp/made-inside; echo ready; exec sleep 100")
        .with(|c| {
            // An existing destination: uid 0 of the container cannot mkdir in the
            // root-owned shared fixture.
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/tmp", "type": "bind", "source": data_str, "options": ["rbind", "rw"]
            }));
        });
    let c = Container::new(&Runtime::new(), bundle, "userns");
    c.create_and_start();
    c.wait_output("ready");

    assert_eq!(
        std::fs::read_to_string(data.join("id")).unwrap(),
        "0\n",
        "uid 0 inside"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    let want = USERNS_HOST_ID.to_string();
    assert_eq!(
        uids,
        [want.as_str(); 4],
        "host sees the mapped uid: {uid_line}"
    );
    let made = std::fs::metadata(data.join("made-inside")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (USERNS_HOST_ID, USERNS_HOST_ID),
        "file owner on the host"
    );

    // The maps the kernel holds are the config's.
    let uid_map = std::fs::read_to_string(format!("/proc/{}/uid_map", c.pid())).unwrap();
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    assert_eq!(fields, ["0", want.as_str(), "65536"], "uid_map: {uid_map}");
    assert_ne!(
        std::fs::read_link(format!("/proc/{}/ns/user", c.pid()))
            .unwrap()
            .to_string_lossy(),
        host_ns("user")
    );
    c.kill("KILL").assert_ok();
    c.wait_stopped();
    c.finish();
}

/// exec joins a user namespace container whose init has not exec'd yet
/// (`created`: init waits on the exec fifo, non-dumpable until its execve).
/// Stage 1 joins the user namespace first; opening the other namespaces
/// after that was refused (EACCES) — what made runc's userns.bats "userns
/// with inaccessible mount + exec" fail when `run -d` returned just before
/// init's execve. Stage 1 now opens them all before joining any.
#[test]
fn exec_joins_a_user_namespace_container_before_its_init_execs() {
    let bundle = userns_bundle().sh("echo started");
    let c = Container::new(&Runtime::new(), bundle, "userns_exec_created");
    c.create_ok();
    let exec = c.invoke(&["exec", c.id(), "sh", "-c", "id -u; hostname"]);
    exec.assert_ok();
    assert_eq!(exec.stdout, "0\nitest\n", "{exec}");
    c.finish();
}

#[test]
fn user_namespace_root_cannot_act_on_host_files() {
    // A root-owned 0600 file bind-mounted in: uid 0 of the container is not the
    // host's root, so it cannot read it.
    let bundle = userns_bundle();
    let secret_dir = bundle.make_dir("secret", 0o755);
    std::fs::write(secret_dir.join("key"), "host-secret").unwrap();
    std::fs::set_permissions(
        secret_dir.join("key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let source = secret_dir.to_string_lossy().into_owned();
    let bundle = bundle.sh("cat /run/key; echo rc=$?").with(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/run", "type": "bind", "source": source, "options": ["rbind", "ro"]
        }));
    });
    let c = Container::new(&Runtime::new(), bundle, "userns_secret");
    let out = c.run();
    out.assert_code(0);
    assert!(!out.stdout.contains("host-secret"), "{out}");
    assert!(out.stdout.contains("rc=1"), "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
    c.finish();
}

#[test]
fn user_namespace_binds_sources_only_host_root_can_reach() {
    // runc's userns.bats "inaccessible mounts": the sources sit under a 0700
    // directory of host root, which the container's root (host uid 100000)
    // cannot search. The runtime opens them for init (O_PATH fds passed over
    // the sync socket), so both mounts work — a directory and a file.
    let bundle = userns_bundle();
    let locked = bundle.make_dir("locked", 0o700);
    std::fs::create_dir(locked.join("dir")).unwrap();
    std::fs::write(locked.join("dir/foo.txt"), "in-dir\n").unwrap();
    std::fs::write(locked.join("file.txt"), "a-file\n").unwrap();
    let src = |name: &str| locked.join(name).to_string_lossy().into_owned();
    let (dir_src, file_src) = (src("dir"), src("file.txt"));
    let bundle = bundle
        .sh("cat /tmp/m1/foo.txt /tmp/m2; echo ready; exec sleep 100")
        .with(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.push(json!({ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs" }));
            mounts
                .push(json!({ "destination": "/tmp/m1", "source": dir_src, "options": ["bind"] }));
            mounts.push(
                json!({ "destination": "/tmp/m2", "source": file_src, "options": ["bind", "ro"] }),
            );
        });

    // `berth plan` shows the step, on the runtime's side.
    let plan = Runtime::new().run(&["plan", &bundle.path_str(), "--json"]);
    plan.assert_ok();
    let plan: Value = serde_json::from_str(&plan.stdout).expect("plan --json");
    let step = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "open_mount_sources")
        .unwrap_or_else(|| panic!("no open_mount_sources step: {plan}"));
    let sources: Vec<&str> = step["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, [dir_src.as_str(), file_src.as_str()], "{step}");

    let c = Container::new(&Runtime::new(), bundle, "userns_locked_src");
    c.create_and_start();
    let out = c.wait_output("ready");
    assert_eq!(out, "in-dir\na-file\nready\n");
    // No fd the runtime opened reaches the container process.
    for fd in std::fs::read_dir(format!("/proc/{}/fd", c.pid())).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert!(
            !target.starts_with(&locked),
            "the container holds {}",
            target.display()
        );
    }
    // exec sees the same mounts (it joins the mount namespace).
    let exec = c.invoke(&["exec", c.id(), "cat", "/tmp/m1/foo.txt"]);
    exec.assert_ok();
    assert_eq!(exec.stdout, "in-dir\n");
    c.kill("KILL").assert_ok();
    c.wait_stopped();
    c.finish();
}

#[test]
fn pid_namespace_hides_host_processes() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh("ls /proc | grep -c '^[0-9]'"),
        "pidns_procs",
    );
    let out = c.run();
    out.assert_code(0);
    // sh, ls and grep (or fewer, as ash may reuse itself): never the host's hundreds.
    let count: u32 = out.stdout.trim().parse().expect("a count");
    assert!(count <= 3, "{out}");
    c.finish();
}

#[test]
fn ipc_namespace_is_private() {
    // A System V message queue made on the host is not visible inside.
    // SAFETY: msgget with IPC_PRIVATE creates a new queue; no memory is shared.
    let qid = unsafe { libc::msgget(libc::IPC_PRIVATE, 0o600 | libc::IPC_CREAT) };
    assert!(qid >= 0, "msgget: {}", std::io::Error::last_os_error());
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().args(&["cat", "/proc/sysvipc/msg"]),
        "ipcns",
    );
    let out = c.run();
    // SAFETY: removing the queue we created above.
    unsafe { libc::msgctl(qid, libc::IPC_RMID, std::ptr::null_mut()) };
    out.assert_code(0);
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the header line inside: {out}"
    );
    c.finish();
}

#[test]
fn uts_namespace_keeps_the_host_hostname() {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let bundle = Bundle::busybox()
        .args(&["hostname"])
        .with(|c| c["hostname"] = "inside-only".into());
    let c = Container::new(&Runtime::new(), bundle, "uts_host");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "inside-only\n");
    c.finish();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
}

/// Namespaced sysctls are written inside the container's own namespaces: the
/// container sees its values, the host keeps its own.
#[test]
fn namespaced_sysctls_apply_inside_only() {
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    let (keepalive, shmmni) = (
        read("/proc/sys/net/ipv4/tcp_keepalive_time"),
        read("/proc/sys/kernel/shmmni"),
    );
    let want_keepalive = if keepalive.trim() == "7301" {
        "7302"
    } else {
        "7301"
    };
    let want_shmmni = if shmmni.trim() == "1001" {
        "1002"
    } else {
        "1001"
    };
    let bundle = Bundle::busybox()
        .sh("cat /proc/sys/net/ipv4/tcp_keepalive_time /proc/sys/kernel/shmmni")
        .with(|c| {
            c["linux"]["sysctl"] = json!({
                "net.ipv4.tcp_keepalive_time": want_keepalive,
                "kernel/shmmni": want_shmmni,
            })
        });
    let c = Container::new(&Runtime::new(), bundle, "sysctl_inside");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        format!("{want_keepalive}\n{want_shmmni}\n"),
        "{out}"
    );
    assert_eq!(read("/proc/sys/net/ipv4/tcp_keepalive_time"), keepalive);
    assert_eq!(read("/proc/sys/kernel/shmmni"), shmmni);
    c.finish();
}

/// Mount points on the host (this test's mount namespace) under `dir`.
fn host_mounts_under(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| std::path::Path::new(m).starts_with(dir))
        })
        .map(str::to_string)
        .collect()
}

/// No namespace at all (runtime-tools linux_ns_itype): the program still
/// runs in the rootfs (chroot), shares every host namespace, and the
/// config's mounts are skipped with a warning instead of landing on the host.
#[test]
fn without_any_namespace_runs_chrooted_in_the_rootfs() {
    let bundle = Bundle::busybox_copy();
    std::fs::write(bundle.rootfs().join("berth-marker"), "in-the-rootfs\n").unwrap();
    // A path that exists on the host only: the bundle's own config.json.
    let host_only = bundle.path().join("config.json");
    assert!(host_only.exists());
    let bundle = bundle
        .sh(&format!(
            "cat /berth-marker; test -e {} && echo host-visible; pwd",
            host_only.display()
        ))
        .with(|c| {
            c["linux"]["namespaces"] = json!([]);
            c.as_object_mut().unwrap().remove("hostname");
        });
    let rootfs = bundle.rootfs();
    let c = Container::new(&Runtime::new(), bundle, "no_ns_chroot");
    let created = c.create();
    created.assert_ok();
    let warned = c.log_lines().iter().any(|l| {
        l["level"] == "warning"
            && l["msg"].as_str().is_some_and(|m| {
                m.starts_with("mounts[0] (/proc): not mounted") && m.contains("linux.namespaces")
            })
    });
    assert!(
        warned,
        "a warning names the skipped mount: {:?}",
        c.log_lines()
    );
    let pid = c.pid();
    for kind in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
        let inside = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
        assert_eq!(inside.to_string_lossy(), host_ns(kind), "{kind}");
    }
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        std::fs::canonicalize(&rootfs).unwrap(),
        "init is chrooted into the rootfs"
    );
    assert_eq!(host_mounts_under(&rootfs), Vec::<String>::new());
    c.start().assert_ok();
    c.wait_stopped();
    assert_eq!(c.state()["status"], "stopped");
    let (out, _) = c.output();
    assert_eq!(out, "in-the-rootfs\n/\n");
    assert_eq!(host_mounts_under(&rootfs), Vec::<String>::new());
    c.finish();
}
