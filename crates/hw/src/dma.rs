//! Owned DMA buffers: readable bus addresses, copy/volatile access, release only on drop.
//!
//! A [`DmaBuffer`] is the only handle to its memory. The memory (and, under VFIO, its IOMMU
//! mapping) is released in `Drop` and nowhere else, so as long as the driver holds the buffer
//! until the device has finished a command, the device can never reach freed memory.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::dma_memory::DmaMemory;
use crate::error::{Error, Result};
use crate::map::{Mapping, PAGE_SIZE};

/// Something whose drop takes a buffer away from the device (an IOMMU unmap, a return to a
/// pool). It runs before the memory itself is released.
pub(crate) type Lease = Box<dyn Send + Sync>;

/// Zeroed, page-aligned memory the device can reach, with one bus address per 4 KiB page.
pub struct DmaBuffer {
    // Declared first so it is dropped first: the device loses access before the memory goes.
    _lease: Option<Lease>,
    mem: Arc<Mapping>,
    start: usize,
    len: usize,
    pages: Vec<u64>,
    // Access is through `&self`; the volatile copies are not atomic, so two threads copying
    // the same bytes of one shared buffer would race. Sending it is fine: one owner at a time.
    // (`SharedWords` shares one between threads through its atomic 32-bit accesses alone.)
    _not_sync: PhantomData<Cell<()>>,
}

impl fmt::Debug for DmaBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBuffer")
            .field("len", &self.len)
            .field("first_bus_addr", &format_args!("{:#x}", self.pages[0]))
            .finish()
    }
}

impl DmaBuffer {
    /// A buffer over `len` bytes of `mem` starting at `start` (both page multiples), whose 4 KiB
    /// pages the device sees at `pages`. The memory must already be zeroed.
    pub(crate) fn new(
        mem: Arc<Mapping>,
        start: usize,
        len: usize,
        pages: Vec<u64>,
        lease: Option<Lease>,
    ) -> Self {
        assert!(len > 0 && len.is_multiple_of(PAGE_SIZE) && start.is_multiple_of(PAGE_SIZE));
        assert!(start.checked_add(len).is_some_and(|end| end <= mem.len()));
        assert_eq!(pages.len(), len / PAGE_SIZE);
        assert!(pages.iter().all(|p| p.is_multiple_of(PAGE_SIZE as u64)));
        Self {
            _lease: lease,
            mem,
            start,
            len,
            pages,
            _not_sync: PhantomData,
        }
    }

    /// Length in bytes (a multiple of 4 KiB).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the buffer lies in this process's address space, for a kernel interface that copies
    /// to or from user memory on the driver's behalf (ublk's per-request I/O buffer), so that data
    /// moves between the kernel and the device with no copy in between.
    ///
    /// It is an address, not a pointer: Rust code still reaches the memory only through
    /// [`read`](Self::read) and [`write`](Self::write). A kernel copy is like the device's DMA:
    /// it must happen while the driver holds the buffer and the device is not using it.
    pub fn process_address(&self) -> usize {
        self.mem.addr() + self.start
    }

    /// The bus addresses of each 4 KiB page, in order. Consecutive pages need not be adjacent.
    pub fn page_bus_addrs(&self) -> &[u64] {
        &self.pages
    }

    /// The bus address of byte `offset`; contiguous only up to the end of its 4 KiB page.
    pub fn bus_addr(&self, offset: usize) -> Result<u64> {
        let page = self
            .pages
            .get(offset / PAGE_SIZE)
            .ok_or(Error::OutOfBounds {
                offset,
                len: 0,
                size: self.len,
            })?;
        Ok(page + (offset % PAGE_SIZE) as u64)
    }

