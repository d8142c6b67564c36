//! DMA memory of the model: ordinary heap pages given made-up bus addresses the model resolves.
//!
//! Bus addresses are handed out so that consecutive pages of one allocation are *not* adjacent
//! on the bus (in the scattered layout), which catches drivers that assume contiguity beyond one
//! page. Freed memory disappears from the bus: a controller access to it is a DMA fault.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::platform::{DMA_PAGE_SIZE, DmaMemory};

/// How bus addresses are assigned to the pages of one allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaLayout {
    /// Pages of an allocation are adjacent on the bus (like an IOMMU mapping or a hugepage).
    Contiguous,
    /// Pages are in reverse order with holes between them (like scattered 4 KiB pages).
    Scattered,
}

/// Bus page address -> (allocation, page index within it).
type PageTable = HashMap<u64, (Weak<Block>, usize)>;

/// The model's view of the bus: which page lives where.
#[derive(Debug)]
pub(crate) struct Bus {
    pages: Mutex<PageTable>,
    next: Mutex<u64>,
}

/// One allocation: its bytes and the bus address of each page.
#[derive(Debug)]
pub(crate) struct Block {
    bytes: Mutex<Vec<u8>>,
    bus_pages: Vec<u64>,
    bus: Arc<Bus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Bus {
    pub(crate) fn new() -> Arc<Bus> {
        Arc::new(Bus {
            pages: Mutex::new(HashMap::new()),
            // Start high so that a zero or small address is never valid.
            next: Mutex::new(0x1_0000_0000),
        })
    }

    pub(crate) fn alloc(self: &Arc<Bus>, len: usize, layout: DmaLayout) -> ModelDma {
        let pages = len.div_ceil(DMA_PAGE_SIZE).max(1);
        let bus_pages: Vec<u64> = {
            let mut next = lock(&self.next);
            let base = *next;
            let page = DMA_PAGE_SIZE as u64;

            match layout {
                DmaLayout::Contiguous => {
                    *next += (pages as u64 + 1) * page;
                    (0..pages as u64).map(|i| base + i * page).collect()
                }
                DmaLayout::Scattered => {
                    *next += (2 * pages as u64 + 1) * page;
                    (0..pages as u64)
                        .map(|i| base + 2 * (pages as u64 - 1 - i) * page)
                        .collect()
                }
            }
        };
        let block = Arc::new(Block {
            bytes: Mutex::new(vec![0; pages * DMA_PAGE_SIZE]),
            bus_pages,
            bus: Arc::clone(self),
        });
        let mut table = lock(&self.pages);
        for (i, &addr) in block.bus_pages.iter().enumerate() {
            table.insert(addr, (Arc::downgrade(&block), i));
        }
        ModelDma { block }
    }

    /// Copies `out.len()` bytes from bus address `addr`; `false` if any byte is not mapped.
    pub(crate) fn read(&self, addr: u64, out: &mut [u8]) -> bool {
        let mut ok = true;
        let mut done = 0;
        while done < out.len() {
            let a = addr + done as u64;
            let in_page = (a % DMA_PAGE_SIZE as u64) as usize;
            let n = (DMA_PAGE_SIZE - in_page).min(out.len() - done);
            match self.resolve(a) {
                Some((block, page)) => {
                    let at = page * DMA_PAGE_SIZE + in_page;
                    out[done..done + n].copy_from_slice(&lock(&block.bytes)[at..at + n]);
                }
                None => ok = false,
            }
            done += n;
        }
        ok
    }

    /// Copies `data` to bus address `addr`; `false` if any byte is not mapped.
    pub(crate) fn write(&self, addr: u64, data: &[u8]) -> bool {
        let mut ok = true;
        let mut done = 0;
        while done < data.len() {
            let a = addr + done as u64;
            let in_page = (a % DMA_PAGE_SIZE as u64) as usize;
            let n = (DMA_PAGE_SIZE - in_page).min(data.len() - done);
            match self.resolve(a) {
                Some((block, page)) => {
                    let at = page * DMA_PAGE_SIZE + in_page;
                    lock(&block.bytes)[at..at + n].copy_from_slice(&data[done..done + n]);
                }
                None => ok = false,
            }
            done += n;
        }
        ok
    }

    fn resolve(&self, addr: u64) -> Option<(Arc<Block>, usize)> {
        let page_addr = addr - addr % DMA_PAGE_SIZE as u64;
        let table = lock(&self.pages);
        let (weak, index) = table.get(&page_addr)?;
        Some((weak.upgrade()?, *index))
    }

    /// How many pages are currently mapped (to check that nothing leaks).
    pub(crate) fn mapped_pages(&self) -> usize {
        lock(&self.pages).len()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let mut table = lock(&self.bus.pages);
        for addr in &self.bus_pages {
            table.remove(addr);
        }
    }
}

/// DMA memory handed out by the model.
#[derive(Debug)]
pub struct ModelDma {
    block: Arc<Block>,
}

impl ModelDma {
    fn check(&self, offset: usize, len: usize) -> usize {
        let total = self.block.bus_pages.len() * DMA_PAGE_SIZE;
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= total),
            "DMA access of {len} bytes at {offset} past the end of {total} bytes"
        );
        offset
    }
}

impl DmaMemory for ModelDma {
    fn len(&self) -> usize {
        self.block.bus_pages.len() * DMA_PAGE_SIZE
    }

    fn bus_addr(&self, offset: usize) -> u64 {
        self.check(offset, 0);
        let page = offset / DMA_PAGE_SIZE;
        let page = page.min(self.block.bus_pages.len() - 1);
        self.block.bus_pages[page] + (offset - page * DMA_PAGE_SIZE) as u64
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        let at = self.check(offset, out.len());
        out.copy_from_slice(&lock(&self.block.bytes)[at..at + out.len()]);
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let at = self.check(offset, data.len());
        lock(&self.block.bytes)[at..at + data.len()].copy_from_slice(data);
    }

    fn read_u32(&self, offset: usize) -> u32 {
        let mut b = [0; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scattered_pages_are_not_adjacent_and_resolve_back() {
        let bus = Bus::new();
        let mem = bus.alloc(3 * DMA_PAGE_SIZE, DmaLayout::Scattered);
        assert_ne!(mem.bus_addr(DMA_PAGE_SIZE), mem.bus_addr(0) + 4096);
        mem.write(DMA_PAGE_SIZE + 10, b"hello");
        let mut out = [0; 5];
        assert!(bus.read(mem.bus_addr(DMA_PAGE_SIZE + 10), &mut out));
        assert_eq!(&out, b"hello");
        assert!(bus.write(mem.bus_addr(2 * DMA_PAGE_SIZE), b"xy"));
        let mut back = [0; 2];
        mem.read(2 * DMA_PAGE_SIZE, &mut back);
        assert_eq!(&back, b"xy");
    }

    #[test]
    fn freed_memory_leaves_the_bus() {
        let bus = Bus::new();
        let mem = bus.alloc(100, DmaLayout::Contiguous);
        let addr = mem.bus_addr(0);
        assert_eq!(bus.mapped_pages(), 1);
        drop(mem);
        assert_eq!(bus.mapped_pages(), 0);
        assert!(!bus.read(addr, &mut [0; 4]));
    }
}
