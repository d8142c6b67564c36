//! Running child commands and reading cargo's test summaries.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::failures::{self, FailureReader};

/// The workspace root (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The cargo that runs xtask (`CARGO`, set by `cargo run`; `cargo` on the path otherwise), in the
/// workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Mebibytes free for this user on the filesystem holding `path`, if it can be asked.
pub fn free_mib(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize) >> 20)
}

/// Counts of one suite's test cases.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

/// Runs `cargo <args>` (a test command) with output streamed to the terminal and to a log,
/// and adds up every `test result:` line it printed.
///
/// A non-zero exit with no failed test counted (a build error, a crash) counts as one failure,
/// so a broken suite can never look green.
pub fn cargo_test(args: &[&str], envs: &[(&str, &str)]) -> Result<Tally> {
    let mut cmd = cargo();
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run_counting(cmd)
}

/// Environment that every test command of this run gets (the guest calibration, measured once).
static TEST_ENV: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Passes `key=value` to every test command started from now on.
pub fn set_test_env(key: &str, value: &str) {
    TEST_ENV
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key.to_owned(), value.to_owned()));
}

/// Runs a test command, echoing its output, and tallies cargo/libtest summary lines.
pub fn run_counting(mut cmd: Command) -> Result<Tally> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;

    for (k, v) in TEST_ENV.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        cmd.env(k, v);
    }
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut tally = Tally::default();
    let mut failures = FailureReader::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let _ = writeln!(out, "{line}");
        if let Some(t) = parse_test_result(&line) {
            tally.add(t);
        }
        failures.line(&line);
    }
    drop(out);
    failures::record(failures.finish());
    let status = child.wait()?;
    if !status.success() && tally.failed == 0 {
        tally.failed = 1;
        eprintln!(
            "xtask: {shown} exited with {status} without a failed test: counted as one failure"
        );
    }
    Ok(tally)
}

/// Parses libtest's `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
pub fn parse_test_result(line: &str) -> Option<Tally> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let mut tally = Tally::default();
    for part in rest.split(['.', ';']) {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => tally.passed = n,
            "failed" => tally.failed = n,
            "ignored" => tally.ignored = n,
            _ => {}
        }
    }
    Some(tally)
}

/// A cargo for the checks that need unstable compiler flags (sanitizers, cargo-fuzz), in the
/// workspace, free of the variables the outer cargo and rustup set for this process.
///
/// The nightly toolchain when one is installed. Otherwise the toolchain running this command, with
/// `RUSTC_BOOTSTRAP=1` (as the Linux kernel builds its Rust with a stable compiler): its standard
/// library ships the sanitizer runtimes too. No toolchain is ever downloaded for these checks.
pub fn unstable_cargo() -> Command {
    static NIGHTLY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let nightly = *NIGHTLY.get_or_init(|| {
        let mut probe = nightly_cargo();
        probe.arg("--version").env("RUSTUP_AUTO_INSTALL", "0");
        probe.output().is_ok_and(|o| o.status.success())
    });
    if nightly {
        return nightly_cargo();
    }
    let mut cmd = cargo();
    cmd.env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER");
    cmd
}

/// `cargo +nightly`, free of the variables that would pin the outer toolchain (never installs one).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly")
        .current_dir(workspace_root())
        .env("RUSTUP_AUTO_INSTALL", "0");
    for var in [
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs a command to completion and fails with its output if it does not succeed.
pub fn run_checked(mut cmd: Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_summary() {
        let t = parse_test_result(
            "test result: FAILED. 12 passed; 2 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s",
        )
        .unwrap();
        assert_eq!(
            t,
            Tally {
                passed: 12,
                failed: 2,
                ignored: 3
            }
        );
        assert_eq!(parse_test_result("running 3 tests"), None);
    }
}
