//! The contract between a device driver and the memory it points a device at.

/// The 4 KiB page within which bus addresses of DMA memory are contiguous.
pub const DMA_PAGE_SIZE: usize = 4096;

/// Memory a device reads and writes by DMA, at the bus addresses this trait reports.
///
/// A driver written in safe code hands [`DmaMemory::bus_addr`] results to a device (in queue
/// entries, PRPs, base address registers) and trusts the device to touch nothing else. Without
/// an IOMMU (uio) the device can reach all of physical memory, so a bus address that does not
/// name this memory is a write into whatever owns that frame: undefined behaviour that no safe
/// code could otherwise cause. Hence an `unsafe trait`: the implementations are here, in the
/// audited core ([`crate::DmaBuffer`] and the simulated bus of [`crate::sim`]).
///
/// Methods panic on offsets outside the memory: those are driver bugs, not bad input.
///
/// # Safety
///
/// Implementors promise that, for as long as the value is alive:
/// - `bus_addr(offset)` for `offset < len()` is the address at which the device reaches byte
///   `offset` of *this* memory, and the `len()` bytes stay reserved for it (never handed to
///   anyone else, never unmapped or moved) until the value is dropped;
/// - the memory is accessed only by copies, volatile loads and stores and the atomic words
///   below, never through a Rust reference, so the device writing it at any time breaks no
///   aliasing rule;
/// - `read_u32` and `write_u32` are each one atomic 32-bit access, with at least `Acquire`
///   (`read_u32`) and `Release` (`write_u32`) ordering, and are sound to call from several
///   threads at once on one value, even when the type is not `Sync` (only these two: `read` and
///   `write` may race). [`SharedWords`](crate::SharedWords) shares memory between threads on
///   the strength of this;
/// - dropping the value is what gives the memory up, so a driver that keeps the value until
///   the device has stopped using it (or leaks it) never exposes freed memory.
pub unsafe trait DmaMemory: Send + 'static {
    /// Length in bytes (a multiple of 4 KiB).
    fn len(&self) -> usize;
    /// Whether the length is zero (never, for allocated memory).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bus address of byte `offset`; contiguous only within one 4 KiB page (never assume more).
    fn bus_addr(&self, offset: usize) -> u64;
    /// Copies `out.len()` bytes starting at `offset` out of the memory.
    fn read(&self, offset: usize, out: &mut [u8]);
    /// Copies `data` into the memory starting at `offset`.
    fn write(&self, offset: usize, data: &[u8]);
    /// Atomic 32-bit load (at least `Acquire`) at a 4-byte aligned `offset`, for completion
    /// polling; never torn, and sound concurrently with other `read_u32`/`write_u32` calls.
    fn read_u32(&self, offset: usize) -> u32;
    /// Atomic 32-bit store (at least `Release`) at a 4-byte aligned `offset`; never torn, and
    /// sound concurrently with other `read_u32`/`write_u32` calls.
    fn write_u32(&self, offset: usize, value: u32);
}
