//! Profile build time, for `make bench`: cold compile of the default profile
//! versus a cache hit. `cargo run --release --example seccomp_bench`.

use std::time::Instant;

fn main() {
    let ctx = berth::seccomp::Context::default();
    let profile = berth::seccomp::default_profile();
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        let p = berth::seccomp::compile(&profile, &ctx).unwrap().unwrap();
        std::hint::black_box(p);
    }
    let per = t.elapsed() / n;
    println!("compile default profile (cold, in-process): {per:?} per build");
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(berth::seccomp::default_profile());
    }
    println!("parse+resolve default.json: {:?}", t.elapsed() / n);
    let dir = std::env::temp_dir().join(format!("berth-seccomp-bench-{}", std::process::id()));
    let cached = berth::seccomp::Context {
        cache_dir: Some(dir.clone()),
        ..Default::default()
    };
    berth::seccomp::compile(&profile, &cached).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(berth::seccomp::compile(&profile, &cached).unwrap());
    }
    println!(
        "compile default profile (cache hit): {:?} per build",
        t.elapsed() / n
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(berth::seccomp::profile::check(&profile, ""));
    }
    println!("check: {:?}", t.elapsed() / n);
    let archs = [
        libseccomp::ScmpArch::X8664,
        libseccomp::ScmpArch::X86,
        libseccomp::ScmpArch::X32,
    ];
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(berth::seccomp::enosys::find_maxima(
            &archs,
            profile
                .syscalls
                .iter()
                .flat_map(|s| s.names.iter().map(String::as_str)),
        ));
    }
    println!("maxima: {:?}", t.elapsed() / n);
}
