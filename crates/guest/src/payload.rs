//! What a run adds to the guest: static Rust binaries built for it, host programs with their shared
//! libraries, and plain files.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::paths::workspace_root;

/// The host target triple; static-pie binaries for it run in the guest unchanged.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `bin` of workspace package `package` as a static executable and returns its path.
///
/// Uses its own target dir (`target/guest-static`) so that a test running under `cargo test` does not wait
/// on the outer build's lock.
pub fn build_static(package: &str, bin: &str) -> Result<PathBuf> {
    let target_dir = workspace_root().join("target").join("guest-static");
    cargo_build(
        &target_dir,
        "-C target-feature=+crt-static",
        &["--target", STATIC_TARGET, "-p", package, "--bin", bin],
        &format!("static build of {package} --bin {bin}"),
    )?;
    Ok(target_dir.join(STATIC_TARGET).join("release").join(bin))
}

/// Builds the QEMU plugin that counts guest instructions (`tcg-insn-count`) and returns the shared
/// library's path. Its own target dir, like [`build_static`]'s, and without `crt-static`, which a
/// shared library cannot take.
pub fn build_insn_count_plugin() -> Result<PathBuf> {
    let target_dir = workspace_root().join("target").join("guest-plugin");
    cargo_build(
        &target_dir,
        "",
        &["-p", "tcg-insn-count", "--lib"],
        "build of tcg-insn-count",
    )?;
    Ok(target_dir.join("release").join("libtcg_insn_count.so"))
}

/// `cargo build --release ARGS` in the workspace, into `target_dir`, with `rustflags`; a failure
/// carries the end of cargo's output.
fn cargo_build(target_dir: &Path, rustflags: &str, args: &[&str], what: &str) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", rustflags)
        .args(["build", "--release"])
        .args(args)
        .output()
        .map_err(|e| Error::Missing(format!("cannot run cargo for the {what}: {e}")))?;
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        return Err(Error::Command {
            what: what.to_owned(),
            detail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

/// The shared libraries (and loader) a dynamically linked host program needs, as `ldd` lists them.
pub fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(program)
        .output()
        .map_err(|e| Error::Missing(format!("cannot run ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        if all.contains("not a dynamic executable") || all.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(Error::Command {
            what: format!("ldd {}", program.display()),
            detail: all.trim().to_owned(),
        });
    }
    parse_ldd(&text)
}

/// Library paths of `ldd` output; a library `ldd` could not find is an error naming it.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(Error::Missing(format!(
                        "shared library {} is not installed",
                        name.trim()
                    )));
                }
                rest.split_whitespace().next().unwrap_or("")
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// The guest path of a host path (absolute, UTF-8).
pub fn guest_path(host: &Path) -> Result<String> {
    match host.to_str() {
        Some(s) if s.starts_with('/') => Ok(s.to_owned()),
        _ => Err(Error::Invalid(format!(
            "{} must be an absolute UTF-8 path",
            host.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_lists_libraries_and_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7d)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f7d)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn missing_library_is_named() {
        let err = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(err.to_string().contains("libfoo.so.1"), "{err}");
    }

    #[test]
    fn only_absolute_paths_map_into_the_guest() {
        assert!(guest_path(Path::new("rel/x")).is_err());
        assert_eq!(
            guest_path(Path::new("/usr/sbin/diod")).unwrap(),
            "/usr/sbin/diod"
        );
    }
}
