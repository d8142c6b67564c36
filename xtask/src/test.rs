//! `cargo xtask test`: install what is missing, run each suite, print one summary line per suite.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::cmd::{self, Tally};
use crate::failures::{self, Failure};
use crate::install::{self, Mode};
use crate::load::{self, LoadMonitor, LoadSummary};
use crate::suites::{self, Suite};

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Run only the suites whose name contains one of these words (default: all).
    pub only: Vec<String>,
    /// Do not install Debian packages or fetch the guest kernel; the tests that need them fail.
    #[arg(long)]
    pub no_install: bool,
    /// List the Debian packages and the guest kernel this run would install, install nothing, and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// List the suites and exit.
    #[arg(long)]
    pub list: bool,
}

pub fn run(args: TestArgs) -> Result<ExitCode> {
    let run_started = Instant::now();
    let selected: Vec<Suite> = suites::all()
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|w| s.name.contains(w.as_str())))
        .collect();
    if args.list {
        for s in &selected {
            println!("{:<20} {}", s.name, s.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if selected.is_empty() {
        anyhow::bail!(
            "no suite matches {:?}; see `cargo xtask test --list`",
            args.only
        );
    }
    let needs_guest = selected.iter().any(|s| s.needs_guest);
    let needs_rust_kernel = selected.iter().any(|s| suites::needs_rust_kernel(s.name));
    let mode = Mode::from_flags(args.no_install, args.dry_run);
    if !install::ensure_all(needs_guest, needs_rust_kernel, mode)? {
        return Ok(ExitCode::SUCCESS);
    }
    let crashes_before = std::fs::metadata(guest::crash_log()).map_or(0, |m| m.len());
    let monitor = LoadMonitor::start();
    let mut all_load = Vec::new();
    if needs_guest {
        calibrate_guests();
        all_load.extend(monitor.take());
    }

    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for suite in &selected {
        eprintln!("\n===== suite {}: {} =====", suite.name, suite.about);
        let start = Instant::now();
        let tally = (suite.run)().unwrap_or_else(|err| {
            eprintln!("xtask: suite {} could not run: {err:#}", suite.name);
            Tally {
                failed: 1,
                ..Tally::default()
            }
        });
        if tally.failed > 0 {
            warn_if_disk_full();
        }
        let failed_tests = failures::take();
        let samples = monitor.take();
        let load = LoadSummary::of(&samples, load::cores());
        all_load.extend(samples);
        rows.push((suite.name, tally, start.elapsed(), load));
        failed.extend(failed_tests.into_iter().map(|f| (suite.name, f)));
    }
    drop(monitor);

    print_failures(&failed);
    println!("\n===== summary =====");
    let mut total = Tally::default();
    for (name, tally, took, load) in &rows {
        let verdict = if tally.failed == 0 { "ok" } else { "FAILED" };
        let load = load.map_or_else(String::new, |l| format!(", load {:.1}", l.median));
        println!(
            "suite {name:<16} {verdict:<6} {:>5} passed, {:>3} failed, {:>3} ignored  ({:.1} s wall{load})",
            tally.passed,
            tally.failed,
            tally.ignored,
            took.as_secs_f64()
        );
        total.add(*tally);
    }
    println!(
        "{} passed, {} failed in {:.1} s",
        total.passed,
        total.failed,
        run_started.elapsed().as_secs_f64()
    );
    let cores = load::cores();
    if let Some(load) = LoadSummary::of(&all_load, cores).filter(LoadSummary::overloaded) {
        println!("{}", load.warning(cores));
    }
    print_qemu_crashes(crashes_before);
    Ok(if total.failed == 0 && total.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Lists the guest runs that QEMU (the real one, not a test's stand-in) crashed in since the crash
/// log was `before` bytes long: each was run again, and may have passed, so only this says so.
fn print_qemu_crashes(before: u64) {
    let Ok(log) = std::fs::read(guest::crash_log()) else {
        return;
    };
    let new = String::from_utf8_lossy(log.get(before as usize..).unwrap_or_default());
    let real = format!(" qemu={} ", guest::QEMU);
    let crashes: Vec<&str> = new.lines().filter(|l| l.contains(&real)).collect();
    if !crashes.is_empty() {
        println!(
            "QEMU crashed in {} guest run(s), each run again once ({}):",
            crashes.len(),
            guest::crash_log().display()
        );
        for line in crashes {
            println!("  {line}");
        }
    }
}

/// Names each failed test under the table, with the end of what it printed, so the bottom of a long
/// log is enough to see what failed.
fn print_failures(failed: &[(&str, Failure)]) {
    if failed.is_empty() {
        return;
    }
    println!("\n===== failed tests =====");
    for (suite, failure) in failed {
        println!("suite {suite}: {}", failure.name);
        for line in &failure.excerpt {
            println!("    {line}");
        }
    }
}

/// Measures how much slower than a quiet machine guests boot now, once for the whole run, and hands the
/// factor to every test process: their guests' limits grow with it. A failed measurement is reported and
/// left to the tests (each then measures for itself and reports what is missing).
fn calibrate_guests() {
    match guest::calibrate() {
        Ok(calibration) => {
            eprintln!("xtask: guest calibration: {}", calibration.describe());
            cmd::set_test_env(guest::SLOWDOWN_ENV, &format!("{:.3}", calibration.slowdown));
        }
        Err(err) => eprintln!("xtask: guest calibration failed, each test will try again: {err}"),
    }
}

/// Below this, builds and guest images start failing with errors that do not say why.
const LOW_DISK_MIB: u64 = 512;

/// Names a full disk as the likely cause of a failed suite: cargo and rustc report it in the
/// middle of other output, and later suites then fail in the same way.
fn warn_if_disk_full() {
    let target = cmd::target_dir();
    let probe = if target.exists() {
        target
    } else {
        cmd::workspace_root()
    };
    if let Some(free) = cmd::free_mib(&probe).filter(|&mib| mib < LOW_DISK_MIB) {
        eprintln!(
            "xtask: only {free} MiB are free on the disk holding {}: this failure may be a full \
             disk; a run from a clean tree needs about 3 GiB",
            probe.display()
        );
    }
}
