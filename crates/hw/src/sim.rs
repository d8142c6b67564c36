//! A simulated bus for in-process device models: ordinary heap pages at made-up bus addresses.
//!
//! A device model (such as the NVMe model of the `nvme` crate) resolves the bus addresses a
//! driver gives it through [`SimBus::read`] and [`SimBus::write`]. Consecutive pages of one
//! allocation are *not* adjacent on the bus in the scattered layout, which catches drivers that
//! assume contiguity beyond one page. Freed memory disappears from the bus: a device access to
//! it fails, as an IOMMU fault would.
//!
//! The bus also keeps the bookkeeping that shows whether a driver ever frees memory the device
//! could still reach: the model declares which pages its live state refers to
//! ([`SimBus::set_reachable`]), [`SimBus::set_bus_master`] stands for the PCI Bus Master bit,
//! and every page freed while it is reachable by a bus-mastering device is counted
//! ([`SimBus::freed_while_reachable`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::dma_memory::{DMA_PAGE_SIZE, DmaMemory};

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

/// What the device may reach and what was freed under it.
#[derive(Debug, Default)]
struct Reach {
    bus_master: bool,
    /// Pages the device's live state refers to (rings, outstanding commands' data and lists).
    pages: HashSet<u64>,
    /// Pages freed while the device was mastering the bus and referred to them.
    freed: Vec<u64>,
}

/// The simulated bus: which page lives where.
#[derive(Debug)]
pub struct SimBus {
    pages: Mutex<PageTable>,
    next: Mutex<u64>,
    reach: Mutex<Reach>,
}

/// One allocation: its bytes and the bus address of each page.
#[derive(Debug)]
struct Block {
    bytes: Mutex<Vec<u8>>,
    bus_pages: Vec<u64>,
    bus: Arc<SimBus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const PAGE: u64 = DMA_PAGE_SIZE as u64;

impl SimBus {
    /// An empty bus with Bus Master enabled.
    pub fn new() -> Arc<SimBus> {
        Arc::new(SimBus {
            pages: Mutex::new(HashMap::new()),
            // Start high so that a zero or small address is never valid.
            next: Mutex::new(0x1_0000_0000),
            reach: Mutex::new(Reach {
                bus_master: true,
                ..Reach::default()
            }),
        })
    }

