//! berth-worker's volume ownership: idmapped mounts vs uid-shifted copies (BERTH_WORKER_IDMAP),
//! outputs chained into the next task, caches crossing between privileged and unprivileged
//! runs, the shifted image copies and how the worker reports which mode it uses.

mod worker_common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use worker_common::*;

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

/// Issue 12: task A (unprivileged) writes an output; task B (unprivileged) gets it as an input
/// and writes into it. B must see A's files as its own root's, not as `nobody`.
#[test]
fn chained_unprivileged_tasks_can_write_the_previous_output() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let a = env.write(
            "a.yml",
            "platform: linux\noutputs: [{name: version}]\nrun: {path: sh, args: [-c, 'echo 1 > version/number; mkdir version/sub; echo x > version/sub/f; chmod 700 version/sub']}\n",
        );
        let v1 = env.path("v1");
        let o = env.run(
            &a,
            &busybox(),
            &["-o", &format!("version={}", v1.display())],
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        // Host space: the task's root is uid 0 here, like a privileged task's output.
        assert_eq!(owner(&v1.join("number")), (0, 0), "{mode}");
        assert_eq!(owner(&v1.join("sub/f")), (0, 0), "{mode}");
        assert_eq!(
            std::fs::metadata(v1.join("sub")).unwrap().mode() & 0o777,
            0o700
        );

        let b = env.write(
            "b.yml",
            "platform: linux\ninputs: [{name: version}]\noutputs: [{name: version}]\nrun: {path: sh, args: [-c, 'ls -ln version | grep number; n=$(cat version/number); echo $((n+1)) > version/number && echo y >> version/sub/f && cat version/number']}\n",
        );
        let v2 = env.path("v2");
        let o = env.run(
            &b,
            &busybox(),
            &[
                "-i",
                &format!("version={}", v1.display()),
                "-o",
                &format!("version={}", v2.display()),
            ],
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        let s = stdout(&o);
        // Inside B the file belongs to its root (uid 0), not to the overflow id.
        let cols: Vec<&str> = s.lines().next().unwrap().split_whitespace().collect();
        assert_eq!((cols[2], cols[3]), ("0", "0"), "{mode}: {s}");
        assert!(s.ends_with("2\n"), "{mode}: {s}");
        assert_eq!(
            std::fs::read_to_string(v2.join("number")).unwrap(),
            "2\n",
            "{mode}"
        );
        assert_eq!(std::fs::read_to_string(v2.join("sub/f")).unwrap(), "x\ny\n");
        assert_eq!(owner(&v2.join("number")), (0, 0), "{mode}");
        // The input directory is never written.
        assert_eq!(std::fs::read_to_string(v1.join("number")).unwrap(), "1\n");

        // And a privileged task reads and writes the same artifact as its root.
        let o = env.run(
            &b,
            &busybox(),
            &[
                "--privileged",
                "-i",
                &format!("version={}", v2.display()),
                "-o",
                &format!("version={}", env.path("v3").display()),
            ],
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert_eq!(
            std::fs::read_to_string(env.path("v3/number")).unwrap(),
            "3\n"
        );
        env.assert_clean(&[]);
    }
}

/// A task user other than root keeps its id on the way out and in (only root moves).
#[test]
fn non_root_files_keep_their_ids_across_tasks() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let a = env.write(
            "a.yml",
            "platform: linux\noutputs: [{name: out}]\nrun: {path: sh, args: [-c, 'echo n > out/by-nobody'], user: nobody}\n",
        );
        let out = env.path("out");
        let o = env.run(&a, &busybox(), &["-o", &format!("out={}", out.display())]);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert_eq!(owner(&out.join("by-nobody")), (65534, 65534), "{mode}");
        let b = env.write(
            "b.yml",
            "platform: linux\ninputs: [{name: out}]\nrun: {path: sh, args: [-c, 'echo more >> out/by-nobody && stat -c %u:%g out/by-nobody'], user: nobody}\n",
        );
        let o = env.run(&b, &busybox(), &["-i", &format!("out={}", out.display())]);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert_eq!(stdout(&o), "65534:65534\n", "{mode}");
    }
}

/// A --privileged run leaves root-owned files in a cache; the next unprivileged run must be
/// able to write them, and the next privileged run again.
#[test]
fn caches_cross_between_privileged_and_unprivileged_runs() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let task = env.write(
            "task.yml",
            "platform: linux\ncaches: [{path: c}]\nrun: {path: sh, args: [-c, 'mkdir -p c/d && chmod 700 c/d && echo x >> c/d/log && touch c/new-$$ && wc -l < c/d/log']}\n",
        );
        let cache_files = || -> Vec<std::path::PathBuf> {
            let caches = env.work_dir().join("caches");
            let dir = std::fs::read_dir(&caches)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.is_dir())
                .unwrap()
                // The committed generation (see docs/worker.md, *Caches*).
                .join("current");
            vec![dir.join("d"), dir.join("d/log")]
        };
        let steps: [(&[&str], &str, u32); 4] = [
            (&["--privileged"], "1", 0),
            (&[], "2", host_max()),
            (&["--privileged"], "3", 0),
            (&["--verbose"], "4", host_max()),
        ];
        for (args, want, root_on_disk) in steps {
            let o = env.run(&task, &busybox(), args);
            assert!(o.status.success(), "{mode} {args:?}: {}", text(&o));
            assert_eq!(stdout(&o).trim(), want, "{mode} {args:?}");
            for f in cache_files() {
                assert_eq!(
                    owner(&f),
                    (root_on_disk, root_on_disk),
                    "{mode} {args:?}: {}",
                    f.display()
                );
            }
            if args == ["--verbose"] {
                assert!(
                    stderr(&o).contains("cache c: converted from host to ns-"),
                    "{mode}: {}",
                    text(&o)
                );
            }
        }
        env.assert_clean(&[]);
    }
}

