//! The driver's error type.

use crate::platform::PlatformError;
use crate::status::Status;

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform could not map registers or provide DMA memory.
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// The controller completed a command with an error status.
    #[error("command {opcode:#04x} failed: {status}")]
    Command {
        /// The opcode of the failed command.
        opcode: u8,
        /// What the controller reported.
        status: Status,
    },
    /// The controller did not answer within the allowed time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The controller reported a fatal status (CSTS.CFS).
    #[error("controller fatal status")]
    ControllerFatal,
    /// The controller stopped answering and could not be reset; it is unusable.
    #[error("controller is not answering and could not be reset")]
    ControllerDead,
    /// The controller lacks something the driver needs.
    #[error("unsupported controller: {0}")]
    Unsupported(String),
    /// The caller passed a request the driver refuses (out of range, bad buffer, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The driver's options are out of range (see [`crate::Options::validate`]).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// No free submission slot: poll for completions and retry.
    #[error("queue full")]
    QueueFull,
    /// The controller granted no more I/O queues.
    #[error("no I/O queue left (the controller granted {0})")]
    NoQueuesLeft(u16),
}

impl Error {
    /// The NVMe status, when the controller reported one.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Command { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The driver's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
