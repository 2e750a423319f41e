//! berth-worker as `fly execute`: task files as Concourse users write them (`path: .`, a
//! missing `run.dir`, `((vars))`), fly's command line (`-c`, `-p`, `-m`, `-- ARGS`, params from
//! the environment, the current directory as an input, .gitignored paths left out), and the
//! command line's manners (`check` as YAML/JSON, a closed pipe, not root).

mod worker_common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use worker_common::*;

fn input(env: &Env, name: &str) -> String {
    format!("{name}={}", env.path(name).display())
}

#[test]
fn input_at_path_dot_is_the_work_dir_itself() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        env.write("repo/README", "the repo\n");
        // concourse/examples' shape: the repo is the work dir, an output nested in it.
        let task = env.write(
            "task.yml",
            "platform: linux\ninputs: [{name: repo, path: .}]\noutputs: [{name: built}]\nrun: {path: sh, args: [-ec, 'pwd; cat README; echo new > made-here; echo art > built/a; ls']}\n",
        );
        let out = env.path("out");
        let o = env.run(
            &task,
            &busybox(),
            &[
                "-i",
                &input(&env, "repo"),
                "-o",
                &format!("built={}", out.display()),
                "--name",
                "one-off",
            ],
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        let s = stdout(&o);
        assert!(
            s.starts_with(&format!("/tmp/build/{}\nthe repo\n", sha8("one-off"))),
            "{mode}: {s}"
        );
        assert!(s.contains("built") && s.contains("made-here"), "{s}");
        assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "art\n");
        // Copy-on-write as any input: the caller's directory is unchanged.
        assert!(!env.path("repo/made-here").exists(), "{mode}");
        assert!(!env.path("repo/built").exists(), "{mode}");
        env.assert_clean(&[]);
    }
    // Two inputs at the work dir, and an output there, are still errors.
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\ninputs: [{name: a, path: .}, {name: b, path: ./}]\nrun: {path: 'true'}\n",
    );
    let o = env.run(&task, &busybox(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("inputs[1].path"), "{}", text(&o));
    let task = env.write(
        "task.yml",
        "platform: linux\noutputs: [{name: o, path: .}]\nrun: {path: 'true'}\n",
    );
    let o = env.run(&task, &busybox(), &[]);
    assert!(
        stderr(&o).contains("outputs[0].path: \".\" names the work dir itself"),
        "{}",
        text(&o)
    );
}

