//! berth-worker's volumes as a `fly execute` user meets them: who owns what `-o` writes, the
//! checks made before a task runs, outputs of failed tasks, the plan `check --plan` prints,
//! concurrent runs of one cached task, and what `gc` removes.

mod worker_common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use worker_common::*;

fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

/// Issue 12 item 2: an existing `-o DIR` keeps its owner and mode, and what the task wrote lands
/// there owned by DIR's owner (fly extracts as the invoking user), whatever the task's ids. A
/// DIR berth-worker creates belongs to SUDO_UID/SUDO_GID, and so does its content.
#[test]
fn outputs_are_written_as_the_owner_of_the_target() {
    for idmap in IDMAP_MODES {
        let env = Env::with_idmap(idmap);
        let task = env.write(
            "task.yml",
            "platform: linux\noutputs: [{name: out}]\nrun: {path: sh, args: [-c, 'echo a > out/a; mkdir out/d; echo b > out/d/b; chmod 700 out/d; echo n > out/n; chown 65534:65534 out/n; ln -s a out/l']}\n",
        );
        let existing = env.path("existing");
        std::fs::create_dir(&existing).unwrap();
        chown(&existing, 1000, 1000);
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o750)).unwrap();
        let created = env.path("made/by/worker");
        let o = env
            .cmd()
            .env("SUDO_UID", "1234")
            .env("SUDO_GID", "2345")
            .args(["run", "--image"])
            .arg(busybox())
            .arg(&task)
            .args(["-o", &format!("out={}", existing.display())])
            .output()
            .unwrap();
        assert!(o.status.success(), "{idmap}: {}", text(&o));
        assert_eq!(owner(&existing), (1000, 1000), "{idmap}");
        assert_eq!(mode(&existing), 0o750, "{idmap}");
        for f in ["a", "d", "d/b", "n", "l"] {
            assert_eq!(owner(&existing.join(f)), (1000, 1000), "{idmap}: {f}");
        }
        assert_eq!(mode(&existing.join("d")), 0o700, "{idmap}");
        assert_eq!(
            std::fs::read_link(existing.join("l")).unwrap(),
            Path::new("a")
        );

        let o = env
            .cmd()
            .env("SUDO_UID", "1234")
            .env("SUDO_GID", "2345")
            .args(["run", "--image"])
            .arg(busybox())
            .arg(&task)
            .args(["-o", &format!("out={}", created.display())])
            .output()
            .unwrap();
        assert!(o.status.success(), "{idmap}: {}", text(&o));
        for d in ["made", "made/by", "made/by/worker"] {
            assert_eq!(owner(&env.path(d)), (1234, 2345), "{idmap}: {d}");
        }
        for f in ["a", "d/b", "n"] {
            assert_eq!(owner(&created.join(f)), (1234, 2345), "{idmap}: {f}");
        }
        env.assert_clean(&[]);
    }
}

/// A root-owned target (berth-worker run as root without sudo) keeps host-space owners: the
/// task's root is 0, other ids stay (a root `tar x`), for privileged and unprivileged tasks.
#[test]
fn root_owned_targets_keep_host_space_ids() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\noutputs: [{name: out}]\nrun: {path: sh, args: [-c, 'echo a > out/a; echo n > out/n; chown 65534:65534 out/n']}\n",
    );
    for (i, extra) in [&[][..], &["--privileged"][..]].iter().enumerate() {
        let out = env.path(&format!("out{i}"));
        let mut args = vec!["-o".to_string(), format!("out={}", out.display())];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = env
            .cmd()
            .env_remove("SUDO_UID")
            .env_remove("SUDO_GID")
            .args(["run", "--image"])
            .arg(busybox())
            .arg(&task)
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{extra:?}: {}", text(&o));
        assert_eq!(owner(&out), (0, 0));
        assert_eq!(owner(&out.join("a")), (0, 0), "{extra:?}");
        assert_eq!(owner(&out.join("n")), (65534, 65534), "{extra:?}");
    }
    env.assert_clean(&[]);
}

/// Every `-o` target is checked before the task runs: a clear error naming the output and the
/// path, exit 2, the task never started, nothing created.
#[test]
fn an_unwritable_output_target_fails_before_the_task() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\noutputs: [{name: out}, {name: rep}]\ncaches: [{path: c}]\nrun: {path: sh, args: [-c, 'echo ran > c/ran; echo RAN']}\n",
    );
    let file = env.write("a-file", "x");
    let ok = env.path("fine");
    let bad = file.join("sub");
    let o = env.run(
        &task,
        &busybox(),
        &[
            "-o",
            &format!("out={}", ok.display()),
            "-o",
            &format!("rep={}", bad.display()),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("-o rep={}", bad.display())) && err.contains("not a directory"),
        "{}",
        text(&o)
    );
    assert!(!stdout(&o).contains("RAN"), "{}", text(&o));
    assert!(!ok.exists(), "the good target was created before the check");
    assert!(!env.work_dir().join("caches").exists(), "{}", text(&o));
    env.assert_clean(&[]);
}

