//! `cargo test --workspace`: unit, integration and doc tests of every crate (no guest).

use anyhow::Result;

use super::Suite;
use crate::cmd::{Tally, cargo_test};

pub fn suites() -> Vec<Suite> {
    vec![Suite {
        name: "workspace",
        about: "cargo test --workspace (unit, integration and doc tests; no guest)",
        needs_guest: false,
        run: run_workspace,
    }]
}

fn run_workspace() -> Result<Tally> {
    // Doc tests are a separate pass: `--all-targets` skips them.
    let mut tally = cargo_test(&["test", "--workspace", "--all-targets"], &[])?;
    tally.add(cargo_test(&["test", "--workspace", "--doc"], &[])?);
    // ninepd's sandbox tests make it misbehave through a hook only this feature builds in.
    tally.add(cargo_test(
        &[
            "test",
            "-p",
            "ninep-server",
            "--features",
            "test-hooks",
            "--test",
            "sandbox",
        ],
        &[],
    )?);
    Ok(tally)
}
