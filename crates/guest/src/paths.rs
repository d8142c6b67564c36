//! Where the harness keeps its files, and the lock that lets one VM run at a time.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{FlockOperation, flock};

use crate::error::{Error, IoContext, Result};

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .expect("crates/guest lives two levels below the workspace root")
        .to_path_buf()
}

/// `target/vm/` of the workspace (or `$GUEST_VM_DIR`): the kernel, caches, logs and the lock.
///
/// Shared by every target dir on purpose: the kernel is unpacked once and the lock is machine-wide.
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

/// An exclusive `flock` on `target/vm/.lock`, held while a VM boots and runs: this 2-core machine runs one
/// VM at a time, whoever starts it.
#[derive(Debug)]
pub struct VmLock {
    _file: File,
}

impl VmLock {
    /// Blocks until no other VM runs. The holder writes its pid and command into the file, so that a waiter
    /// can say whom it waits for.
    pub fn acquire() -> Result<VmLock> {
        let dir = vm_dir();
        create_dir(&dir)?;
        let path = dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("cannot open {}", path.display()))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            eprintln!(
                "guest: waiting for another VM to finish ({} is held by {})",
                path.display(),
                holder.trim()
            );
            flock(&file, FlockOperation::LockExclusive)
                .map_err(std::io::Error::from)
                .ctx(|| format!("cannot lock {}", path.display()))?;
        }
        let me = format!(
            "pid {} ({})\n",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        // Only a hint for waiters: failing to write it must not fail the run.
        let _ = file
            .set_len(0)
            .and_then(|()| (&file).write_all(me.as_bytes()));
        Ok(VmLock { _file: file })
    }
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
