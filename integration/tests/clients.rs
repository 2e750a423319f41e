//! berth under real clients: podman `--runtime`, containerd's shim via
//! `ctr run --runc-binary`, dockerd `--add-runtime`. Each scenario is a
//! script in `integration/clients/` (run it by hand to see every step);
//! a client that is not installed is reported as skipped by its script.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_script(name: &str) {
    let repo = repo();
    let bin = std::env::var("BERTH_BIN")
        .unwrap_or_else(|_| repo.join("target/release/berth").display().to_string());
    let fixtures = std::env::var("BERTH_FIXTURES")
        .unwrap_or_else(|_| repo.join("build").display().to_string());
    let out = Command::new("bash")
        .arg(repo.join("integration/clients").join(name))
        .env("BERTH_BIN", &bin)
        .env("BERTH_FIXTURES", &fixtures)
        .output()
        .expect("running the client script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed:\n{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        last.ends_with("all passed") || last.ends_with("skipped"),
        "{name}: unexpected ending:\n{text}"
    );
}

#[test]
fn podman_runs_berth() {
    run_script("podman.sh");
}

#[test]
fn containerd_shim_runs_berth() {
    run_script("containerd.sh");
}

#[test]
fn dockerd_runs_berth() {
    run_script("docker.sh");
}
