//! DMA memory shared between threads, as 32-bit words.
//!
//! A [`DmaMemory`] value is `Send` but need not be `Sync`: its copies (`read`, `write`) are
//! plain volatile accesses, and two threads reaching the same bytes that way would race. Some
//! device structures are nevertheless written by several threads, each to its own words: NVMe's
//! shadow doorbell page holds one entry per queue, and each queue pair runs on its own thread.
//! [`SharedWords`] lets them share such memory without a lock by offering only what the
//! [`DmaMemory`] contract makes sound from any number of threads at once: one-word atomic loads
//! and stores (and the bus addresses, looked up once).

use std::fmt;

use crate::dma_memory::{DMA_PAGE_SIZE, DmaMemory};

/// DMA memory that threads share through 32-bit atomic loads and stores only.
///
/// Orderings: [`load_u32`](Self::load_u32) is `Acquire`, [`store_u32`](Self::store_u32) is
/// `Release` (on x86 both are plain `mov`s). A store followed by a load of another word that must
/// not be reordered before it (the store-load pattern of doorbells and event indexes) needs a
/// `fence(SeqCst)` between them, as with any atomics. The memory goes back, whole, with
/// [`into_inner`](Self::into_inner), which needs ownership: no thread can still be using it.
pub struct SharedWords<D: DmaMemory> {
    mem: D,
    /// Bus address of each 4 KiB page, looked up once, so that sharing calls nothing of `D`
    /// but its word accesses.
    pages: Box<[u64]>,
}

// SAFETY: a shared `&SharedWords<D>` reaches the memory only through `D::read_u32` and
// `D::write_u32`, which the `DmaMemory` contract makes single atomic accesses, sound to call
// from several threads at once on one value even when `D` is not `Sync`; everything else `&self`
// reads (`pages`) is immutable. Nothing hands out `&D` (whose copies may race): the memory comes
// back only by value, through `into_inner`. `D: Send` (a supertrait of `DmaMemory`) makes the
// wrapper `Send`, so it may be dropped, and the memory released, on any thread.
#[allow(unsafe_code)]
unsafe impl<D: DmaMemory> Sync for SharedWords<D> {}

impl<D: DmaMemory> SharedWords<D> {
    /// Shares `mem` as words.
    pub fn new(mem: D) -> Self {
        let pages = (0..mem.len())
            .step_by(DMA_PAGE_SIZE)
            .map(|offset| mem.bus_addr(offset))
            .collect();
        Self { mem, pages }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.pages.len() * DMA_PAGE_SIZE
    }

    /// Whether the length is zero (never, for allocated memory).
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Bus address of byte `offset` (contiguous within its 4 KiB page only). Panics past the end.
    pub fn bus_addr(&self, offset: usize) -> u64 {
        let page = self.pages.get(offset / DMA_PAGE_SIZE).unwrap_or_else(|| {
            panic!(
                "SharedWords bus_addr: offset {offset} past {} bytes",
                self.len()
            )
        });
        page + (offset % DMA_PAGE_SIZE) as u64
    }

    /// Atomic 32-bit load (`Acquire`) at a 4-byte aligned `offset`. Panics if misaligned or past
    /// the end (a driver bug).
    pub fn load_u32(&self, offset: usize) -> u32 {
        self.mem.read_u32(offset)
    }

    /// Atomic 32-bit store (`Release`) at a 4-byte aligned `offset`. Panics if misaligned or
    /// past the end (a driver bug).
    pub fn store_u32(&self, offset: usize, value: u32) {
        self.mem.write_u32(offset, value)
    }

    /// The memory back, for exclusive use (or to leak or park it whole).
    pub fn into_inner(self) -> D {
        self.mem
    }
}

impl<D: DmaMemory> fmt::Debug for SharedWords<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedWords")
            .field("len", &self.len())
            .field("first_bus_addr", &format_args!("{:#x}", self.pages[0]))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::DmaBuffer;
    use crate::map::{Backing, Mapping, PAGE_SIZE};
    use crate::sim::{DmaLayout, SimBus};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn buffer(pages: Vec<u64>) -> DmaBuffer {
        let len = pages.len() * PAGE_SIZE;
        let mem = Arc::new(Mapping::anonymous(len, Backing::Normal).unwrap());
        DmaBuffer::new(mem, 0, len, pages, None)
    }

    fn assert_sync<T: Sync>() {}

    #[test]
    fn words_round_trip_and_the_memory_comes_back_whole() {
        assert_sync::<SharedWords<DmaBuffer>>();
        let words = SharedWords::new(buffer(vec![0x7000, 0x3000]));
        assert_eq!(words.len(), 2 * PAGE_SIZE);
        assert_eq!(words.bus_addr(8), 0x7008);
        assert_eq!(words.bus_addr(PAGE_SIZE + 4), 0x3004);
        words.store_u32(PAGE_SIZE + 4, 0xdead_beef);
        assert_eq!(words.load_u32(PAGE_SIZE + 4), 0xdead_beef);
        let mem = words.into_inner();
        let mut out = [0; 4];
        mem.read(PAGE_SIZE + 4, &mut out).unwrap();
        assert_eq!(u32::from_le_bytes(out), 0xdead_beef);
    }

    #[test]
    #[should_panic(expected = "past")]
    fn a_bus_address_past_the_end_is_a_bug() {
        SharedWords::new(buffer(vec![0x1000])).bus_addr(PAGE_SIZE);
    }

    /// Several threads at once: each owns a word it counts up in, all of them store to one
    /// common word values whose halves agree (a torn access would mix them), and a release
    /// store of a flag publishes a word written before it.
    fn hammer<D: DmaMemory>(words: &SharedWords<D>) {
        const THREADS: u32 = 4;
        const ROUNDS: u32 = 20_000;
        const COMMON: usize = 1024;
        const DATA: usize = 2048;
        const FLAG: usize = 2052;
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                s.spawn(move || {
                    let own = 4 * t as usize;
                    for i in 1..=ROUNDS {
                        words.store_u32(own, words.load_u32(own) + 1);
                        let half = (i ^ t) & 0xffff;
                        words.store_u32(COMMON, half << 16 | half);
                        let seen = words.load_u32(COMMON);
                        assert_eq!(seen >> 16, seen & 0xffff, "torn word {seen:#x}");
                    }
                });
            }
            s.spawn(|| {
                words.store_u32(DATA, 0x1234_5678);
                words.store_u32(FLAG, 1);
            });
            s.spawn(|| {
                while words.load_u32(FLAG) == 0 {
                    std::hint::spin_loop();
                }
                assert_eq!(words.load_u32(DATA), 0x1234_5678);
                done.store(true, Ordering::Relaxed);
            });
        });
        assert!(done.load(Ordering::Relaxed));
        for t in 0..THREADS as usize {
            assert_eq!(words.load_u32(4 * t), ROUNDS, "thread {t}'s word");
        }
    }

    #[test]
    fn threads_share_a_dma_buffer_through_words() {
        hammer(&SharedWords::new(buffer(vec![0x1000])));
    }

    #[test]
    fn threads_share_simulated_memory_through_words() {
        let bus = SimBus::new();
        hammer(&SharedWords::new(
            bus.alloc(DMA_PAGE_SIZE, DmaLayout::Scattered),
        ));
    }
}
