//! Many short `berth run`s in parallel must all succeed: races between init
//! writing exec.fifo and exiting, and `start` checking on it, showed up as
//! about 1 failure in 1,200 runs under load. Three loops of
//! `$BERTH_STRESS_RUNS` runs each (200 in `make test`, 1,000 in `make stress`, 200 /
//! `$BERTH_TEST_TIME_SCALE` in the kernel matrix's emulated VMs),
//! half of them under the default seccomp profile.

use std::time::Instant;

use berth_integration::{Bundle, Container, Runtime, Spawned};

const LOOPS: usize = 3;

fn runs_per_loop() -> usize {
    std::env::var("BERTH_STRESS_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        // A race shows as a failure in any number of runs, only less often in fewer:
        // the emulated kernel matrix runs 200 / $BERTH_TEST_TIME_SCALE.
        .unwrap_or_else(|| berth_integration::scaled_count(200))
}

/// Berth's default seccomp profile.
fn default_profile() -> serde_json::Value {
    let path = berth_integration::workspace_dir().join("profiles/default.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("profile is JSON")
}

/// A bundle for `echo out`, with `seccomp` as its profile.
fn bundle(seccomp: Option<&serde_json::Value>) -> Bundle {
    Bundle::busybox().args(&["echo", "out"]).with(|c| {
        if let Some(p) = seccomp {
            c["linux"]["seccomp"] = p.clone();
        }
    })
}

#[test]
fn parallel_short_runs_never_fail() {
    let n = runs_per_loop();
    let rt = Runtime::new();
    let profile = default_profile();
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..LOOPS)
            .map(|l| {
                let (rt, profile) = (rt.clone(), &profile);
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for i in 0..n {
                        let c = Container::new(
                            &rt,
                            bundle((i % 2 == 1).then_some(profile)),
                            &format!("stress{l}"),
                        );
                        let out = c.run();
                        if !out.success() || out.stdout != "out\n" {
                            failed.push(format!("loop {l} run {i}:\n{out}"));
                        }
                        let left = c.leftovers();
                        if !left.is_empty() {
                            failed.push(format!("loop {l} run {i} left {:?}", left.lines()));
                        }
                    }
                    failed
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a stress loop panicked"))
            .collect()
    });
    println!(
        "{LOOPS} x {n} runs in {:.1} s, {} failure(s)",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        LOOPS * n,
        failures.join("\n")
    );
}

/// Stage 1 descheduled between forking init and reporting init's pid (forced
/// with `$BERTH_TEST_STAGE1_STALL_MS`, read only by stage 1): init must not get
/// ahead of it, or the runtime reads init's `created` before it knows init and
/// `start` fails with "cannot start a container that has stopped (no init
/// process was recorded)" — the rare stress failure, every time.
#[test]
fn init_waits_until_stage_1_has_reported_it() {
    let rt = Runtime::new();
    for seccomp in [None, Some(default_profile())] {
        let c = Container::new(&rt, bundle(seccomp.as_ref()), "stall");
        let b = c.bundle().path_str();
        let mut cmd = c.command(&["run", "--bundle", b.as_str(), c.id()]);
        cmd.env("BERTH_TEST_STAGE1_STALL_MS", "300");
        let out = Spawned::start(cmd).wait();
        assert!(out.success() && out.stdout == "out\n", "{out}");
        c.assert_no_leftovers();
    }
}
