//! What can go wrong while preparing or running a guest.

use std::path::PathBuf;
use std::time::Duration;

/// An error of the harness (not of the guest script: a script that exits non-zero is an [`crate::Output`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool or file the harness needs is missing; the message says how to get it.
    #[error("{0}")]
    Missing(String),
    /// A host command the harness runs failed.
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    /// Bad input given to the builder.
    #[error("invalid guest setup: {0}")]
    Invalid(String),
    /// The kernel never reached `/init`, in every try.
    #[error(
        "the guest did not reach /init in {tries} tries ({why}); console log {}:\n{tail}",
        log.display()
    )]
    Boot {
        tries: u32,
        why: String,
        log: PathBuf,
        tail: String,
    },
    /// The deadline passed: QEMU was killed.
    #[error(
        "the guest timed out after {:.0?} while {stage}; QEMU (pid {pid}) was killed. Console log {}, last lines:\n{tail}",
        limit,
        log.display()
    )]
    Timeout {
        limit: Duration,
        stage: &'static str,
        pid: u32,
        log: PathBuf,
        tail: String,
    },
    /// QEMU stopped before the script reported its exit status.
    #[error("QEMU exited ({status}) while {stage}; console log {}, last lines:\n{tail}", log.display())]
    Exited {
        status: String,
        stage: &'static str,
        log: PathBuf,
        tail: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Short for `Result<T, guest::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a description to I/O errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
