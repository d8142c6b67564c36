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
    /// The guest made no progress (no line from `/init` or the script) for the stall limit: QEMU was
    /// killed.
    #[error("{0}")]
    Stalled(Box<Stall>),
    /// The overall ceiling passed although the guest kept progressing: QEMU was killed.
    #[error(
        "the guest hit its overall ceiling of {:.0?} (slowdown ×{slowdown:.2} included) while {stage}{}; \
         QEMU (pid {pid}) was killed. Console log {}, last lines:\n{tail}",
        limit,
        in_step(step),
        log.display()
    )]
    Timeout {
        limit: Duration,
        stage: &'static str,
        step: Option<String>,
        slowdown: f64,
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

/// What [`Error::Stalled`] knows: where the guest stalled, for how long, and what it printed last.
#[derive(Debug)]
pub struct Stall {
    /// The harness's stage ([`crate::Stage::describe`]).
    pub stage: &'static str,
    /// The stage the script last named (`stage NAME` in the guest).
    pub step: Option<String>,
    /// From the last progress to QEMU's kill.
    pub quiet_for: Duration,
    /// The stall limit, the slowdown included.
    pub limit: Duration,
    pub slowdown: f64,
    /// From `/init`'s first line to QEMU's kill.
    pub running_for: Duration,
    /// The script's last line of output that was not empty.
    pub last_line: Option<String>,
    /// QEMU's pid (it is gone).
    pub pid: u32,
    /// QEMU's threads that used CPU in the second before the kill, busiest first (empty if none
    /// did; `None` if `/proc` could not be read): whether the guest was spinning or waiting.
    pub qemu_threads: Option<Vec<crate::ThreadUse>>,
    pub log: PathBuf,
    pub tail: String,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the guest stalled while {}{}: no progress for {:.0?} (stall limit {:.0?}, slowdown ×{:.2} \
             included), {:.0?} after /init started; last output line: {}. {}. QEMU (pid {}) was \
             killed. Console log {}, last lines:\n{}",
            self.stage,
            in_step(&self.step),
            self.quiet_for,
            self.limit,
            self.slowdown,
            self.running_for,
            self.last_line
                .as_deref()
                .map_or_else(|| "none".to_owned(), |l| format!("{l:?}")),
            describe_threads(self.qemu_threads.as_deref()),
            self.pid,
            self.log.display(),
            self.tail
        )
    }
}

/// What QEMU's threads did in the second before the kill, for a person reading the error.
pub(crate) fn describe_threads(threads: Option<&[crate::ThreadUse]>) -> String {
    let Some(threads) = threads else {
        return "QEMU's threads could not be read before the kill".to_owned();
    };
    let spinning = threads.iter().any(|t| t.is_busy_vcpu());
    if threads.is_empty() {
        return "In the second before the kill no QEMU thread used the CPU (the guest was waiting, \
                not spinning)"
            .to_owned();
    }
    let list = threads
        .iter()
        .map(|t| format!("{} {:.2}", t.name, t.cores))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "In the second before the kill, host cores used by QEMU's threads: {list} ({})",
        if spinning {
            "a vCPU ran: the guest was busy"
        } else {
            "no vCPU ran: the guest was waiting, not spinning"
        }
    )
}

/// `, in its stage "NAME"` when the script named one.
fn in_step(step: &Option<String>) -> String {
    step.as_deref()
        .map(|s| format!(", in its stage {s:?}"))
        .unwrap_or_default()
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
