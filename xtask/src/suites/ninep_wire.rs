//! Suites of the `ninep` wire-format crate: a short `cargo fuzz` run of the frame decoder.
//! (Its unit, round-trip and property tests run in the `workspace` suite.)

use std::process::Command;

use anyhow::{Context, Result};

use super::Suite;
use crate::cmd::{Tally, run_checked, unstable_cargo, workspace_root};

/// How long the fuzzer runs; a crash within it fails the suite.
const FUZZ_SECONDS: u32 = 45;

pub fn suites() -> Vec<Suite> {
    vec![Suite {
        name: "ninep-fuzz",
        about: "cargo fuzz run decode on the ninep frame decoder (45 s); a crash is a failure",
        needs_guest: false,
        run: run_fuzz,
    }]
}

fn succeeds(mut cmd: Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// Installs cargo-fuzz (from cargo's registry) when a fresh machine lacks it.
fn ensure_fuzz_tools() -> Result<()> {
    let mut fuzz = unstable_cargo();
    fuzz.args(["fuzz", "--version"]);
    if !succeeds(fuzz) {
        let mut install = Command::new("cargo");
        install.args(["install", "cargo-fuzz", "--locked"]);
        install.env_remove("CARGO_TARGET_DIR");
        run_checked(install).context("installing cargo-fuzz")?;
    }
    Ok(())
}

fn run_fuzz() -> Result<Tally> {
    ensure_fuzz_tools()?;
    let root = workspace_root();
    let fuzz_dir = root.join("crates/ninep/fuzz");
    let corpus = fuzz_dir.join("corpus/decode");

    // Seed the corpus with one valid frame of every message so the fuzzer starts deep.
    let mut seeds = crate::cmd::cargo();
    seeds
        .args([
            "run",
            "--quiet",
            "-p",
            "ninep",
            "--example",
            "fuzz_seeds",
            "--",
        ])
        .arg(&corpus);
    run_checked(seeds).context("writing the fuzz seed corpus")?;

    let mut fuzz = unstable_cargo();
    fuzz.args(["fuzz", "run", "--fuzz-dir"])
        .arg(&fuzz_dir)
        .args(["decode", "--"])
        .arg(format!("-max_total_time={FUZZ_SECONDS}"));
    eprintln!("xtask: running {fuzz:?}");
    let status = fuzz.status().context("starting cargo fuzz")?;
    Ok(if status.success() {
        Tally {
            passed: 1,
            ..Tally::default()
        }
    } else {
        eprintln!(
            "xtask: cargo fuzz failed ({status}); the crashing input is under {}",
            fuzz_dir.join("artifacts/decode").display()
        );
        Tally {
            failed: 1,
            ..Tally::default()
        }
    })
}
