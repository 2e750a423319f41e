//! Crash safety (berth goes beyond runc and crun here, which leak cgroup dirs): after
//! `kill -9` of `create` or `delete` at any point, `list` shows whatever exists of
//! the container and `delete --force` removes all of it.
//!
//! The kill points are pseudo-random delays of 0–50 ms after spawning the runtime.
//! Each run prints its seed; set `BERTH_CRASH_SEED` to replay one.

use std::time::Duration;

use berth_integration::{Bundle, Container, Runtime};

/// A tiny xorshift generator: enough to spread kill points, replayable by seed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock(test: &str) -> Rng {
        let seed = std::env::var("BERTH_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                now.as_nanos() as u64 | 1
            });
        println!("{test}: BERTH_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// After the runtime was killed: whatever exists must be listed, and
/// `delete --force` must leave nothing.
#[track_caller]
fn assert_recoverable(c: &Container, when: &str) {
    let before = c.leftovers();
    if !before.is_empty() {
        let list = c.invoke(&["list", "-q"]);
        list.assert_ok();
        assert!(
            list.stdout.lines().any(|l| l == c.id()),
            "{when}: the container left {:?} but `list` does not show it:\n{list}",
            before.lines()
        );
    }
    let out = c.delete_force();
    assert!(
        out.success(),
        "{when}: delete --force after the crash:\n{out}"
    );
    let after = c.leftovers();
    assert!(
        after.is_empty(),
        "{when}: delete --force left (before it: {:?}):\n  {}",
        before.lines(),
        after.lines().join("\n  ")
    );
}

#[test]
fn kill_9_of_create_at_random_points() {
    let rt = Runtime::new();
    let mut rng = Rng::from_env_or_clock("kill_9_of_create_at_random_points");
    // Always the two ends: killed at once, and killed after create returned.
    let mut delays: Vec<u64> = vec![0, 200];
    delays.extend((0..10).map(|_| rng.below(51)));
    for delay in delays {
        let c = Container::new(
            &rt,
            Bundle::busybox().args(&["sleep", "100"]),
            "crash_create",
        );
        let create = c.spawn_create();
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(create.pid(), libc::SIGKILL) };
        let _ = create.wait();
        assert_recoverable(&c, &format!("create killed after {delay} ms"));
    }
}

#[test]
fn kill_9_of_create_with_a_user_namespace() {
    // More steps (id maps, a second sync round) means more places to be killed in.
    let rt = Runtime::new();
    let mut rng = Rng::from_env_or_clock("kill_9_of_create_with_a_user_namespace");
    for _ in 0..6 {
        let delay = rng.below(51);
        let bundle = Bundle::busybox().args(&["sleep", "100"]).with(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({ "type": "user" }));
            let map = serde_json::json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
            c["linux"]["uidMappings"] = map.clone();
            c["linux"]["gidMappings"] = map;
        });
        let c = Container::new(&rt, bundle, "crash_userns");
        let create = c.spawn_create();
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(create.pid(), libc::SIGKILL) };
        let _ = create.wait();
        assert_recoverable(&c, &format!("userns create killed after {delay} ms"));
    }
}

#[test]
fn kill_9_of_delete_at_random_points() {
    let rt = Runtime::new();
    let mut rng = Rng::from_env_or_clock("kill_9_of_delete_at_random_points");
    for _ in 0..6 {
        let delay = rng.below(21);
        let c = Container::new(
            &rt,
            Bundle::busybox().args(&["sleep", "100"]),
            "crash_delete",
        );
        c.create_and_start();
        let delete = berth_integration::Spawned::start(c.command(&["delete", "--force", c.id()]));
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(delete.pid(), libc::SIGKILL) };
        let _ = delete.wait();
        assert_recoverable(&c, &format!("delete killed after {delay} ms"));
    }
}

#[test]
fn kill_9_of_start_then_delete_force() {
    let rt = Runtime::new();
    let mut rng = Rng::from_env_or_clock("kill_9_of_start_then_delete_force");
    for _ in 0..4 {
        let delay = rng.below(11);
        let c = Container::new(
            &rt,
            Bundle::busybox().args(&["sleep", "100"]),
            "crash_start",
        );
        c.create().assert_ok();
        let start = berth_integration::Spawned::start(c.command(&["start", c.id()]));
        std::thread::sleep(Duration::from_millis(delay));
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(start.pid(), libc::SIGKILL) };
        let _ = start.wait();
        // Whatever the start got to, the container is listed (it was created).
        let list = c.invoke(&["list", "-q"]);
        assert!(list.stdout.lines().any(|l| l == c.id()), "{list}");
        assert_recoverable(&c, &format!("start killed after {delay} ms"));
    }
}
