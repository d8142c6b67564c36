//! Suites of the `pinit` area: its tests under AddressSanitizer, LeakSanitizer and valgrind memcheck.
//! (Its ordinary unit, integration, trybuild and doc tests run in the `workspace` suite.)
//!
//! Sanitizer builds pass `--target x86_64-unknown-linux-gnu` so that the proc-macro crate (built for the
//! host) is not instrumented, and use their own target directories so that flags never mix.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::Suite;
use crate::cmd::{self, Tally, run_checked, run_counting, unstable_cargo, workspace_root};

/// The runtime test targets of `pinit`: library, integration tests and the examples (which run as tests).
/// The trybuild suite only compiles code, so it is no memory test.
const TEST_TARGETS: &[&str] = &[
    "--lib",
    "--test",
    "fields",
    "--test",
    "containers",
    "--test",
    "stack",
    "--test",
    "enums",
    "--test",
    "unwind",
    "--test",
    "soundness",
    "--test",
    "upstream",
    "--test",
    "migration",
    "--examples",
];

const HOST: &str = "x86_64-unknown-linux-gnu";

pub fn suites() -> Vec<Suite> {
    vec![
        Suite {
            name: "pinit-asan",
            about: "pinit tests under AddressSanitizer (-Zsanitizer=address)",
            needs_guest: false,
            run: || sanitized("address"),
        },
        Suite {
            name: "pinit-lsan",
            about: "pinit tests under LeakSanitizer (-Zsanitizer=leak)",
            needs_guest: false,
            run: || sanitized("leak"),
        },
        Suite {
            name: "pinit-no-std",
            about: "pinit without std: the library with no default features, and a no_std + alloc consumer crate",
            needs_guest: false,
            run: no_std,
        },
        Suite {
            name: "pinit-package",
            about: "pinit's docs with -D warnings (all and no default features) and cargo publish --dry-run of pinit-macros and pinit",
            needs_guest: false,
            run: package,
        },
        Suite {
            name: "pinit-valgrind",
            about: "pinit test binaries under valgrind memcheck (leaks and invalid accesses are errors)",
            needs_guest: false,
            run: valgrind,
        },
    ]
}

/// Where this area's extra builds go: below the caller's target directory, apart from normal builds.
fn target_dir(flavour: &str) -> PathBuf {
    cmd::target_dir().join(format!("pinit-{flavour}"))
}

fn sanitized(sanitizer: &str) -> Result<Tally> {
    let mut cmd = unstable_cargo();
    cmd.args(["test", "-p", "pinit", "--target", HOST])
        .args(TEST_TARGETS)
        .env("CARGO_TARGET_DIR", target_dir(sanitizer))
        .env(
            "RUSTFLAGS",
            format!("-Zsanitizer={sanitizer} -Cdebug-assertions=on"),
        )
        // One test asks for 64 TiB and expects an `AllocError`, not a sanitizer abort.
        .env("ASAN_OPTIONS", "detect_leaks=1:allocator_may_return_null=1")
        .env("LSAN_OPTIONS", "allocator_may_return_null=1")
        .args(["--", "--test-threads=1"]);
    run_counting(cmd)
}

/// Builds `pinit` without default features (core only) and with `alloc` only, then the `no_std` consumer
/// crate in `crates/pinit/tests/no_std-consumer` (its own workspace), each a passed or failed check.
fn no_std() -> Result<Tally> {
    let root = workspace_root();
    let consumer = root.join("crates/pinit/tests/no_std-consumer/Cargo.toml");
    let builds: [&[&str]; 3] = [
        &["build", "-p", "pinit", "--no-default-features"],
        &[
            "build",
            "-p",
            "pinit",
            "--no-default-features",
            "--features",
            "alloc",
        ],
        &["build", "--manifest-path"],
    ];
    let mut tally = Tally::default();
    for args in builds {
        let mut build = cmd::cargo();
        build
            .args(args)
            .env("CARGO_TARGET_DIR", target_dir("no-std"));
        if args.last() == Some(&"--manifest-path") {
            build.arg(&consumer);
        }
        run_checked(build)?;
        tally.passed += 1;
    }
    Ok(tally)
}

/// What a release needs: documentation without warnings, in both feature sets, and both crates packaged and
/// verified together (`pinit` against the locally packaged `pinit-macros`), each a passed or failed check.
fn package() -> Result<Tally> {
    let runs: [&[&str]; 3] = [
        &[
            "doc",
            "-p",
            "pinit",
            "-p",
            "pinit-macros",
            "--no-deps",
            "--all-features",
        ],
        &["doc", "-p", "pinit", "--no-deps", "--no-default-features"],
        &[
            "publish",
            "--dry-run",
            "--allow-dirty",
            "-p",
            "pinit-macros",
            "-p",
            "pinit",
        ],
    ];
    let mut tally = Tally::default();
    for args in runs {
        let mut run = cmd::cargo();
        run.args(args)
            .env("RUSTDOCFLAGS", "-D warnings")
            .env("CARGO_TARGET_DIR", target_dir("package"));
        run_checked(run)?;
        tally.passed += 1;
    }
    Ok(tally)
}

fn valgrind() -> Result<Tally> {
    let target = target_dir("valgrind");
    let mut build = cmd::cargo();
    build
        .args(["test", "-p", "pinit", "--no-run", "--message-format=json"])
        .args(TEST_TARGETS)
        .env("CARGO_TARGET_DIR", &target);
    let output = build
        .output()
        .context("building pinit's tests for valgrind")?;
    if !output.status.success() {
        bail!(
            "building pinit's tests failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let binaries = executables(&String::from_utf8_lossy(&output.stdout));
    if binaries.is_empty() {
        bail!("cargo reported no pinit test executables");
    }
    let mut tally = Tally::default();
    for binary in binaries {
        let mut run = Command::new("valgrind");
        run.args([
            "--quiet",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
        ])
        .arg(&binary)
        .arg("--test-threads=1")
        .current_dir(workspace_root().join("crates/pinit"));
        tally.add(run_counting(run)?);
    }
    Ok(tally)
}

/// The `"executable"` paths in cargo's JSON messages.
fn executables(json_lines: &str) -> Vec<String> {
    const KEY: &str = "\"executable\":\"";
    json_lines
        .lines()
        .filter_map(|line| {
            let start = line.find(KEY)? + KEY.len();
            let end = start + line[start..].find('"')?;
            Some(line[start..end].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::executables;

    #[test]
    fn finds_test_executables_in_cargo_json() {
        let json = r#"{"reason":"compiler-artifact","executable":"/t/debug/deps/fields-1"}
{"reason":"compiler-artifact","executable":null}
{"reason":"build-finished","success":true}"#;
        assert_eq!(executables(json), ["/t/debug/deps/fields-1"]);
    }
}
