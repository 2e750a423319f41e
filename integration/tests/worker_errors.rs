//! Bad task files and bad command lines give clear errors naming the field (and line).

mod worker_common;

use worker_common::*;

fn run_err(env: &Env, task_text: &str, extra: &[&str]) -> String {
    let task = env.write("task.yml", task_text);
    let o = env.run(&task, &busybox(), extra);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    stderr(&o)
}

#[test]
fn bad_task_files_name_the_field_and_line() {
    let env = Env::new();
    let cases: &[(&str, &str)] = &[
        (
            "platform: linux\nouputs: []\nrun: {path: x}\n",
            "task.yml:2: unknown fields: [ouputs]",
        ),
        (
            "platform: linux\nrun:\n  path: x\n  agrs: []\n",
            "task.yml:4: run: unknown fields: [agrs]",
        ),
        ("run: {path: x}\n", "task.yml: platform: required"),
        (
            "platform: linux\ninputs:\n- path: a\nrun: {path: x}\n",
            "task.yml:3: inputs[0].name: required",
        ),
        (
            "platform: linux\ncontainer_limits:\n  cpu: lots\nrun: {path: x}\n",
            "task.yml:3: container_limits.cpu: cpu limit must be an integer",
        ),
        (
            "platform: linux\ncontainer_limits:\n  memory: 1TB\nrun: {path: x}\n",
            "task.yml:3: container_limits.memory: invalid memory limit",
        ),
        (
            "platform: linux\nrun:\n  path: x\n  args: notalist\n",
            "task.yml:4: run.args: invalid type",
        ),
        (
            "platform: windows\nrun: {path: x}\n",
            "task.yml:1: platform: berth runs linux tasks",
        ),
        ("platform: [\n", "task.yml:"),
    ];
    for (src, want) in cases {
        let e = run_err(&env, src, &[]);
        assert!(e.contains(want), "task:\n{src}\nwant {want:?} in:\n{e}");
    }
}

#[test]
fn empty_run_path_without_entrypoint_is_an_error() {
    let env = Env::new();
    let e = run_err(&env, "platform: linux\nrun: {args: [x]}\n", &[]);
    assert!(e.contains("run.path: required"), "{e}");
    env.assert_clean(&[]);
}

#[test]
fn missing_inputs_and_unknown_names_are_errors() {
    let env = Env::new();
    let e = run_err(
        &env,
        "platform: linux\ninputs: [{name: src}]\nrun: {path: 'true'}\n",
        &[],
    );
    assert!(
        e.contains("inputs[0] (src): missing input; pass -i src=DIR"),
        "{e}"
    );
    let e = run_err(
        &env,
        "platform: linux\nrun: {path: 'true'}\n",
        &["-i", "nope=/tmp"],
    );
    assert!(e.contains("the task has no input named \"nope\""), "{e}");
    let e = run_err(
        &env,
        "platform: linux\nrun: {path: 'true'}\n",
        &["-o", "nope=/tmp/x"],
    );
    assert!(e.contains("the task has no output named \"nope\""), "{e}");
    env.assert_clean(&[]);
}

#[test]
fn missing_executable_and_bad_user() {
    let env = Env::new();
    let task = env.write(
        "task.yml",
        "platform: linux\nrun: {path: /no/such/program}\n",
    );
    let o = env.run(&task, &busybox(), &[]);
    assert_eq!(o.status.code(), Some(127), "{}", text(&o));
    assert!(stderr(&o).contains("/no/such/program"), "{}", text(&o));
    let e = run_err(
        &env,
        "platform: linux\nrun: {path: 'true', user: ghost}\n",
        &[],
    );
    assert!(e.contains("run.user: user \"ghost\" not found"), "{e}");
    env.assert_clean(&[]);
}

#[test]
fn image_resource_not_in_store_is_explained() {
    let env = Env::new();
    // A registry on a closed loopback port: the pull fails at once and never leaves the host.
    let task = env.write("task.yml", "platform: linux\nimage_resource: {type: registry-image, source: {repository: 127.0.0.1:9/nothere}}\nrun: {path: 'true'}\n");
    let o = env.worker(&["run", task.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains("image_resource: pulling 127.0.0.1:9/nothere failed"),
        "{}",
        text(&o)
    );
    assert!(
        e.contains("berth-worker images import PATH --name 127.0.0.1:9/nothere:latest"),
        "{}",
        text(&o)
    );
}
