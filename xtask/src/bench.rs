//! `cargo xtask bench`: benchmarks against a peer in the same run.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to benchmark: pinit, 9p or nvme.
    pub what: String,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    anyhow::bail!("no benchmark named {:?} yet", args.what)
}
