//! `berth seccomp …` (placeholder until the seccomp tools land).
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SeccompCmd {
    /// Check a profile.
    Lint { profile: PathBuf },
}

pub fn run(_c: SeccompCmd) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