#[test]
fn missing_run_dir_is_created_for_the_task_user() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        env.write("src/file", "x\n");
        for (dir, user) in [
            ("new/deep", "nobody"),     // in the work dir volume
            ("src/made/here", "root"),  // inside an input (its copy-on-write view)
            ("/opt/abs/dir", "nobody"), // in the rootfs
        ] {
            let task = env.write(
                "task.yml",
                &format!("platform: linux\ninputs: [{{name: src}}]\nrun: {{path: sh, args: [-ec, 'pwd; touch written; stat -c %U written'], dir: {dir}, user: {user}}}\n"),
            );
            let o = env.run(
                &task,
                &busybox(),
                &["-i", &input(&env, "src"), "--name", "one-off"],
            );
            assert!(o.status.success(), "{mode} {dir}: {}", text(&o));
            let want = if dir.starts_with('/') {
                dir.to_string()
            } else {
                format!("/tmp/build/{}/{dir}", sha8("one-off"))
            };
            assert_eq!(stdout(&o), format!("{want}\n{user}\n"), "{mode} {dir}");
        }
        assert!(!env.path("src/made").exists(), "the input dir was written");
        // A file in the way: one clear error naming run.dir, no runtime error on top.
        let task = env.write(
            "task.yml",
            "platform: linux\ninputs: [{name: src}]\nrun: {path: 'true', dir: src/file/sub}\n",
        );
        let o = env.run(&task, &busybox(), &["-i", &input(&env, "src")]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let e = stderr(&o);
        assert!(
            e.contains("run.dir \"src/file/sub\"") && e.contains("src/file is not a directory"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");
        env.assert_clean(&[]);
    }
}

const VARS_TASK: &str = r#"platform: linux
inputs: [{name: ((input_name))}]
params:
  GREETING: ((greeting))
  PORT: ((server.port))
  URL: http://((server.host)):((server.port))/((path))
  LIST: ((list))
  FROM_FILE: ((file_only))
run:
  path: sh
  args: [-ec, 'echo "$GREETING|$PORT|$URL|$LIST|$FROM_FILE"; ls ((input_name))']
"#;

#[test]
fn vars_from_flags_and_files_fill_placeholders() {
    let env = Env::new();
    let task = env.write("task.yml", VARS_TASK);
    env.write("code/main.c", "int main;\n");
    let f1 = env.write(
        "vars1.yml",
        "file_only: one\npath: from-file\nserver: {host: file-host, port: 1}\n",
    );
    let f2 = env.write("vars2.yml", "server: {host: db.local, port: 5432}\n");
    let o = env.run(
        &task,
        &busybox(),
        &[
            "-v",
            "greeting=hello world",
            "-v",
            "input_name=code",
            "-y",
            "list=[1, two]",
            "-v",
            "path=api",
            "-l",
            f1.to_str().unwrap(),
            "-l",
            f2.to_str().unwrap(),
            "-i",
            &input(&env, "code"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // -v beats the files; the later file beats the earlier; fields of a mapping var.
    assert_eq!(
        stdout(&o),
        "hello world|5432|http://db.local:5432/api|[1,\"two\"]|one\nmain.c\n"
    );
    // -v with a field path builds the mapping.
    let o = env.worker(&[
        "check",
        task.to_str().unwrap(),
        "-v",
        "greeting=hi",
        "-v",
        "input_name=x",
        "-v",
        "server.host=h",
        "-y",
        "server.port=80",
        "-v",
        "path=p",
        "-y",
        "list=[]",
        "-v",
        "file_only=f",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("URL: http://h:80/p"), "{}", text(&o));
    env.assert_clean(&[]);
}

#[test]
fn undefined_vars_are_named_by_check_and_run() {
    let env = Env::new();
    let task = env.write("task.yml", VARS_TASK);
    let want = "undefined vars: file_only, greeting, list, server.host, server.port";
    let o = env.worker(&[
        "check",
        task.to_str().unwrap(),
        "-v",
        "input_name=x",
        "-v",
        "path=p",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains(want), "{}", text(&o));
    assert!(stdout(&o).is_empty(), "{}", text(&o));
    let o = env.run(&task, &busybox(), &["-v", "input_name=x", "-v", "path=p"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains(want), "{}", text(&o));
    // A field that the var does not have is an error of its own.
    let o = env.worker(&[
        "check",
        task.to_str().unwrap(),
        "-y",
        "server={host: h}",
        "-v",
        "greeting=x",
    ]);
    assert!(
        stderr(&o).contains("missing field 'port' in var: server.port"),
        "{}",
        text(&o)
    );
    // Nothing was made for the run that never started.
    assert!(!env.work_dir().join("runs").exists());
    env.assert_clean(&[]);
}

#[test]
fn fly_command_line_config_privileged_param_and_extra_args() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\nparams: {FROM_ENV: file, KEPT: file, CLI: file}\nrun: {path: sh, args: [-ec, 'echo \"$FROM_ENV $KEPT $CLI\"; echo \"args:$*\"; head -1 /proc/self/uid_map | tr -s \" \"', sh, first]}\n",
    );
    let mut c = env.cmd();
    c.args(["run", "-c"])
        .arg(&task)
        .arg("--image")
        .arg(busybox())
        .args(["-p", "--param", "CLI=cli", "--", "second", "third arg"])
        .env("FROM_ENV", "env")
        .env_remove("KEPT");
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // fly: the environment overrides the file's params; berth's --param overrides both.
    // -p is fly's --privileged: no user namespace, the host's whole id range.
    let host_map = std::fs::read_to_string("/proc/self/uid_map").unwrap();
    let host_map: Vec<&str> = host_map
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        stdout(&o),
        format!(
            "env file cli\nargs:first second third arg\n {}\n",
            host_map.join(" ")
        )
    );
    // Positional and -c together are refused; neither is refused.
    let o = env.worker(&["run", task.to_str().unwrap(), "-c", task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = env.worker(&["run", "--image", busybox().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("-c FILE"), "{}", text(&o));
    env.assert_clean(&[]);
}

#[test]
fn input_mapping_and_the_current_directory() {
    let env = Env::new();
    env.write("src/from-cwd", "");
    env.write("other/from-i", "");
    env.write("lib-artifact/from-m", "");
    let task = env.write(
        "task.yml",
        "platform: linux\ninputs: [{name: src}, {name: lib}, {name: opt, optional: true}]\nrun: {path: sh, args: [-ec, 'ls src; ls lib; test ! -e opt']}\n",
    );
    // The current directory is called src: it is the src input. -m lib=lib-artifact feeds lib
    // from -i lib-artifact=DIR.
    let mut c = env.cmd();
    c.current_dir(env.path("src"))
        .arg("run")
        .arg(&task)
        .arg("--image")
        .arg(busybox())
        .args(["-m", "lib=lib-artifact", "-i", &input(&env, "lib-artifact")]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "from-cwd\nfrom-m\n");
    assert!(
        stderr(&o).contains("input src: the current directory"),
        "{}",
        text(&o)
    );
    // An explicit -i wins over the current directory.
    let mut c = env.cmd();
    c.current_dir(env.path("src"))
        .arg("run")
        .arg(&task)
        .arg("--image")
        .arg(busybox())
        .args(["-i", &format!("src={}", env.path("other").display())])
        .args(["-i", &format!("lib={}", env.path("lib-artifact").display())]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "from-i\nfrom-m\n");
    // -m naming no task input, and -i naming neither an input nor a mapped artifact.
    let o = env.run(&task, &busybox(), &["-m", "nope=x"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("-m nope=x: the task has no input named \"nope\""));
    let o = env.run(&task, &busybox(), &["-i", &input(&env, "lib-artifact")]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("no input named \"lib-artifact\""),
        "{}",
        text(&o)
    );
    env.assert_clean(&[]);
}

#[test]
fn git_inputs_leave_out_ignored_paths_unless_include_ignored() {
    for mode in IDMAP_MODES {
        let env = Env::with_idmap(mode);
        env.write("repo/.gitignore", "target/\n*.log\n/deep/skip\n");
        env.write("repo/src/main.rs", "fn main() {}\n");
        env.write("repo/target/debug/app", "binary\n");
        env.write("repo/build.log", "log\n");
        env.write("repo/deep/keep", "k\n");
        env.write("repo/deep/skip/x", "s\n");
        env.write("repo/untracked.txt", "u\n");
        sh(
            "cd \"$1\" && git init -q && git add .gitignore src deep && git -c user.name=t -c user.email=t@t commit -qm init",
            &[&env.path("repo")],
        );
        // The caller's repository belongs to someone else (git's "dubious ownership").
        sh("chown -R 1000:1000 \"$1\"", &[&env.path("repo")]);
        let task = env.write(
            "task.yml",
            "platform: linux\ninputs: [{name: repo}]\nrun: {path: sh, args: [-ec, 'cd repo; find . | sort; stat -c %u deep; touch deep/new']}\n",
        );
        let o = env.run(&task, &busybox(), &["-i", &input(&env, "repo")]);
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert_eq!(
            stdout(&o),
            "
.
./.gitignore
./deep
./deep/keep
./src
./src/main.rs
./untracked.txt
1000
"
            .trim_start(),
            "{mode}"
        );
        let o = env.run(
            &task,
            &busybox(),
            &["-i", &input(&env, "repo"), "--include-ignored"],
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        let s = stdout(&o);
        for p in [
            "./.git/HEAD",
            "./build.log",
            "./target/debug/app",
            "./deep/skip/x",
        ] {
            assert!(s.lines().any(|l| l == p), "{mode}: {p} missing:\n{s}");
        }
        // An input that git ignores as a whole (under target/) is taken whole.
        let whole = env.write(
            "whole.yml",
            "platform: linux\ninputs: [{name: repo}]\nrun: {path: sh, args: [-ec, 'cd repo; find . | sort']}\n",
        );
        let o = env.run(
            &whole,
            &busybox(),
            &["-i", &format!("repo={}", env.path("repo/target").display())],
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        assert!(stdout(&o).contains("./debug/app\n"), "{mode}: {}", text(&o));
        // The caller's repository is untouched.
        assert!(env.path("repo/target/debug/app").exists());
        assert!(!env.path("repo/deep/new").exists());
        assert_eq!(
            std::fs::metadata(env.path("repo/deep")).unwrap().uid(),
            1000
        );
        env.assert_clean(&[]);
    }
}

#[test]
fn check_prints_yaml_or_json() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\ninputs: [{name: src, path: .}]\nparams: {N: 42, B: true, S: ((s))}\nrun: {path: make, args: [all]}\ncontainer_limits: {memory: 1GB}\n",
    );
    let o = env.worker(&["check", task.to_str().unwrap(), "-v", "s=text"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "platform: linux
inputs:
- name: src
  path: .
params:
  N: '42'
  B: 'true'
  S: text
run:
  path: make
  args:
  - all
container_limits:
  memory: 1073741824
"
    );
    let o = env.worker(&[
        "check",
        "-c",
        task.to_str().unwrap(),
        "-v",
        "s=text",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["params"]["N"], "42");
    assert_eq!(v["inputs"][0]["path"], ".");
    assert_eq!(v["container_limits"]["memory"], 1073741824u64);
}

/// `check | head -1`: the reader goes away; the worker ends like any filter (SIGPIPE or 0),
/// never with a panic (rc 134).
#[test]
fn closed_pipe_ends_quietly() {
    let env = Env::new();
    let big: String = (0..20000).map(|i| format!("  - arg-{i}\n")).collect();
    let task = env.write(
        "task.yml",
        &format!("platform: linux\nrun:\n  path: echo\n  args:\n{big}"),
    );
    for args in [
        vec!["check".to_string(), task.display().to_string()],
        vec!["images".to_string(), "list".to_string()],
    ] {
        let mut child = env
            .cmd()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        out.read_exact(&mut first).unwrap();
        drop(out);
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let st = child.wait().unwrap();
        assert!(
            st.code() == Some(0) || st.signal() == Some(libc_sigpipe()),
            "{args:?}: {st:?} {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn not_root_is_said_up_front() {
    let env = Env::new();
    let task = env.write("task.yml", "platform: linux\nrun: {path: 'true'}\n");
    // Everything the unprivileged user runs and reads is in the test's own dir.
    std::fs::set_permissions(
        env.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bin = env.path("berth-worker");
    std::fs::copy(worker_bin(), &bin).unwrap();
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .arg("--work-dir")
        .arg(env.work_dir())
        .arg("run")
        .arg(&task)
        .arg("--image")
        .arg(busybox());
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("berth-worker needs root"),
        "{}",
        text(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", text(&o));
    assert!(!env.work_dir().exists(), "the work dir was created");
    // Read-only commands work without root.
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .arg("check")
        .arg(&task);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}
