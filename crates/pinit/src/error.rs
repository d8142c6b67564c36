//! `AllocError`: the allocator had no memory for the value.

use core::fmt;

/// The allocator returned no memory (or the requested size overflowed).
///
/// Fallible constructors take an error type `E: From<AllocError>`; with the `std` feature
/// `std::io::Error` is one (of kind `OutOfMemory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("memory allocation failed")
    }
}

impl core::error::Error for AllocError {}

#[cfg(feature = "std")]
impl From<AllocError> for std::io::Error {
    fn from(_: AllocError) -> Self {
        std::io::Error::from(std::io::ErrorKind::OutOfMemory)
    }
}

impl From<core::convert::Infallible> for AllocError {
    fn from(never: core::convert::Infallible) -> Self {
        match never {}
    }
}