/// A work dir under a directory of root's that others cannot search: unprivileged runs get a
/// clear error naming the directory (not the runtime's "bind rootfs onto itself: Permission
/// denied"); privileged runs work.
#[test]
fn a_work_dir_under_a_private_root_directory_is_named() {
    let env = Env::new();
    let private = env.path("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let work = private.join("work");
    let task = env.write(
        "task.yml",
        "platform: linux\nrun: {path: echo, args: [ok]}\n",
    );
    let run = |extra: &[&str]| {
        std::process::Command::new(worker_bin())
            .arg("--work-dir")
            .arg(&work)
            .env("BERTH_BIN", runtime_bin())
            .env("BERTH_WORKER_NETWORK", "none")
            .args(["run", "--image"])
            .arg(busybox())
            .arg(&task)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{} is mode 0700", private.display())) && err.contains("o+x"),
        "{}",
        text(&o)
    );
    assert!(!err.contains("onto itself"), "{}", text(&o));
    let o = run(&["--privileged"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "ok\n");
    // The same directory owned by a user (mapped in the task's namespace) is fine.
    chown(&private, 1000, 1000);
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!work.join("runs").read_dir().unwrap().any(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with('.')));
}

/// Issue 12 item 3: a failing task's outputs are copied out too, and the worker says so; the
/// exit status stays the task's.
#[test]
fn failed_task_outputs_are_copied_and_reported() {
    for idmap in IDMAP_MODES {
        let env = Env::with_idmap(idmap);
        let task = env.write(
            "task.yml",
            "platform: linux\noutputs: [{name: report}]\nrun: {path: sh, args: [-c, 'echo \"1 failed\" > report/junit.txt; exit 1']}\n",
        );
        let out = env.path("report");
        let o = env.run(
            &task,
            &busybox(),
            &["-o", &format!("report={}", out.display())],
        );
        assert_eq!(o.status.code(), Some(1), "{idmap}: {}", text(&o));
        assert_eq!(
            std::fs::read_to_string(out.join("junit.txt")).unwrap(),
            "1 failed\n"
        );
        assert!(
            stderr(&o).contains(&format!(
                "task failed (exit 1); outputs copied to report={}",
                out.display()
            )),
            "{idmap}: {}",
            text(&o)
        );
        env.assert_clean(&[]);
    }
}

/// `check --plan` prints the run as data, with the run directory's layout, the id mode, the
/// binds and the output owners; nothing is mounted and no run is recorded.
#[test]
fn check_plan_prints_the_layout_binds_and_owners() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\ninputs: [{name: src}]\noutputs: [{name: src}, {name: out}]\ncaches: [{path: c}]\nrun: {path: sh, args: [-c, 'true'], dir: src}\n",
    );
    env.write("src/f", "x");
    let work = env.work_dir();
    let out = env.path("o/x");
    let plan = |mode: &str, extra: &[&str]| {
        let o = env
            .cmd()
            .env("BERTH_WORKER_IDMAP", mode)
            .args(["check", "--plan"])
            .arg(&task)
            .arg("--image")
            .arg(busybox())
            .args(["-i", &format!("src={}", env.path("src").display())])
            .args(["-o", &format!("out={}", out.display())])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o)
    };
    let p = plan("off", &[]);
    let w = work.display();
    let wd = format!("/tmp/build/{}", sha8("task"));
    for want in [
        "mode: shifted".to_string(),
        format!("cwd: {wd}/src"),
        format!("  view: {w}/runs/<id>/inputs/0"),
        "  how: shifted-copy".into(),
        format!("  source: {w}/runs/<id>/inputs/0\n  input: src"),
        format!("  source: {w}/runs/<id>/vol/out-1"),
        format!("- source: {w}/runs/<id>/vol/workdir\n  dest: {wd}\n"),
        "- /tmp/berth-init\n- sh\n".into(),
        format!(
            "    - {}\n    - {}\n",
            env.path("o").display(),
            out.display()
        ),
        "      keep_ids: true".into(),
        format!("  space: ns-{}", host_max()),
    ] {
        assert!(p.contains(&want), "missing {want:?} in:\n{p}");
    }
    let p = plan("off", &["--privileged"]);
    assert!(
        p.contains("mode: host") && p.contains("  space: host"),
        "{p}"
    );
    assert!(!out.exists() && !env.path("o").exists());
    assert!(env.run_ids().is_empty());
    env.assert_clean(&[]);
}

