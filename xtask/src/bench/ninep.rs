//! `cargo xtask bench` for the `ninep` area.

use std::process::ExitCode;

use anyhow::Result;

pub fn run(_args: &[String]) -> Result<ExitCode> {
    anyhow::bail!("this benchmark is not written yet")
}