#[test]
fn explain_and_run_header_say_which_mode() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\ninputs: [{name: src}]\noutputs: [{name: out}]\ncaches: [{path: c}]\nrun: {path: 'true'}\n",
    );
    let explain = |idmap: &str, extra: &[&str]| {
        let o = env
            .cmd()
            .env("BERTH_WORKER_IDMAP", idmap)
            .args(["check", "--explain"])
            .arg(&task)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o)
    };
    let off = explain("off", &[]);
    assert!(
        off.contains("ids: shifted copies (idmapped mounts turned off"),
        "{off}"
    );
    assert!(off.contains("input src: /tmp/build/"), "{off}");
    assert!(off.contains("shifted copy of -i DIR"), "{off}");
    // This host's kernel (>= 5.19) has idmapped overlay layers: auto picks them. On an older
    // kernel auto says why it falls back instead.
    let auto = explain("auto", &[]);
    let idmapped = auto.contains("ids: idmapped mounts\n");
    assert!(
        idmapped || auto.contains("ids: shifted copies (idmapped overlay layers unavailable: "),
        "{auto}"
    );
    let priv_ = explain("auto", &["--privileged"]);
    assert!(priv_.contains("ids: host space everywhere"), "{priv_}");
    // --idmap on where the feature is missing is an error naming the setting; here it works.
    let on = env
        .cmd()
        .env("BERTH_WORKER_IDMAP", "on")
        .args(["check", "--explain"])
        .arg(&task)
        .output()
        .unwrap();
    assert_eq!(on.status.success(), idmapped, "{}", text(&on));
    if !idmapped {
        assert!(stderr(&on).contains("--idmap on"), "{}", text(&on));
    }
    // A bad value names the flag.
    let bad = env
        .cmd()
        .args(["--idmap", "sometimes", "check"])
        .arg(&task)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(stderr(&bad).contains("--idmap"), "{}", text(&bad));

    // The run header (-v, or a terminal) says the same.
    env.write("src/f", "x");
    let quick = env.write("quick.yml", "platform: linux\nrun: {path: 'true'}\n");
    for (mode, want) in [
        ("off", "ids: shifted copies (idmapped mounts turned off"),
        (
            "auto",
            if idmapped {
                "ids: idmapped mounts"
            } else {
                "ids: shifted copies"
            },
        ),
    ] {
        let o = env
            .cmd()
            .env("BERTH_WORKER_IDMAP", mode)
            .args(["run", "--verbose", "--image"])
            .arg(busybox())
            .arg(&quick)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        assert!(stderr(&o).contains(want), "{mode}: {}", text(&o));
        assert!(
            stderr(&o).contains("unprivileged (user namespace, task root = host uid"),
            "{}",
            text(&o)
        );
    }
    // Without -v and without a terminal: no header (the task's output stays the task's).
    let o = env.run(&quick, &busybox(), &[]);
    assert_eq!(stderr(&o), "", "{}", text(&o));
    env.assert_clean(&[]);
}

