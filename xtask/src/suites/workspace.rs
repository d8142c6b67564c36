//! The whole workspace: formatting and lints, then `cargo test --workspace` (unit, integration
//! and doc tests of every crate, no guest) and the top README's commands on a fresh clone.

use std::process::Command;

use anyhow::Result;

use super::Suite;
use crate::cmd::{Tally, cargo_test, run_checked, workspace_root};

pub fn suites() -> Vec<Suite> {
    vec![
        Suite {
            name: "lint",
            about: "cargo fmt --check, rustfmt --check of the kernel modules and cargo clippy --workspace --all-targets -D warnings",
            needs_guest: false,
            run: run_lint,
        },
        Suite {
            name: "workspace",
            about: "cargo test --workspace (unit, integration and doc tests; no guest), the README's commands on a fresh clone",
            needs_guest: false,
            run: run_workspace,
        },
    ]
}

/// Formatting and lints as a suite of their own, after the installer: building the workspace
/// needs packages it installs (libclang for nvme-ublk's generated bindings), so a fresh machine
/// could not lint before it.
fn run_lint() -> Result<Tally> {
    let steps: [&[&str]; 2] = [
        &["fmt", "--all", "--", "--check"],
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ];
    let mut commands: Vec<Command> = steps
        .iter()
        .map(|args| {
            let mut cmd = crate::cmd::cargo();
            cmd.args(*args);
            cmd
        })
        .collect();
    commands.push(kernel_rustfmt()?);
    let mut tally = Tally::default();
    for cmd in commands {
        match run_checked(cmd) {
            Ok(()) => tally.passed += 1,
            Err(e) => {
                eprintln!("xtask: {e:#}");
                tally.failed += 1;
            }
        }
    }
    Ok(tally)
}

/// `rustfmt --check` of the kernel modules' sources, which `cargo fmt` does not reach (Kbuild
/// builds them): parsed in the kernel's edition (2021), laid out in the workspace's style (2024),
/// since `cargo fmt` also formats `rnvme/nvme_spec.rs` through the host tests that include it.
/// Links are left out: they point into workspace crates, which `cargo fmt` checks.
fn kernel_rustfmt() -> Result<Command> {
    let mut files = Vec::new();
    let mut dirs = vec![workspace_root().join("kernel")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut cmd = Command::new("rustfmt");
    cmd.args(["--check", "--edition", "2021", "--style-edition", "2024"])
        .args(files);
    Ok(cmd)
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
    // The top README's first two commands, taken from its text and run on a fresh clone (which
    // builds in `<target>/readme-clone`: minutes the first time, seconds after), and what Debian
    // 12's own cargo says of the workspace.
    tally.add(cargo_test(
        &[
            "test",
            "-p",
            "xtask",
            "--test",
            "readme_commands",
            "--test",
            "old_toolchain",
            "--",
            "--ignored",
        ],
        &[],
    )?);
    Ok(tally)
}
