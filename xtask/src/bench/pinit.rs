//! `cargo xtask bench pinit`: `pinit` against `pinned-init` 0.0.10 and `Box::new` / `Box::new_zeroed`, in
//! the same run, in debug and release builds.
//!
//! * zeroing a 1 GiB struct into a `Box`: median time and peak RSS growth (one 1 GiB value at a time);
//! * the smallest thread stack (power of two) that builds a 16 MiB struct into a `Box`;
//! * `cargo xtask bench pinit build`: cold build time of each library (fresh target directories).
//!
//! The measurements run in `crates/pinit/examples/bench_zeroing.rs`, one process per sample.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, target_dir, workspace_root};

const GIB_CASES: &[&str] = &[
    "pinit-zeroed",
    "pinit-initialiser",
    "pinned-init-zeroed",
    "box-new-zeroed",
    "box-new",
];
const STACK_CASES: &[&str] = &[
    "pinit-zeroed",
    "pinit-repeat",
    "pinit-initialiser",
    "pinned-init-zeroed",
    "pinned-init-repeat",
    "box-new-zeroed",
    "box-new",
];
const PROFILES: &[(&str, &str)] = &[("debug", "dev"), ("release", "release")];
const SAMPLES: usize = 5;

pub fn run(args: &[String]) -> Result<ExitCode> {
    match args.first().map(String::as_str) {
        None => zeroing(),
        Some("build") => build_times(),
        Some(other) => bail!("unknown `bench pinit` mode {other:?}: expected nothing or `build`"),
    }
}

/// Builds the measuring example for a profile and returns its path.
fn build_example(dir: &str, profile: &str) -> Result<PathBuf> {
    let status = cargo()
        .args([
            "build",
            "-p",
            "pinit",
            "--example",
            "bench_zeroing",
            "--profile",
            profile,
        ])
        .status()
        .context("building the benchmark")?;
    if !status.success() {
        bail!("building the benchmark ({profile}) failed");
    }
    Ok(target_dir().join(dir).join("examples/bench_zeroing"))
}

/// One `measure` sample: (time, peak RSS growth in KiB).
fn measure(binary: &Path, case: &str) -> Result<(Duration, u64)> {
    let out = Command::new(binary)
        .args(["measure", case])
        .output()
        .with_context(|| format!("running {case}"))?;
    if !out.status.success() {
        bail!("{case} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let nanos: u64 = words.next().context("no time")?.parse()?;
    let kib: u64 = words.next().context("no RSS")?.parse()?;
    Ok((Duration::from_nanos(nanos), kib))
}

/// The smallest power-of-two stack (16 KiB .. 64 MiB) that builds the 16 MiB case, if any.
fn smallest_stack(binary: &Path, case: &str) -> Option<usize> {
    (14..=26).map(|shift| 1usize << shift).find(|&bytes| {
        Command::new(binary)
            .args(["stack", case, &bytes.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn show_time(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

fn show_kib(kib: u64) -> String {
    if kib < 10 * 1024 {
        format!("{kib} KiB")
    } else {
        format!("{:.0} MiB", kib as f64 / 1024.0)
    }
}

fn zeroing() -> Result<ExitCode> {
    let mut binaries = Vec::new();
    for (dir, profile) in PROFILES {
        binaries.push((*dir, build_example(dir, profile)?));
    }
    println!(
        "\nZeroing a 1 GiB struct into a Box (median of {SAMPLES} processes; RSS = peak growth)\n"
    );
    println!("| case | debug time | debug RSS | release time | release RSS |");
    println!("|---|---|---|---|---|");
    let mut goal_met = true;
    for case in GIB_CASES {
        let mut cells = Vec::new();
        for (_, binary) in &binaries {
            let mut times = Vec::new();
            let mut rss = Vec::new();
            for _ in 0..SAMPLES {
                match measure(binary, case) {
                    Ok((t, kib)) => {
                        times.push(t);
                        rss.push(kib);
                    }
                    Err(err) => {
                        eprintln!("bench: {err:#}");
                        break;
                    }
                }
            }
            if times.len() < SAMPLES {
                goal_met &= *case != "pinit-zeroed";
                cells.push("failed | -".into());
                continue;
            }
            let (t, kib) = (median(times), median(rss));
            if *case == "pinit-zeroed" {
                goal_met &= t <= Duration::from_millis(1) && kib <= 4 * 1024;
            }
            cells.push(format!("{} | {}", show_time(t), show_kib(kib)));
        }
        println!("| {case} | {} |", cells.join(" | "));
    }
    println!("\nSmallest power-of-two thread stack that builds a 16 MiB struct into a Box\n");
    println!("| case | debug | release |");
    println!("|---|---|---|");
    for case in STACK_CASES {
        let cells: Vec<String> = binaries
            .iter()
            .map(|(_, b)| match smallest_stack(b, case) {
                Some(bytes) => show_kib(bytes as u64 / 1024),
                None => "> 64 MiB".into(),
            })
            .collect();
        println!("| {case} | {} |", cells.join(" | "));
    }
    println!(
        "\ngoal (pinit-zeroed: at most 1 ms and 4 MiB in both profiles): {}",
        if goal_met { "met" } else { "NOT met" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Cold-builds a throwaway library crate depending only on `dependency`, in a fresh directory (so that
/// the dependency's own features are the ones a stable user picks), and returns the wall time.
fn cold_build(name: &str, dependency: &str, scratch: &Path) -> Result<Duration> {
    let dir = scratch.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}-build\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [dependencies]\n{dependency}\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(dir.join("src/lib.rs"), "")?;
    // Resolve (and fetch) first, so that only compilation is timed.
    let status = cargo()
        .args(["generate-lockfile", "--offline"])
        .current_dir(&dir)
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("resolving {name} failed (is it in the local registry cache?)");
    }
    let start = Instant::now();
    let status = cargo()
        .args(["build", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("building {name}"))?;
    let took = start.elapsed();
    if !status.success() {
        bail!("building {name} failed");
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(took)
}

fn build_times() -> Result<ExitCode> {
    let scratch = target_dir().join("pinit-build-times");
    let pinit = workspace_root().join("crates/pinit");
    let ours = format!("pinit = {{ path = {:?} }}", pinit.display().to_string());
    // `pinned-init`'s default features need nightly; stable users build it with `std` only.
    let peer =
        "pinned-init = { version = \"=0.0.10\", default-features = false, features = [\"std\"] }";
    println!("\nCold debug build (fresh target directory, dependencies included, median of 3)\n");
    println!("| library | build time |");
    println!("|---|---|");
    for (name, dependency) in [("pinit", ours.as_str()), ("pinned-init", peer)] {
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(cold_build(name, dependency, &scratch)?);
        }
        println!("| {name} | {:.2} s |", median(times).as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}