    /// Zeroed memory of `len` bytes (at least one page) at fresh bus addresses.
    pub fn alloc(self: &Arc<SimBus>, len: usize, layout: DmaLayout) -> SimDma {
        let pages = len.div_ceil(DMA_PAGE_SIZE).max(1);
        let bus_pages: Vec<u64> = {
            let mut next = lock(&self.next);
            let base = *next;
            match layout {
                DmaLayout::Contiguous => {
                    *next += (pages as u64 + 1) * PAGE;
                    (0..pages as u64).map(|i| base + i * PAGE).collect()
                }
                DmaLayout::Scattered => {
                    *next += (2 * pages as u64 + 1) * PAGE;
                    (0..pages as u64)
                        .map(|i| base + 2 * (pages as u64 - 1 - i) * PAGE)
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
        SimDma { block }
    }

    /// Device side: copies `out.len()` bytes from bus address `addr`; `false` if any byte is
    /// not mapped or Bus Master is off.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> bool {
        if !self.bus_master() {
            return false;
        }
        let mut ok = true;
        let mut done = 0;
        while done < out.len() {
            let a = addr.wrapping_add(done as u64);
            let in_page = (a % PAGE) as usize;
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

    /// Device side: copies `data` to bus address `addr`; `false` if any byte is not mapped or
    /// Bus Master is off.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        if !self.bus_master() {
            return false;
        }
        let mut ok = true;
        let mut done = 0;
        while done < data.len() {
            let a = addr.wrapping_add(done as u64);
            let in_page = (a % PAGE) as usize;
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
        let page_addr = addr - addr % PAGE;
        let table = lock(&self.pages);
        let (weak, index) = table.get(&page_addr)?;
        Some((weak.upgrade()?, *index))
    }

    /// How many pages are currently allocated (to check that nothing leaks).
    pub fn mapped_pages(&self) -> usize {
        lock(&self.pages).len()
    }

    /// Sets or clears the simulated Bus Master bit: while clear, the device reaches nothing.
    pub fn set_bus_master(&self, on: bool) {
        lock(&self.reach).bus_master = on;
    }

    /// Whether the device may master the bus.
    pub fn bus_master(&self) -> bool {
        lock(&self.reach).bus_master
    }

    /// Device side: the pages (any address inside each counts) the device's live state refers
    /// to and may still read or write on its own.
    pub fn set_reachable(&self, addrs: impl IntoIterator<Item = u64>) {
        lock(&self.reach).pages = addrs.into_iter().map(|a| a - a % PAGE).collect();
    }

    /// Pages freed so far while a bus-mastering device still referred to them: every one is
    /// memory a real device could have written after it went back to the allocator.
    pub fn freed_while_reachable(&self) -> Vec<u64> {
        lock(&self.reach).freed.clone()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        {
            let mut reach = lock(&self.bus.reach);
            if reach.bus_master {
                let hit: Vec<u64> = self
                    .bus_pages
                    .iter()
                    .copied()
                    .filter(|p| reach.pages.contains(p))
                    .collect();
                reach.freed.extend(hit);
            }
        }
        let mut table = lock(&self.bus.pages);
        for addr in &self.bus_pages {
            table.remove(addr);
        }
    }
}

/// Memory on a [`SimBus`].
#[derive(Debug)]
pub struct SimDma {
    block: Arc<Block>,
}

impl SimDma {
    fn check(&self, offset: usize, len: usize) -> usize {
        let total = self.block.bus_pages.len() * DMA_PAGE_SIZE;
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= total),
            "DMA access of {len} bytes at {offset} past the end of {total} bytes"
        );
        offset
    }
}

// SAFETY: the bus addresses are the ones the simulated bus resolves to exactly this block's
// pages, and they leave the bus when the block is dropped, so a simulated device can never
// reach other memory through them; all access is by copy under the block's lock, never a
// reference the device could invalidate. `read_u32`/`write_u32` take that lock too, so each is
// one indivisible access, ordered (acquire on lock, release on unlock) and sound from any thread.
#[allow(unsafe_code)]
unsafe impl DmaMemory for SimDma {
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
        let bus = SimBus::new();
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
        let bus = SimBus::new();
        let mem = bus.alloc(100, DmaLayout::Contiguous);
        let addr = mem.bus_addr(0);
        assert_eq!(bus.mapped_pages(), 1);
        drop(mem);
        assert_eq!(bus.mapped_pages(), 0);
        assert!(!bus.read(addr, &mut [0; 4]));
    }

    #[test]
    fn freeing_reachable_memory_is_recorded_unless_bus_master_is_off() {
        let bus = SimBus::new();
        let a = bus.alloc(2 * DMA_PAGE_SIZE, DmaLayout::Scattered);
        let b = bus.alloc(DMA_PAGE_SIZE, DmaLayout::Scattered);
        let c = bus.alloc(DMA_PAGE_SIZE, DmaLayout::Scattered);
        let (a1, b0) = (a.bus_addr(DMA_PAGE_SIZE + 8), b.bus_addr(0));
        bus.set_reachable([a1, b0, c.bus_addr(0)]);
        drop(a);
        assert_eq!(bus.freed_while_reachable(), [a1 - 8]);
        bus.set_bus_master(false);
        assert!(
            !bus.read(c.bus_addr(0), &mut [0; 4]),
            "no DMA without Bus Master"
        );
        drop(b);
        assert_eq!(bus.freed_while_reachable().len(), 1);
        bus.set_bus_master(true);
        bus.set_reachable([]);
        drop(c);
        assert_eq!(bus.freed_while_reachable().len(), 1);
    }
}
