//! The container's filesystem: read-only rootfs, masked and read-only paths, mounts
//! (bind options, tmpfs), devices, `--no-pivot`, and mount destinations that try to
//! escape the rootfs through symlinks.

use std::os::unix::fs::symlink;
use std::path::Path;

use berth_integration::{Bundle, Container, Runtime};
use serde_json::json;

fn push_mount(c: &mut serde_json::Value, mount: serde_json::Value) {
    c["mounts"].as_array_mut().unwrap().push(mount);
}

#[test]
fn readonly_rootfs_refuses_writes_with_erofs() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh("touch /new-file; echo rc=$?"),
        "ro_rootfs",
    );
    let out = c.run();
    out.assert_code(0);
    assert!(out.stdout.contains("rc=1"), "{out}");
    assert!(out.stderr.contains("Read-only file system"), "EROFS: {out}");
    assert!(!berth_integration::busybox_rootfs()
        .join("new-file")
        .exists());
    c.finish();
}

#[test]
fn writable_rootfs_copy_takes_writes() {
    let bundle = Bundle::busybox_copy().sh("echo written > /new-file; cat /new-file");
    let rootfs = bundle.rootfs();
    let c = Container::new(&Runtime::new(), bundle, "rw_rootfs");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "written\n", "{out}");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("new-file")).unwrap(),
        "written\n"
    );
    c.finish();
}

#[test]
fn masked_paths_read_as_empty() {
    // Masked files are /dev/null bind mounts, masked dirs empty read-only tmpfs, as
    // in runc. Only paths that exist on this kernel are checked.
    let files: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    let dirs: Vec<&str> = ["/proc/acpi", "/sys/firmware", "/proc/scsi"]
        .into_iter()
        .filter(|p| Path::new(p).is_dir())
        .collect();
    assert!(
        !files.is_empty(),
        "this kernel has some of the masked files"
    );
    let mut script = String::new();
    for f in &files {
        script.push_str(&format!("echo {f}=$(wc -c < {f}); "));
    }
    for d in &dirs {
        script.push_str(&format!("echo {d}=$(ls -A {d} | wc -l); "));
    }
    script.push_str("true");
    let c = Container::new(&Runtime::new(), Bundle::busybox().sh(&script), "masked");
    let out = c.run();
    out.assert_code(0);
    for path in files.iter().chain(&dirs) {
        assert!(
            out.stdout.contains(&format!("{path}=0\n")),
            "{path} is empty inside: {out}"
        );
    }
    c.finish();
}

#[test]
fn readonly_paths_refuse_writes_with_erofs() {
    // uts namespace: the hostname is the container's own, so only the read-only
    // mount (not a permission check) can refuse the write.
    let script = "echo name > /proc/sys/kernel/hostname; echo rc=$?; \
                  grep ' /proc/sys ' /proc/self/mountinfo";
    let c = Container::new(&Runtime::new(), Bundle::busybox().sh(script), "ro_paths");
    let out = c.run();
    out.assert_code(0);
    assert!(out.stdout.contains("rc=1"), "{out}");
    assert!(out.stderr.contains("Read-only file system"), "EROFS: {out}");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(" /proc/sys "))
        .expect("a /proc/sys mount");
    let options = line.split(' ').nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "ro"), "mounted ro: {line}");
    c.finish();
}

#[test]
fn bind_mount_read_only_and_read_write() {
    let bundle = Bundle::busybox();
    let ro = bundle.make_dir("ro-src", 0o755);
    let rw = bundle.make_dir("rw-src", 0o755);
    std::fs::write(ro.join("hello"), "from-host\n").unwrap();
    let (ro_s, rw_s) = (
        ro.to_string_lossy().into_owned(),
        rw.to_string_lossy().into_owned(),
    );
    let bundle = bundle
        .sh("cat /run/ro/hello; touch /run/ro/x; echo ro=$?; echo inside > /run/rw/y; echo rw=$?")
        .with(|c| {
            // The read-only rootfs has no /run/ro or /run/rw to mount on: a tmpfs
            // on /run first gives the runtime somewhere to create them.
            c["mounts"].as_array_mut().unwrap().extend([
                json!({ "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"] }),
                json!({ "destination": "/run/ro", "type": "bind", "source": ro_s, "options": ["bind", "ro"] }),
                json!({ "destination": "/run/rw", "type": "bind", "source": rw_s, "options": ["rbind", "rw"] }),
            ]);
        });
    let c = Container::new(&Runtime::new(), bundle, "bind_ro_rw");
    let out = c.run();
    out.assert_code(0);
    assert!(out.stdout.contains("from-host"), "{out}");
    assert!(out.stdout.contains("ro=1"), "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    assert!(out.stdout.contains("rw=0"), "{out}");
    assert!(!ro.join("x").exists());
    assert_eq!(std::fs::read_to_string(rw.join("y")).unwrap(), "inside\n");
    c.finish();
}

