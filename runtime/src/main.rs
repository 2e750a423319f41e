//! The `berth` command: parse runc's command line and dispatch. Nothing else.

use berth::cli;

fn main() {
    let cli = cli::parse(cli::normalize_args(std::env::args_os()));
    let code = cli::dispatch(cli);
    std::process::exit(code);
}