    fn check(&self, offset: usize, len: usize) -> Result<usize> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.start + offset),
            _ => Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Copies `out.len()` bytes starting at `offset` out of the buffer.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let at = self.check(offset, out.len())?;
        self.mem.copy_out(at, out)
    }

    /// Copies `data` into the buffer starting at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        let at = self.check(offset, data.len())?;
        self.mem.copy_in(at, data)
    }

    /// Atomic 32-bit load (`Acquire`) at a 4-byte aligned `offset` (for polling completion
    /// entries and shared doorbell words).
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        let at = self.check(offset, 4)?;
        self.mem.load_u32(at)
    }

    /// Atomic 32-bit store (`Release`) at a 4-byte aligned `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<()> {
        let at = self.check(offset, 4)?;
        self.mem.store_u32(at, value)
    }
}

/// Reports a driver bug: an offset the [`DmaMemory`] contract forbids.
fn bad_offset<T>(what: &'static str) -> impl FnOnce(Error) -> T {
    move |e| panic!("DmaBuffer {what}: {e}")
}

// SAFETY: `pages` are the bus addresses the device reaches this buffer's memory at (IOVAs the
// lease mapped, or physical addresses of locked hugepages looked up in pagemap); the memory
// stays ours until the buffer is dropped (the lease revokes the device's access first, or
// returns the pages to a pool that stays mapped until the device is stopped); every access is
// a bounds-checked volatile copy through `Mapping`, or, for `read_u32`/`write_u32`, one aligned
// 32-bit atomic load (`Acquire`) or store (`Release`), which are sound to call concurrently.
#[allow(unsafe_code)]
unsafe impl DmaMemory for DmaBuffer {
    fn len(&self) -> usize {
        self.len
    }

    fn bus_addr(&self, offset: usize) -> u64 {
        DmaBuffer::bus_addr(self, offset).unwrap_or_else(bad_offset("bus_addr"))
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        DmaBuffer::read(self, offset, out).unwrap_or_else(bad_offset("read"))
    }

    fn write(&self, offset: usize, data: &[u8]) {
        DmaBuffer::write(self, offset, data).unwrap_or_else(bad_offset("write"))
    }

    fn read_u32(&self, offset: usize) -> u32 {
        DmaBuffer::read_u32(self, offset).unwrap_or_else(bad_offset("read_u32"))
    }

    fn write_u32(&self, offset: usize, value: u32) {
        DmaBuffer::write_u32(self, offset, value).unwrap_or_else(bad_offset("write_u32"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::Backing;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn buffer(pages: Vec<u64>, lease: Option<Lease>) -> DmaBuffer {
        let len = pages.len() * PAGE_SIZE;
        let mem = Arc::new(Mapping::anonymous(len + PAGE_SIZE, Backing::Normal).unwrap());
        DmaBuffer::new(mem, PAGE_SIZE, len, pages, lease)
    }

    #[test]
    fn bus_addresses_follow_the_page_table_not_the_first_page() {
        let b = buffer(vec![0x7000, 0x3000, 0x9000], None);
        assert_eq!(b.len(), 3 * PAGE_SIZE);
        assert_eq!(b.bus_addr(0).unwrap(), 0x7000);
        assert_eq!(b.bus_addr(4095).unwrap(), 0x7fff);
        assert_eq!(b.bus_addr(4096).unwrap(), 0x3000);
        assert_eq!(b.bus_addr(2 * 4096 + 8).unwrap(), 0x9008);
        assert!(b.bus_addr(3 * 4096).is_err());
    }

    #[test]
    fn access_is_bounded_to_the_buffer() {
        let b = buffer(vec![0x1000, 0x2000], None);
        b.write(4094, &[1, 2, 3, 4]).unwrap();
        let mut out = [0; 4];
        b.read(4094, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4]);
        b.write_u32(8188, 0xabcd).unwrap();
        assert_eq!(b.read_u32(8188).unwrap(), 0xabcd);
        assert!(b.read_u32(8190).is_err());
        assert!(b.read_u32(8192).is_err());
        assert!(b.write(8000, &[0; 193]).is_err());
        assert!(b.read(usize::MAX, &mut out).is_err());
    }

    #[test]
    fn lease_is_released_exactly_once_on_drop() {
        struct Count(Arc<AtomicUsize>);
        impl Drop for Count {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let b = buffer(vec![0x1000], Some(Box::new(Count(drops.clone()))));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(b);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