#[test]
fn noexec_bind_refuses_exec() {
    let bundle = Bundle::busybox();
    let bin = bundle.make_dir("bin-src", 0o755);
    std::fs::copy(
        berth_integration::busybox_rootfs().join("bin/busybox"),
        bin.join("busybox"),
    )
    .unwrap();
    let source = bin.to_string_lossy().into_owned();
    let bundle = bundle
        .sh("/run/busybox true; echo noexec=$?; /bin/busybox true; echo exec=$?")
        .with(|c| {
            push_mount(
                c,
                json!({ "destination": "/run", "type": "bind", "source": source,
                                  "options": ["rbind", "ro", "noexec", "nosuid", "nodev"] }),
            );
        });
    let c = Container::new(&Runtime::new(), bundle, "noexec");
    let out = c.run();
    out.assert_code(0);
    assert!(out.stdout.contains("noexec=126"), "{out}");
    assert!(out.stdout.contains("exec=0"), "{out}");
    c.finish();
}

#[test]
fn tmpfs_mount_options_apply() {
    let bundle = Bundle::busybox()
        .sh("grep ' /run ' /proc/self/mountinfo")
        .with(|c| {
            push_mount(c, json!({ "destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["nosuid", "nodev", "noexec", "mode=1770", "size=1m"] }));
        });
    let c = Container::new(&Runtime::new(), bundle, "tmpfs_opts");
    let out = c.run();
    out.assert_code(0);
    // (runc then chmods the mount point back to the directory's old mode, so
    // the mode is checked in the mount's options, not with stat.)
    let line = out.stdout.lines().next().expect("the /run mount line");
    let options = line.split(' ').nth(5).unwrap();
    for flag in ["nosuid", "nodev", "noexec"] {
        assert!(options.split(',').any(|o| o == flag), "{flag} in {line}");
    }
    assert!(line.contains("size=1024k"), "size=1m: {line}");
    assert!(line.contains("mode=1770"), "mode=1770: {line}");
    c.finish();
}

#[test]
fn default_devices_and_links() {
    let script = "for d in null zero full random urandom tty; do \
                    [ -c /dev/$d ] && echo $d=char; done; \
                  echo x > /dev/null && echo null-writable; \
                  head -c 4 /dev/zero | wc -c; \
                  for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done";
    let c = Container::new(&Runtime::new(), Bundle::busybox().sh(script), "devices");
    let out = c.run();
    out.assert_code(0);
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        assert!(
            out.stdout.contains(&format!("{d}=char\n")),
            "/dev/{d}: {out}"
        );
    }
    assert!(out.stdout.contains("null-writable\n4\n"), "{out}");
    for link in [
        "/proc/self/fd\n",
        "/proc/self/fd/0\n",
        "/proc/self/fd/1\n",
        "/proc/self/fd/2\n",
        "pts/ptmx",
    ] {
        assert!(out.stdout.contains(link), "{link:?}: {out}");
    }
    c.finish();
}

#[test]
fn linux_devices_are_created() {
    let bundle = Bundle::busybox()
        .sh("stat -c '%F %t:%T %a' /dev/mynull; echo hi > /dev/mynull && echo usable")
        .with(|c| {
            c["linux"]["devices"] = json!([{ "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666 }]);
            c["linux"]["resources"]["devices"]
                .as_array_mut()
                .unwrap()
                .push(json!({ "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }));
        });
    let c = Container::new(&Runtime::new(), bundle, "linux_devices");
    let out = c.run();
    out.assert_code(0);
    assert!(
        out.stdout.starts_with("character special file 1:3 666\n"),
        "{out}"
    );
    assert!(out.stdout.contains("usable"), "{out}");
    c.finish();
}

#[test]
fn no_pivot_leaves_no_full_proc_outside_the_rootfs() {
    // runc's no_pivot.bats: under --no-pivot the host's /proc stays in the
    // container's mount namespace (chroot, not pivot_root). While a fully
    // visible procfs is there, a user namespace made inside may mount a fresh,
    // unmasked procfs. berth detaches those mounts before the chroot, so the
    // mount is refused. (No seccomp here: runc spec's config has none.)
    let bundle = Bundle::busybox()
        .sh("unshare -mrpf sh -c 'echo INSIDE; mount -t proc none /proc && echo MOUNTED'; echo rc=$?")
        .with(|c| {
            for set in ["bounding", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push("CAP_SETFCAP".into());
            }
        });
    let c = Container::new(&Runtime::new(), bundle, "no_pivot_proc");
    let out = c.run_with(&["--no-pivot"]);
    out.assert_code(0);
    // The user namespace itself is allowed: only the procfs mount is refused.
    assert!(out.stdout.contains("INSIDE\n"), "{out}");
    assert!(!out.stdout.contains("MOUNTED"), "{out}");
    assert!(!out.stdout.contains("rc=0"), "{out}");
    c.finish();
}

#[test]
fn no_pivot_runs() {
    let c = Container::new(
        &Runtime::new(),
        Bundle::busybox().sh("ls /; cat /etc/hostname"),
        "no_pivot",
    );
    let out = c.run_with(&["--no-pivot"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("berth\n"),
        "the fixture's /etc/hostname: {out}"
    );
    assert!(
        !out.stdout.contains("work\n"),
        "the host's / is not visible: {out}"
    );
    c.finish();
}

/// A host directory that a malicious rootfs tries to mount over; removed on drop.
struct HostMarker {
    dir: std::path::PathBuf,
}

impl HostMarker {
    fn new(tag: &str) -> HostMarker {
        let dir = Path::new("/tmp").join(berth_integration::unique_id(tag));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("host-file"), "host").unwrap();
        HostMarker { dir }
    }

    /// Panics if anything but the original file is there, or if it became a mount.
    fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["host-file"],
            "host dir {} was written",
            self.dir.display()
        );
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(&*self.dir.to_string_lossy()),
            "a mount landed on the host at {}",
            self.dir.display()
        );
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn escape_test(tag: &str, link_target: impl Fn(&Path) -> String, mount_type: &str) {
    let marker = HostMarker::new(tag);
    let bundle = Bundle::busybox_copy();
    // A symlink planted in the image, pointing (if resolved on the host) at the
    // marker dir.
    symlink(link_target(&marker.dir), bundle.rootfs().join("escape")).unwrap();
    let source_dir = bundle.make_dir("bind-src", 0o755);
    let source = source_dir.to_string_lossy().into_owned();
    let mount = if mount_type == "bind" {
        json!({ "destination": "/escape", "type": "bind", "source": source, "options": ["rbind", "rw"] })
    } else {
        json!({ "destination": "/escape", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] })
    };
    let inside_dir = marker.dir.to_string_lossy().into_owned();
    let bundle = bundle
        .sh(&format!(
            "echo pwned > /escape/pwned; grep -c ' {inside_dir} ' /proc/self/mountinfo"
        ))
        .with(|c| push_mount(c, mount));
    let rootfs = bundle.rootfs();
    let c = Container::new(&Runtime::new(), bundle, tag);
    let out = c.run();
    marker.assert_untouched();
    // Either the runtime refused the mount, or it resolved the symlink inside the
    // rootfs: the mount is at <rootfs>/tmp/<marker> as the container sees it.
    if out.success() {
        assert_eq!(
            out.stdout.trim(),
            "1",
            "the mount is at {inside_dir} inside: {out}"
        );
        assert!(
            rootfs.join(inside_dir.trim_start_matches('/')).is_dir(),
            "created inside the rootfs"
        );
        if mount_type == "bind" {
            assert_eq!(
                std::fs::read_to_string(source_dir.join("pwned")).unwrap(),
                "pwned\n"
            );
        }
    } else {
        assert!(out.code().is_some_and(|c| c != 0), "{out}");
    }
    c.finish();
    marker.assert_untouched();
}

#[test]
fn mount_through_dotdot_symlink_stays_inside_the_rootfs() {
    escape_test(
        "escape_dotdot",
        |dir| format!("/../../../../../..{}", dir.display()),
        "tmpfs",
    );
}

#[test]
fn mount_through_absolute_symlink_stays_inside_the_rootfs() {
    escape_test("escape_abs", |dir| dir.display().to_string(), "bind");
}

#[test]
fn mount_through_relative_symlink_stays_inside_the_rootfs() {
    escape_test(
        "escape_rel",
        |dir| format!("../../../../../../../..{}", dir.display()),
        "bind",
    );
}

#[test]
fn cwd_through_a_leaked_fd_is_refused() {
    // CVE-2024-21626: a cwd of /proc/self/fd/N reached a host directory through an
    // fd the runtime leaked into init. With no leak, no such fd exists.
    let rt = Runtime::new();
    for fd in 3..=8 {
        let bundle = Bundle::busybox()
            .args(&["pwd"])
            .with(|c| c["process"]["cwd"] = format!("/proc/self/fd/{fd}").into());
        let c = Container::new(&rt, bundle, "cwd_fd");
        let out = c.run();
        // runc refuses (no such fd). If a runtime still had an fd of its own open
        // when it chdir'd, the cwd must at least be inside the container: a host
        // directory shows as "(unreachable)/…" from inside.
        if out.success() {
            assert!(
                out.stdout.starts_with('/') && !out.stdout.contains("unreachable"),
                "cwd /proc/self/fd/{fd} reached outside the container: {out}"
            );
        }
        c.finish();
    }
}

/// proc and sysfs are never mounted through a symlink planted in the image
/// (mask.bats "prohibit symlink /proc", "/sys"): create fails naming the rule,
/// nothing is created at the link's target, nothing is left behind.
#[test]
fn proc_and_sys_through_a_symlink_are_refused() {
    for dir in ["proc", "sys"] {
        let bundle = Bundle::busybox_copy();
        let rootfs = bundle.rootfs();
        std::fs::remove_dir_all(rootfs.join(dir)).unwrap();
        symlink("/elsewhere", rootfs.join(dir)).unwrap();
        let c = Container::new(&Runtime::new(), bundle, &format!("symlink_{dir}"));
        c.create()
            .assert_fails_mentioning(&["must be mounted on ordinary directory", dir]);
        assert!(
            !rootfs.join("elsewhere").exists(),
            "{dir}: something was made at the symlink's target"
        );
        c.assert_no_leftovers();
    }
}

/// A `ro` /dev is still filled (devices, links, /dev/pts) and ends up read-only
/// (mounts.bats "ro /dev mount").
#[test]
fn read_only_dev_is_filled_then_read_only() {
    let bundle = Bundle::busybox()
        .sh(
            "grep '^tmpfs /dev ' /proc/mounts; ls /dev/null /dev/pts/ptmx; \
             touch /dev/x; echo touch=$?",
        )
        .with(|c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["destination"] == "/dev" {
                    m["options"].as_array_mut().unwrap().push("ro".into());
                }
            }
        });
    let c = Container::new(&Runtime::new(), bundle, "ro_dev");
    let out = c.run();
    out.assert_code(0);
    let line = out.stdout.lines().next().unwrap_or_default();
    let options = line.split(' ').nth(3).unwrap_or_default();
    assert!(options.split(',').any(|o| o == "ro"), "/dev is ro: {out}");
    assert!(out.stdout.contains("/dev/null\n/dev/pts/ptmx\n"), "{out}");
    assert!(out.stdout.contains("touch=1"), "{out}");
    c.finish();
}

/// A `p` entry in linux.devices is a FIFO (runtime-tools linux_devices); it is
/// no device to the cgroup, so the device rules do not refuse it.
#[test]
fn fifo_device_is_made() {
    let bundle = Bundle::busybox()
        .sh("test -p /dev/berth-fifo && stat -c %a /dev/berth-fifo")
        .with(|c| {
            c["linux"]["devices"] = json!([
                {"path": "/dev/berth-fifo", "type": "p", "major": 0, "minor": 0, "fileMode": 0o640}
            ]);
        });
    let c = Container::new(&Runtime::new(), bundle, "fifo_dev");
    let out = c.run();
    out.assert_code(0);
    assert_eq!(out.stdout, "640\n", "{out}");
    c.finish();
}

/// rootfsPropagation applies to the container's own `/` after pivot_root
/// (runtime-tools linux_rootfs_propagation): "unbindable" used to make the rootfs
/// bind itself fail, "shared" pivot_root.
#[test]
fn root_propagation_is_set_on_the_new_root() {
    for (prop, tag) in [("unbindable", "unbindable"), ("shared", "shared:")] {
        let bundle = Bundle::busybox()
            .sh("awk '$5 == \"/\"' /proc/self/mountinfo")
            .with(|c| c["linux"]["rootfsPropagation"] = prop.into());
        let c = Container::new(&Runtime::new(), bundle, &format!("prop_{prop}"));
        let out = c.run();
        out.assert_code(0);
        assert!(out.stdout.contains(tag), "{prop}: {out}");
        c.finish();
    }
}
