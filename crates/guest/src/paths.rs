//! Where the harness keeps its files.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .expect("crates/guest lives two levels below the workspace root")
        .to_path_buf()
}

/// `target/vm/` of the workspace (or `$GUEST_VM_DIR`): the kernel, caches and logs.
///
/// Shared by every target dir on purpose: the kernel is unpacked once per checkout.
pub fn vm_dir() -> PathBuf {
    match std::env::var_os("GUEST_VM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target").join("vm"),
    }
}

/// Creates `dir` (and parents) with a clear error.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).ctx(|| format!("cannot create {}", dir.display()))
}

/// Prints `guest: <line>` on the process's standard error, past the test harness's output capture
/// (which takes `eprintln!` output and shows it only for failed tests): whom a test waits for, and
/// how slow the machine is, matter most while the test runs.
pub(crate) fn tell(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "guest: {line}");
}

/// Runs a host command to completion and returns its stdout; failure carries its stderr.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Missing(format!(
                "{} is not installed: run `cargo xtask vm -c true` once (it installs what the guest needs)",
                cmd.get_program().to_string_lossy()
            ))
        } else {
            Error::Io {
                context: format!("cannot start {what}"),
                source: e,
            }
        }
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            what,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