/// Issue 12 item 11: `gc` removes what an interrupted import left in the store (a process
/// killed mid-import, and the older unowned names), but never an import in progress.
#[test]
fn gc_removes_interrupted_imports_but_not_one_in_progress() {
    let env = Env::new();
    let images = env.work_dir().join("images");
    std::fs::create_dir_all(&images).unwrap();
    // A dead importer: a child that has exited (its pid is gone or reused with another start
    // time), an old-style name without an owner, and a live one: this test process.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let me = std::process::id();
    let start: u64 = std::fs::read_to_string(format!("/proc/{me}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let stale = [
        format!(".import-{dead}-1-aaaa"),
        ".import-0123456789ab".to_string(),
        format!(".pull-{dead}-1-bbbb"),
    ];
    let live = format!(".import-{me}-{start}-cccc");
    for d in stale.iter().chain([&live]) {
        std::fs::create_dir_all(images.join(d).join("rootfs/bin")).unwrap();
        std::fs::write(images.join(d).join("rootfs/bin/x"), "x").unwrap();
    }
    let o = env.worker(&["gc"]);
    assert!(o.status.success(), "{}", text(&o));
    for d in &stale {
        assert!(!images.join(d).exists(), "{d} left: {}", text(&o));
        assert!(stdout(&o).contains(d.as_str()), "{}", text(&o));
    }
    assert!(
        images.join(&live).join("rootfs/bin/x").exists(),
        "{}",
        text(&o)
    );
    // A real import still works and leaves no partial directory behind.
    let tar = env.path("rootfs.tar");
    sh(r#"tar -C "$1" -cf "$2" ."#, &[&busybox(), &tar]);
    let o = env.worker(&["images", "import", tar.to_str().unwrap(), "--name", "bb"]);
    assert!(o.status.success(), "{}", text(&o));
    let left: Vec<String> = std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != &live)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Issue 12 item 4: concurrent runs of one task each get a copy-on-write view of the cache;
/// a successful run's view becomes the cache (the last one wins), a failed run's changes are
/// dropped. In both id modes, and across privileged and unprivileged runs.
#[test]
fn concurrent_runs_get_their_own_cache_view_and_the_last_success_commits() {
    for idmap in IDMAP_MODES {
        let env = Env::with_idmap(idmap);
        // Each run adds its own file, says READY, and waits until the test creates `open` in
        // its /scratch (a plain bind of the run's vol/scratch, so the host's write shows); a
        // run given FAIL=1 fails after writing.
        let task = env.write(
            "task.yml",
            "platform: linux\ncaches: [{path: c}]\nparams: {NAME: x, FAIL: '0', WAIT: '1'}\nrun: {path: sh, args: [-c, 'ls c | tr \"\\n\" \" \"; echo; echo $NAME > c/$NAME; echo READY; while [ $WAIT = 1 ] && [ ! -e /scratch/open ]; do sleep 0.05; done; [ $FAIL = 0 ]']}\n",
        );
        let p = |k: &str, v: &str| format!("{k}={v}");
        let o = env.run(
            &task,
            &busybox(),
            &["--param", &p("NAME", "first"), "--param", "WAIT=0"],
        );
        assert!(o.status.success(), "{idmap}: {}", text(&o));
        let mut runs = Vec::new();
        for (name, fail, extra) in [
            ("a", "0", None),
            ("b", "1", None),
            ("c", "0", Some("--privileged")),
        ] {
            let mut args = vec![
                "--param".to_string(),
                p("NAME", name),
                "--param".into(),
                p("FAIL", fail),
            ];
            if let Some(e) = extra {
                args.push(e.into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (child, out) = env.spawn_until(&task, &busybox(), &args, "READY");
            runs.push((name, child, out));
        }
        // All three are inside the task now, each on its own view.
        for id in env.run_ids() {
            std::fs::write(
                env.work_dir()
                    .join("runs")
                    .join(id)
                    .join("vol/scratch/open"),
                "",
            )
            .unwrap();
        }
        let mut codes = Vec::new();
        for (name, child, out) in runs {
            drop(out);
            let o = child.wait_with_output().unwrap();
            codes.push((name, o.status.code()));
        }
        assert_eq!(
            codes,
            [("a", Some(0)), ("b", Some(1)), ("c", Some(0))],
            "{idmap}"
        );
        // The last successful run to finish committed its view; the failed one's file never
        // appears, and no run's file is in another's commit.
        let o = env.run(
            &task,
            &busybox(),
            &["--param", "NAME=check", "--param", "WAIT=0"],
        );
        assert!(o.status.success(), "{idmap}: {}", text(&o));
        let seen = stdout(&o).lines().next().unwrap().to_string();
        assert!(
            seen == "a first " || seen == "c first ",
            "{idmap}: {seen:?}: {}",
            text(&o)
        );
        env.assert_clean(&[]);
        // Only the current generation is left once no run holds the others (a run still holds
        // its base while it commits; the next run or `gc` removes that one).
        let o = env.worker(&["gc"]);
        assert!(o.status.success(), "{}", text(&o));
        for e in std::fs::read_dir(env.work_dir().join("caches"))
            .unwrap()
            .flatten()
        {
            if e.path().join("gens").is_dir() {
                let gens: Vec<_> = std::fs::read_dir(e.path().join("gens"))
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name())
                    .collect();
                assert_eq!(gens.len(), 1, "{idmap}: {gens:?}");
            }
        }
    }
}
