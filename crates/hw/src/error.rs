//! The one error type of this crate: every failure names what was being done.

use std::io;

/// Why a hardware operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or sysfs access failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A PCI address was not of the form `DDDD:BB:DD.F`.
    #[error("bad PCI address {0:?} (expected DDDD:BB:DD.F, e.g. 0000:00:02.0)")]
    BadAddress(String),
    /// The device is not in the state this operation needs (wrong driver, missing region, ...).
    #[error("{0}")]
    WrongState(String),
    /// The machine lacks something this operation needs (IOMMU, hugepages, privileges, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An offset or length fell outside the memory it addresses, or was misaligned.
    #[error("access of {len} bytes at offset {offset:#x} is outside {size:#x} bytes or misaligned")]
    OutOfBounds {
        /// The requested offset.
        offset: usize,
        /// The requested length.
        len: usize,
        /// The size of the memory.
        size: usize,
    },
    /// No bus address range of the requested size is free.
    #[error("no free bus address range for {0} bytes")]
    AddressSpaceExhausted(usize),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
