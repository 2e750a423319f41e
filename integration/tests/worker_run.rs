//! berth-worker end to end: schema fields, inputs/outputs/caches, identity, limits,
//! privileges, timeout/abort/kill -9 cleanup, glibc and musl images.

mod worker_common;

use std::os::unix::fs::MetadataExt;

use worker_common::*;

#[test]
fn schema_fields_params_dir_user_and_env() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        env.write("src/sub/hello.txt", "hi from the input\n");
        let task = env.write(
            "task.yml",
            r#"
    platform: linux
    inputs:
    - name: src
      path: renamed/src
    - name: absent
      optional: true
    outputs:
    - name: out
    params:
      STR: plain
      NUM: 42
      BOOL: true
      MAP: {a: 1}
      OVERRIDDEN: from-file
    run:
      path: sh
      args: [-c, 'echo "user=$(id -u):$(id -g) USER=$USER"; echo "cwd=$(pwd)"; echo "STR=$STR NUM=$NUM BOOL=$BOOL MAP=$MAP OVERRIDDEN=$OVERRIDDEN"; echo "PATH=$PATH"; cat hello.txt; test -e ../../../absent && echo absent-mounted; echo done > ../../../out/f']
      dir: renamed/src/sub
      user: nobody
    "#,
        );
        let out = env.path("outdir");
        let o = env.run(
            &task,
            &busybox(),
            &[
                "-i",
                &format!("src={}", env.path("src").display()),
                "-o",
                &format!("out={}", out.display()),
                "--param",
                "OVERRIDDEN=from-cli",
                "--name",
                "one-off",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let s = stdout(&o);
        assert!(s.contains("user=65534:65534 USER=nobody"), "{}", text(&o));
        // Concourse's work dir: /tmp/build/<first 4 bytes of sha256("one-off")>.
        assert!(
            s.contains(&format!(
                "cwd=/tmp/build/{}/renamed/src/sub",
                sha8("one-off")
            )),
            "{s}"
        );
        assert!(
            s.contains("STR=plain NUM=42 BOOL=true MAP={\"a\":1} OVERRIDDEN=from-cli"),
            "{s}"
        );
        assert!(
            s.contains("PATH=/usr/local/bin:/usr/bin:/bin"),
            "non-root default PATH: {s}"
        );
        assert!(s.contains("hi from the input"), "{s}");
        assert!(!s.contains("absent-mounted"), "{s}");
        assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "done\n");
        env.assert_clean(&[]);
    }
}

#[test]
fn work_dir_is_sha256_of_step_name() {
    let env = Env::new();
    let task = env.write("t.yml", "platform: linux\nrun: {path: pwd}\n");
    let o = env.run(&task, &busybox(), &["--name", "one-off"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), format!("/tmp/build/{}", sha8("one-off")));
}

#[test]
fn inputs_stay_unchanged_and_outputs_land_in_host_space() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        env.write("src/keep.txt", "original\n");
        env.write("src/delete-me.txt", "x\n");
        let task = env.write(
            "task.yml",
            r#"
    platform: linux
    inputs: [{name: src}]
    outputs: [{name: out}]
    run:
      path: sh
      args: [-c, 'echo changed > src/keep.txt && rm src/delete-me.txt && touch src/new && cat src/keep.txt && echo artifact > out/a && mkdir out/d && echo nested > out/d/b']
    "#,
        );
        let out = env.path("outdir");
        let o = env.run(
            &task,
            &busybox(),
            &[
                "-i",
                &format!("src={}", env.path("src").display()),
                "-o",
                &format!("out={}", out.display()),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(stdout(&o), "changed\n", "the task sees its own writes");
        assert_eq!(
            std::fs::read_to_string(env.path("src/keep.txt")).unwrap(),
            "original\n"
        );
        assert!(env.path("src/delete-me.txt").exists());
        assert!(!env.path("src/new").exists());
        assert_eq!(
            std::fs::read_to_string(out.join("d/b")).unwrap(),
            "nested\n"
        );
        // Outputs leave in host space: the unprivileged task's root (host uid max inside the
        // run) owns them as uid 0, exactly as a privileged task's would.
        let m = std::fs::metadata(out.join("a")).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0), "{mode}");
        env.assert_clean(&[]);
    }
}

#[test]
fn failed_task_exits_with_its_status_and_still_copies_outputs() {
    let env = Env::new();
    let task = env.write("task.yml", "platform: linux\noutputs: [{name: out}]\nrun: {path: sh, args: [-c, 'echo x > out/a; echo to-stderr >&2; exit 7']}\n");
    let out = env.path("outdir");
    let o = env.run(
        &task,
        &busybox(),
        &["-o", &format!("out={}", out.display())],
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(stderr(&o).contains("to-stderr"), "{}", text(&o));
    // Concourse registers a failed task's outputs too.
    assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "x\n");
    env.assert_clean(&[]);
}

