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

/// The 4 KiB page DMA memory is allocated in, and within which bus addresses are contiguous.
pub const DMA_PAGE_SIZE: usize = 4096;

/// What the driver needs from the machine: BAR0 registers and DMA-able memory.
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
}

/// DMA memory: the device may read/write it while a command is in flight, so access is by copy/volatile.
///
/// Dropping it releases the memory, so whoever owns it must keep it alive until the device is
/// done with it (the driver ties buffers to in-flight commands for that reason).
pub trait DmaMemory: Send + 'static {
    /// Length in bytes (a multiple of 4 KiB).
    fn len(&self) -> usize;
    /// Whether the length is zero (never, for memory from `alloc_dma`).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bus address of byte `offset`; contiguous only within one 4 KiB page (never assume more).
    fn bus_addr(&self, offset: usize) -> u64;
    /// Copies `out.len()` bytes starting at `offset` out of the memory.
    fn read(&self, offset: usize, out: &mut [u8]);
    /// Copies `data` into the memory starting at `offset`.
    fn write(&self, offset: usize, data: &[u8]);
    /// Volatile 32-bit read at a 4-byte aligned `offset`, for CQE status/phase polling.
    fn read_u32(&self, offset: usize) -> u32;
    /// Volatile 32-bit write at a 4-byte aligned `offset`.
    fn write_u32(&self, offset: usize, value: u32);
}
