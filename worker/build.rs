//! Compiles `init/berth-init.c`, the static PID 1 bind-mounted into task containers, and
//! hands its path to the crate (`BERTH_INIT_BIN`) for `include_bytes!`.
//!
//! Static linking makes it run in any image (busybox has no libc at all). musl-gcc gives a
//! ~20 KB binary; plain `gcc -static` (glibc) works too and is the fallback.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "init/berth-init.c";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("berth-init");
    let mut errors = Vec::new();
    for cc in ["musl-gcc", "cc", "gcc"] {
        match Command::new(cc)
            .args(["-static", "-Os", "-s", "-Wall", "-o"])
            .arg(&out)
            .arg(src)
            .status()
        {
            Ok(s) if s.success() => {
                println!("cargo:rustc-env=BERTH_INIT_BIN={}", out.display());
                return;
            }
            Ok(s) => errors.push(format!("{cc}: {s}")),
            Err(e) => errors.push(format!("{cc}: {e}")),
        }
    }
    panic!(
        "building {src} as a static binary failed ({}); install musl-tools or libc6-dev",
        errors.join("; ")
    );
}