#[test]
fn caches_persist_between_runs() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let task = env.write("task.yml", "platform: linux\ncaches: [{path: c}]\nrun: {path: sh, args: [-c, 'echo x >> c/log; wc -l < c/log']}\n");
        for want in ["1", "2"] {
            let o = env.run(&task, &busybox(), &[]);
            assert!(o.status.success(), "{}", text(&o));
            assert_eq!(stdout(&o).trim(), want);
        }
        // Another task file has its own cache.
        let other = env.write("other.yml", &std::fs::read_to_string(&task).unwrap());
        let o = env.run(&other, &busybox(), &[]);
        assert_eq!(stdout(&o).trim(), "1", "{}", text(&o));
    }
}

#[test]
fn unprivileged_task_is_root_in_a_user_namespace() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let task = env.write(
            "task.yml",
            "platform: linux\nrun: {path: sh, args: [-c, 'id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status; mkdir -p /mnt; mount -t tmpfs t /mnt && echo mounted || echo mount-denied']}\n",
        );
        let o = env.run(&task, &busybox(), &[]);
        assert!(o.status.success(), "{}", text(&o));
        let s = stdout(&o);
        let lines: Vec<Vec<&str>> = s.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["0"]);
        assert_eq!(lines[1], ["0", &host_max().to_string(), "1"]);
        assert_eq!(lines[2], ["1", "1", &(host_max() - 1).to_string()]);
        // Concourse's 14 capabilities: 0xa80425fb.
        assert_eq!(lines[3], ["CapEff:", "00000000a80425fb"], "{s}");
        assert!(s.contains("mount-denied"), "{s}");
    }
}

#[test]
fn privileged_task_is_host_root_and_can_mount() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\noutputs: [{name: out}]\nrun: {path: sh, args: [-c, 'cat /proc/self/uid_map; grep Seccomp: /proc/self/status; mkdir -p /mnt; mount -t tmpfs t /mnt && echo mounted; touch out/f']}\n",
    );
    let out = env.path("outdir");
    let o = env.run(
        &task,
        &busybox(),
        &["--privileged", "-o", &format!("out={}", out.display())],
    );
    assert!(o.status.success(), "{}", text(&o));
    let s = stdout(&o);
    assert_eq!(
        s.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "{s}"
    );
    assert!(s.contains("Seccomp:\t0"), "privileged has no seccomp: {s}");
    assert!(s.contains("mounted"), "{s}");
    assert_eq!(std::fs::metadata(out.join("f")).unwrap().uid(), 0);
    env.assert_clean(&[]);
}

#[test]
fn limits_are_in_the_cgroup_and_abort_stops_the_task() {
    if let Some(why) = berth_integration::missing_controller("memory") {
        return berth_integration::skip("limits_are_in_the_cgroup_and_abort_stops_the_task", &why);
    }
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\ncontainer_limits: {memory: 64MB, cpu: 256}\nrun: {path: sh, args: [-c, 'trap \"echo got-term; exit 9\" TERM; echo ready; while :; do sleep 0.1; done']}\n",
    );
    let (mut child, mut out) = env.spawn_until(&task, &busybox(), &[], "ready");
    let ids = env.run_ids();
    assert_eq!(ids.len(), 1);
    let cg = format!("berth-worker/berth-worker-{}", ids[0]);
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").join(&cg);
    if v1.exists() {
        assert_eq!(
            std::fs::read_to_string(v1.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "67108864"
        );
        let cpu = std::path::Path::new("/sys/fs/cgroup/cpu")
            .join(&cg)
            .join("cpu.shares");
        assert_eq!(std::fs::read_to_string(cpu).unwrap().trim(), "256");
    } else {
        // Memory on cgroup2: the whole tree on a v2 host, /sys/fs/cgroup/unified on a hybrid
        // one whose kernel has no v1 memory controller (Debian's 6.12).
        let v2 = berth_integration::cgroup2_mountpoint()
            .expect("memory is on no v1 hierarchy, so on cgroup2")
            .join(&cg);
        assert_eq!(
            std::fs::read_to_string(v2.join("memory.max"))
                .unwrap()
                .trim(),
            "67108864"
        );
    }
    // SIGTERM to the worker = abort: TERM to the task, which exits during the grace period.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(3), "aborted → 3");
    assert!(rest.contains("got-term"), "{rest}");
    env.assert_clean(&ids);
    assert!(!process_running("got-term"));
}

#[test]
fn timeout_kills_a_task_that_ignores_term() {
    let env = Env::new();
    let task = env.write("task.yml", "platform: linux\nrun: {path: sh, args: [-c, 'trap \"\" TERM; echo ready; while :; do sleep 0.1; done # timeout-marker']}\n");
    let (child, _out) = env.spawn_until(
        &task,
        &busybox(),
        &["--timeout", "1s", "--grace", "1s"],
        "ready",
    );
    let ids = env.run_ids();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("timeout exceeded"), "{}", text(&o));
    env.assert_clean(&ids);
    assert!(!process_running("timeout-marker"));
}