/// The shifted copy of a rootfs directory is made once, replaced when the directory changes,
/// and keeps set-id bits, file capabilities, hard links and special files.
#[test]
fn shifted_copy_of_a_directory_image_is_cached_and_faithful() {
    let env = Env::with_idmap("off");
    let img = env.path("img");
    sh(
        r#"cp -a "$1"/. "$2"/; chmod 4755 "$2/bin/busybox"; mkdir -p "$2/opt"; echo data > "$2/opt/a"; ln "$2/opt/a" "$2/opt/b"; mkfifo "$2/opt/fifo"; chown 1000:50 "$2/opt/a"
           if command -v setcap >/dev/null; then cp "$2/bin/busybox" "$2/opt/capped"; setcap cap_net_raw+ep "$2/opt/capped"; fi"#,
        &[&busybox(), &img],
    );
    let has_setcap = img.join("opt/capped").exists();
    let task = env.write(
        "task.yml",
        "platform: linux\nrun: {path: sh, args: [-c, 'stat -c \"%a %u:%g %h %F\" /bin/busybox /opt/a /opt/b /opt/fifo; cat /opt/a']}\n",
    );
    let o = env.run(&task, &img, &["--verbose"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stderr(&o).contains("image: made its shifted copy"),
        "{}",
        text(&o)
    );
    assert_eq!(
        stdout(&o),
        "4755 0:0 1 regular file\n644 1000:50 2 regular file\n644 1000:50 2 regular file\n644 0:0 1 fifo\ndata\n",
        "{}",
        text(&o)
    );
    // On disk the copy belongs to the namespaced ids; the source is untouched.
    let shifted: Vec<_> = std::fs::read_dir(env.work_dir().join("shifted"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(shifted.len(), 1, "{shifted:?}");
    assert_eq!(
        owner(&shifted[0].join("bin/busybox")),
        (host_max(), host_max())
    );
    assert_eq!(owner(&img.join("bin/busybox")), (0, 0));
    if has_setcap {
        let caps = std::process::Command::new("getcap")
            .arg(shifted[0].join("opt/capped"))
            .output()
            .unwrap();
        assert!(
            stdout(&caps).contains("cap_net_raw"),
            "file capability kept: {}",
            text(&caps)
        );
        // ...and effective: nobody running it gets CAP_NET_RAW (bit 13).
        let t = env.write("caps.yml", "platform: linux\nrun: {path: sh, args: [-c, 'ln -s /opt/capped /tmp/grep; /tmp/grep CapEff /proc/self/status'], user: nobody}\n");
        let o = env.run(&t, &img, &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(stdout(&o), "CapEff:\t0000000000002000\n", "{}", text(&o));
    }
    // Second run: the cached copy.
    let o = env.run(&task, &img, &["--verbose"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("image: shifted copy "), "{}", text(&o));
    // A changed directory gets a new copy, and the old one goes.
    std::fs::write(img.join("opt/a"), "new\n").unwrap();
    let o = env.run(&task, &img, &["--verbose"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).ends_with("new\n"), "{}", text(&o));
    assert!(
        stderr(&o).contains("image: made its shifted copy"),
        "{}",
        text(&o)
    );
    assert!(!shifted[0].exists(), "the stale copy was removed");
    // Once the directory is gone, `gc` removes its copies.
    std::fs::remove_dir_all(&img).unwrap();
    let o = env.worker(&["gc"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("removed shifted copy"), "{}", text(&o));
    assert_eq!(
        std::fs::read_dir(env.work_dir().join("shifted"))
            .unwrap()
            .count(),
        0
    );
    env.assert_clean(&[]);
}

/// A stored image (OCI layout) gets its shifted copy next to it, and `images rm` removes both.
#[test]
fn stored_image_shifted_copy_sits_next_to_it() {
    let env = Env::with_idmap("off");
    let layout = make_layout(&env, false);
    let o = env.worker(&[
        "images",
        "import",
        layout.to_str().unwrap(),
        "--name",
        "lay",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let key = stdout(&o).trim().to_string();
    let task = env.write(
        "task.yml",
        "platform: linux\nrun: {path: cat, args: [/etc/motd, /data/keep]}\n",
    );
    let o = env.worker(&["run", task.to_str().unwrap(), "--image", "lay"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "layer2\nkeep\n");
    let dir = env.work_dir().join("images").join(&key);
    let ns = dir.join(format!("rootfs-ns-{}", host_max()));
    assert_eq!(owner(&ns.join("etc/motd")), (host_max(), host_max()));
    assert_eq!(owner(&dir.join("rootfs/etc/motd")), (0, 0));
    let o = env.worker(&["images", "rm", "lay"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!dir.exists());
    env.assert_clean(&[]);
}

/// Where the kernel has idmapped layers but an input's or the image's filesystem cannot be
/// idmapped (ramfs here; tmpfs before 6.3, NFS), that one tree gets a shifted copy and the run
/// goes on.
#[test]
fn unidmappable_filesystem_gets_a_shifted_copy() {
    let env = Env::with_idmap("auto");
    let ram = env.path("ram");
    std::fs::create_dir_all(&ram).unwrap();
    sh(r#"mount -t ramfs ramfs "$1""#, &[&ram]);
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status();
        }
    }
    let _guard = Unmount(&ram);
    sh(
        r#"mkdir "$1/src" "$1/img"; echo hi > "$1/src/f"; cp -a "$2"/. "$1/img"/"#,
        &[&ram, &busybox()],
    );
    let task = env.write(
        "task.yml",
        "platform: linux\ninputs: [{name: src}]\nrun: {path: sh, args: [-c, 'stat -c %u src/f /bin/busybox; echo more >> src/f && cat src/f']}\n",
    );
    let o = env.run(
        &task,
        &ram.join("img"),
        &[
            "--verbose",
            "-i",
            &format!("src={}", ram.join("src").display()),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "0\n0\nhi\nmore\n", "{}", text(&o));
    let e = stderr(&o);
    if e.contains("ids: idmapped mounts") {
        assert!(
            e.contains("input src: its filesystem cannot be idmapped"),
            "{e}"
        );
        assert!(
            e.contains("image: its filesystem cannot be idmapped"),
            "{e}"
        );
    }
    assert_eq!(std::fs::read_to_string(ram.join("src/f")).unwrap(), "hi\n");
    env.assert_clean(&[]);
}
