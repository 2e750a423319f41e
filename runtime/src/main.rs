//! The `berth` command: parse runc's command line and dispatch. Nothing else.

use berth::cli::{self, Cli};
use clap::Parser;

fn main() {
    let cli = Cli::parse_from(cli::normalize_args(std::env::args_os()));
    let code = cli::dispatch(cli);
    std::process::exit(code);
}
