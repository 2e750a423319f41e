//! Temporary driver for `berth seccomp …` until the lead wires
//! `berth::seccomp::cli::SeccompCmd` into main.rs:
//! `cargo run --example seccomp -- explain profiles/default.json clone3`.

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: berth::seccomp::cli::SeccompCmd,
}

fn main() {
    match berth::seccomp::cli::run(Args::parse().cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("berth seccomp: {e:#}");
            std::process::exit(1)
        }
    }
}
