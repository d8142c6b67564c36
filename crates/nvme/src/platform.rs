//! The contract between the driver and the machine: BAR0 registers and DMA-able memory.
//!
//! The driver is generic over [`Platform`], so the same code runs against real hardware
//! (`hw_platform`, over `crates/hw`) and against the in-process controller model.
//!
//! Bounds: offsets are checked by implementations with assertions. An out-of-range offset is a
//! driver bug, not bad input, and the driver never computes one from untrusted data without
//! checking it first.

/// Why the platform could not give the driver what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A system call or file access failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No DMA memory of the requested size could be provided.
    #[error("out of DMA memory ({requested} bytes requested)")]
    OutOfDmaMemory {
        /// The requested length in bytes.
        requested: usize,
    },
    /// The device specification (`vfio:BDF`, `uio:BDF`, ...) could not be understood.
    #[error("bad device specification {0:?}")]
    BadSpec(String),
    /// The machine or device lacks something the platform needs.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

use std::sync::Arc;

pub use hw::{DMA_PAGE_SIZE, DmaMemory, Interrupt};

/// What the driver needs from the machine: BAR0 registers, DMA-able memory, and a way to stop
/// the device reaching that memory.
///
/// A safe trait: register access alone reaches no memory, and the memory comes as
/// [`DmaMemory`], an `unsafe trait` implemented only by the audited core (`hw`), so an
/// implementation cannot lie about bus addresses.
pub trait Platform: Send + Sync + 'static {
    /// The DMA memory this platform hands out.
    type Dma: DmaMemory;
    /// Reads a 32-bit BAR0 register (volatile).
    fn read32(&self, offset: usize) -> u32;
    /// Writes a 32-bit BAR0 register (volatile).
    fn write32(&self, offset: usize, value: u32);
    /// Reads a 64-bit BAR0 register (volatile).
    fn read64(&self, offset: usize) -> u64;
    /// Writes a 64-bit BAR0 register (volatile).
    fn write64(&self, offset: usize, value: u64);
    /// Zeroed DMA memory, `len` rounded up to 4 KiB pages, page-aligned.
    fn alloc_dma(&self, len: usize) -> Result<Self::Dma, PlatformError>;
    /// Stops the device from reaching memory for good, whatever state its controller is in
    /// (PCI Bus Master cleared, then a function reset). `Ok` only when that is certain: then
    /// every buffer it knew may be freed. The driver calls it when the controller stopped
    /// answering, so it must not depend on BAR0.
    fn stop_dma(&self) -> Result<(), PlatformError>;
    /// Turns on interrupt vectors `0..vectors` (MSI-X), each signalling its own [`Interrupt`]
    /// (element `i` is vector `i`); fewer when the device has fewer. By default there are none:
    /// the driver polls.
    fn enable_interrupts(&self, vectors: u16) -> Result<Vec<Arc<Interrupt>>, PlatformError> {
        let _ = vectors;
        Err(PlatformError::Unsupported(
            "interrupts on this platform (poll instead)".into(),
        ))
    }
}
