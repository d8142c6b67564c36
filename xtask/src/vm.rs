//! `cargo xtask vm`: boot the guest for a person.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct VmArgs {}

pub fn run(_args: VmArgs) -> Result<ExitCode> {
    anyhow::bail!("the guest harness is not built yet")
}