#[test]
fn kill_9_of_the_worker_then_rerun_cleans_up() {
    let env = Env::new();
    let task = env.write("task.yml", "platform: linux\ninputs: [{name: src}]\nrun: {path: sh, args: [-c, 'echo ready; while :; do sleep 0.1; done # kill9-marker']}\n");
    env.write("src/f", "x");
    let (mut child, _out) = env.spawn_until(
        &task,
        &busybox(),
        &["-i", &format!("src={}", env.path("src").display())],
        "ready",
    );
    let ids = env.run_ids();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // The container and its mounts outlive the worker...
    assert!(process_running("kill9-marker"));
    assert!(std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&env.work_dir().display().to_string()));
    // ...until the next run sweeps them.
    let quick = env.write("quick.yml", "platform: linux\nrun: {path: 'true'}\n");
    let o = env.run(&quick, &busybox(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!("cleaned up stale run {}", ids[0])),
        "{}",
        text(&o)
    );
    env.assert_clean(&ids);
    assert!(!process_running("kill9-marker"));
    assert_eq!(std::fs::read_to_string(env.path("src/f")).unwrap(), "x");
}

#[test]
fn zombies_are_reaped_by_init() {
    let env = Env::new();
    // Orphans re-parent to PID 1 (berth-init), which must reap them.
    let task = env.write("task.yml", "platform: linux\nrun: {path: sh, args: [-c, '(sh -c \"exit 0\" &) ; sleep 0.5; ps -o stat,comm | grep -c \"^Z\" || true; cat /proc/1/cmdline | tr \"\\0\" \" \"']}\n");
    let o = env.run(&task, &busybox(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let s = stdout(&o);
    assert!(s.starts_with("0\n"), "zombies present: {s}");
    assert!(
        s.contains("/tmp/berth-init sh -c"),
        "PID 1 is berth-init: {s}"
    );
}

#[test]
fn glibc_and_musl_images_both_run() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let task = env.write("task.yml", "platform: linux\nrun: {path: sh, args: [-c, 'berth-probe-musl thread && ldd --version 2>&1 | head -1']}\n");
        let o = env.run(&task, &bookworm(), &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(stdout(&o).contains("pthread_create=0"), "{}", text(&o));
        assert!(stdout(&o).contains("GLIBC"), "{}", text(&o));
        let task = env.write(
            "task2.yml",
            "platform: linux\nrun: {path: berth-probe-musl, args: [thread]}\n",
        );
        let o = env.run(&task, &busybox(), &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(stdout(&o).contains("pthread_create=0"), "{}", text(&o));
    }
}

#[test]
fn resolv_conf_has_no_loopback_nameservers() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\nrun: {path: cat, args: [/etc/resolv.conf]}\n",
    );
    let o = env.run(&task, &busybox(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let want: Vec<&str> = host
        .lines()
        .filter(|l| !(l.starts_with("nameserver 127.") || l.starts_with("nameserver ::1")))
        .collect();
    assert_eq!(stdout(&o).lines().collect::<Vec<_>>(), want);
}

#[test]
fn clone3_incident_old_profile_fails_default_profile_passes() {
    let env = Env::new();
    let task = repo().join("examples/clone3/task.yml");
    let old = repo().join("examples/seccomp/concourse-7.12.json");
    let o = env.run(
        &task,
        &bookworm(),
        &[
            "--seccomp-profile",
            old.to_str().unwrap(),
            "--annotation",
            "run.berth.seccomp.enosys=runc",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).contains("getaddrinfo() thread failed to start"),
        "{}",
        text(&o)
    );
    // berth's default profile (profiles/default.json, found next to the binaries).
    let o = env.run(
        &task,
        &bookworm(),
        &[
            "--seccomp-profile",
            repo().join("profiles/default.json").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("Failed to connect"), "{}", text(&o));
    env.assert_clean(&[]);
}

#[test]
fn stdout_and_stderr_keep_their_order_in_one_file() {
    let env = Env::new();
    let task = env.write("task.yml", "platform: linux\nrun: {path: sh, args: [-c, 'for i in 1 2 3; do echo out$i; echo err$i >&2; done']}\n");
    let log = std::fs::File::create(env.path("log")).unwrap();
    let st = env
        .cmd()
        .arg("run")
        .arg(&task)
        .arg("--image")
        .arg(busybox())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(env.path("log")).unwrap(),
        "out1\nerr1\nout2\nerr2\nout3\nerr3\n"
    );
}

#[test]
fn rootfs_uri_names_a_directory_image() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        let task = env.write("task.yml", &format!("platform: linux\nrootfs_uri: raw://{}\nrun: {{path: busybox, args: [echo, from-rootfs-uri]}}\n", busybox().canonicalize().unwrap().display()));
        let o = env.worker(&["run", task.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(stdout(&o), "from-rootfs-uri\n");
        env.assert_clean(&[]);
    }
}
