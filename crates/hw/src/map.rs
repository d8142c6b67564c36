//! Owned memory mappings and the only raw-pointer access in the crate.
//!
//! A [`Mapping`] is unmapped exactly once, in `Drop`, and every access goes through a bounds and
//! alignment check first. Register and DMA memory can change behind the compiler's back, so it
//! is treated as I/O memory: never borrowed as a Rust reference, reached only by volatile loads
//! and stores (bulk copies included), with fences ordering them against doorbells.

use std::ffi::c_void;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};

use rustix::mm::{self, MapFlags, ProtFlags};

use crate::error::{Error, Result};

/// The base page size everything here is expressed in.
pub const PAGE_SIZE: usize = 4096;

/// Rounds `len` up to whole 4 KiB pages (`None` on overflow).
pub fn round_up_to_page(len: usize) -> Option<usize> {
    len.checked_add(PAGE_SIZE - 1).map(|l| l & !(PAGE_SIZE - 1))
}

/// A shared read/write mapping of memory this value owns, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to this value alone (only `Drop` unmaps it) and nothing about it
// is tied to the creating thread; moving the pointer to another thread changes nothing.
unsafe impl Send for Mapping {}
// SAFETY: `&self` hands out no references into the memory, only bounds-checked volatile loads
// and stores of memory outside any Rust allocation (device registers, DMA memory the device
// writes too). The public types over it limit sharing further: `DmaBuffer` is `!Sync`, and the
// only `Sync` one, `Mmio`, is over a BAR outside the process's RAM (its in-memory stand-in is
// test-only).
unsafe impl Sync for Mapping {}

/// How anonymous memory is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Ordinary pages, populated up front (after `MADV_DONTFORK`).
    Normal,
    /// 2 MiB hugetlbfs pages, populated (after `MADV_DONTFORK`) and locked: never swapped, and not moved by reclaim or
    /// ordinary compaction, so the physical addresses looked up once hold (memory offlining and
    /// contiguous-range allocation, which can migrate hugepages, aside).
    Huge,
}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset` shared and read/write (a BAR or a VFIO region).
    pub(crate) fn of_file(fd: impl AsFd, len: usize, offset: u64, what: &str) -> Result<Self> {
        if len == 0 {
            return Err(Error::WrongState(format!("{what} has size 0")));
        }
        // SAFETY: a fresh mapping at an address the kernel picks (null hint, no MAP_FIXED)
        // cannot replace or alias any existing Rust object; the result is checked before use.
        // The files mapped here (sysfs `resource0`, a VFIO region) have a size fixed by the
        // hardware, so the range stays backed; an access after the device was removed or its
        // memory decoding disabled reads all ones or raises SIGBUS, neither touching our memory.
        let ptr = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                offset,
            )
        }
        .map_err(|e| Error::io(format!("mmap of {what} ({len:#x} bytes)"), e))?;
        Ok(Self::from_raw(ptr, len))
    }

    /// Maps `len` zeroed, populated bytes of anonymous memory that no child of `fork` inherits.
    ///
    /// The order matters: a child of `fork` (which safe `Command` options can cause) would share
    /// private pages copy-on-write, so our next store would move us to a fresh copy while the
    /// device kept the old frame, which the child frees at `exec`. `MADV_DONTFORK` is therefore
    /// set on the empty mapping, before any page is populated (and long before one is
    /// translated for the device): a `fork` racing with this call sees either no pages or pages
    /// it does not inherit.
    pub(crate) fn anonymous(len: usize, backing: Backing) -> Result<Self> {
        if len == 0 {
            return Err(Error::WrongState("anonymous mapping of size 0".into()));
        }
        // No MAP_POPULATE and no MAP_LOCKED: both fault the pages in inside mmap, before
        // MADV_DONTFORK could be set.
        let mut flags = MapFlags::PRIVATE | MapFlags::NORESERVE;
        if backing == Backing::Huge {
            // Explicitly 2 MiB: with another default hugepage size, `len` (a 2 MiB multiple)
            // would not be a whole number of pages and `munmap` would fail. Hugetlb mappings
            // reserve their pages at mmap time whatever NORESERVE says, so a shortage shows here.
            flags = MapFlags::PRIVATE | MapFlags::HUGETLB | MapFlags::HUGE_2MB;
        }
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing; the
        // result is checked before use.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                flags,
            )
        }
        .map_err(|e| match backing {
            Backing::Huge => Error::Unsupported(format!(
                "cannot map {len:#x} bytes of hugepages ({e}); reserve some with \
                 `echo N > /proc/sys/vm/nr_hugepages`"
            )),
            Backing::Normal => Error::io(format!("anonymous mmap of {len:#x} bytes"), e),
        })?;
        let this = Self::from_raw(ptr, len);
        #[cfg(test)]
        tests::note_resident_before_dontfork(&this);
        // SAFETY: the range is exactly the mapping just created and owned by `this`;
        // MADV_DONTFORK changes only what a future child inherits, never the contents here.
        unsafe { mm::madvise(ptr, len, mm::Advice::LinuxDontFork) }
            .map_err(|e| Error::io("madvise(MADV_DONTFORK) of DMA memory", e))?;
        // Only now are the pages faulted in: one store per 4 KiB page (they read as zero).
        for offset in (0..len).step_by(PAGE_SIZE) {
            this.write_u32(offset, 0)?;
        }
        if backing == Backing::Huge {
            // Hugetlb pages are never swapped; locking them also keeps them off any list
            // reclaim walks, so the physical addresses looked up once hold.
            // SAFETY: the range is exactly the mapping owned by `this`; mlock changes residency,
            // never contents or validity.
            unsafe { mm::mlock(ptr, len) }
                .map_err(|e| Error::io(format!("mlock of {len:#x} bytes of hugepages"), e))?;
        }
        Ok(this)
    }

    fn from_raw(ptr: *mut c_void, len: usize) -> Self {
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null on success");
        Self { ptr, len }
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The virtual address of the first byte (for pagemap lookups and IOMMU mapping).
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// A pointer to `len` bytes at `offset`, checked to lie inside and be `align`-aligned (the
    /// base is page-aligned, as every mmap result is, so an aligned offset is an aligned address).
    fn at(&self, offset: usize, len: usize, align: usize) -> Result<*mut u8> {
        let end = offset.checked_add(len);
        if end.is_none_or(|end| end > self.len) || !offset.is_multiple_of(align) {
            return Err(Error::OutOfBounds {
                offset,
                len,
                size: self.len,
            });
        }
        Ok(self.ptr.as_ptr().wrapping_add(offset))
    }

    /// Volatile 32-bit read at a 4-byte aligned offset.
    pub(crate) fn read_u32(&self, offset: usize) -> Result<u32> {
        let p = self.at(offset, 4, 4)?.cast::<u32>();
        // SAFETY: `at` checked that the 4 bytes lie inside the live mapping and are aligned.
        let value = unsafe { p.read_volatile() };
        fence(Ordering::Acquire);
        Ok(value)
    }

    /// Volatile 32-bit write at a 4-byte aligned offset, ordered after every earlier store.
    pub(crate) fn write_u32(&self, offset: usize, value: u32) -> Result<()> {
        let p = self.at(offset, 4, 4)?.cast::<u32>();
        fence(Ordering::Release);
        // SAFETY: `at` checked that the 4 bytes lie inside the live mapping and are aligned.
        unsafe { p.write_volatile(value) };
        Ok(())
    }

    /// Atomic 32-bit load (`Acquire`) at a 4-byte aligned offset, for DMA memory.
    ///
    /// Atomic rather than volatile: the word may be shared by threads (see `SharedWords`), and
    /// two threads reaching the same bytes by volatile accesses would be a data race. An
    /// aligned atomic load is a single access the compiler may not tear (a plain `mov` on x86);
    /// it cannot prove the word unobserved (the mapping's address escaped to the kernel and the
    /// device), so it does not drop or merge it either.
    pub(crate) fn load_u32(&self, offset: usize) -> Result<u32> {
        let p = self.at(offset, 4, 4)?.cast::<u32>();
        // SAFETY: `at` checked that the 4 bytes lie inside the live mapping (valid for reads
        // and writes until `Drop`) and are 4-byte aligned. No non-atomic or other-sized access
        // to them can race with this one: DMA memory is reached through a `DmaBuffer`, which
        // covers its bytes alone and is `!Sync`, so its owner's volatile copies happen on one
        // thread at a time, ordered by program order (or by the synchronisation that moved the
        // buffer) against this access; the only way to share a buffer between threads is
        // `SharedWords`, which reaches it through these two 32-bit atomic accesses alone.
        let word = unsafe { AtomicU32::from_ptr(p) };
        Ok(word.load(Ordering::Acquire))
    }

    /// Atomic 32-bit store (`Release`: ordered after every earlier load and store) at a 4-byte
    /// aligned offset, for DMA memory. See [`Mapping::load_u32`].
    pub(crate) fn store_u32(&self, offset: usize, value: u32) -> Result<()> {
        let p = self.at(offset, 4, 4)?.cast::<u32>();
        // SAFETY: as in `load_u32`.
        let word = unsafe { AtomicU32::from_ptr(p) };
        word.store(value, Ordering::Release);
        Ok(())
    }

    /// Volatile 64-bit read at an 8-byte aligned offset.
    pub(crate) fn read_u64(&self, offset: usize) -> Result<u64> {
        let p = self.at(offset, 8, 8)?.cast::<u64>();
        // SAFETY: `at` checked that the 8 bytes lie inside the live mapping and are aligned.
        let value = unsafe { p.read_volatile() };
        fence(Ordering::Acquire);
        Ok(value)
    }

    /// Volatile 64-bit write at an 8-byte aligned offset, ordered after every earlier store.
    pub(crate) fn write_u64(&self, offset: usize, value: u64) -> Result<()> {
        let p = self.at(offset, 8, 8)?.cast::<u64>();
        fence(Ordering::Release);
        // SAFETY: `at` checked that the 8 bytes lie inside the live mapping and are aligned.
        unsafe { p.write_volatile(value) };
        Ok(())
    }

    /// Copies bytes out, ordered after every earlier load (such as a completion's phase bit).
    ///
    /// The device may write this memory at any time, so every load is volatile (8 bytes at a
    /// time where aligned): a plain `memcpy` would be a data race the compiler may exploit.
    pub(crate) fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let p = self.at(offset, out.len(), 1)?;
        fence(Ordering::Acquire);
        let (head, body) = word_split(p as usize, out.len());
        for i in (0..head).chain(body..out.len()) {
            // SAFETY: `at` checked that `[p, p + out.len())` lies inside the live mapping;
            // a byte load has no alignment requirement.
            out[i] = unsafe { p.wrapping_add(i).read_volatile() };
        }
        for (i, chunk) in out[head..body].chunks_exact_mut(8).enumerate() {
            let src = p.wrapping_add(head + 8 * i).cast::<u64>();
            // SAFETY: the 8 bytes lie inside the range `at` checked, and `word_split` put
            // `p + head` (hence every word after it) on an 8-byte boundary.
            let word = unsafe { src.read_volatile() };
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        Ok(())
    }

    /// Copies bytes in; a later register write (doorbell) is ordered after them.
    ///
    /// Volatile stores, 8 bytes at a time where aligned, for the same reason as `copy_out`.
    pub(crate) fn copy_in(&self, offset: usize, data: &[u8]) -> Result<()> {
        let p = self.at(offset, data.len(), 1)?;
        let (head, body) = word_split(p as usize, data.len());
        for i in (0..head).chain(body..data.len()) {
            // SAFETY: `at` checked that `[p, p + data.len())` lies inside the live mapping;
            // a byte store has no alignment requirement.
            unsafe { p.wrapping_add(i).write_volatile(data[i]) };
        }
        for (i, chunk) in data[head..body].chunks_exact(8).enumerate() {
            let dst = p.wrapping_add(head + 8 * i).cast::<u64>();
            let word = u64::from_ne_bytes(chunk.try_into().expect("chunks of 8"));
            // SAFETY: the 8 bytes lie inside the range `at` checked, and `word_split` put
            // `p + head` (hence every word after it) on an 8-byte boundary.
            unsafe { dst.write_volatile(word) };
        }
        fence(Ordering::Release);
        Ok(())
    }
}

/// Splits `len` bytes at address `addr` into bytes `[0, head)` before the first 8-byte
/// boundary, whole words in `[head, body)`, and a tail `[body, len)`.
fn word_split(addr: usize, len: usize) -> (usize, usize) {
    let head = (addr.wrapping_neg() % 8).min(len);
    (head, head + (len - head) / 8 * 8)
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and nobody else unmaps;
        // after drop no access through it is possible.
        let result = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert!(result.is_ok(), "munmap failed: {result:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_pages() {
        assert_eq!(round_up_to_page(0), Some(0));
        assert_eq!(round_up_to_page(1), Some(4096));
        assert_eq!(round_up_to_page(4096), Some(4096));
        assert_eq!(round_up_to_page(4097), Some(8192));
        assert_eq!(round_up_to_page(usize::MAX), None);
    }

    #[test]
    fn anonymous_memory_is_zeroed_and_round_trips() {
        let m = Mapping::anonymous(8192, Backing::Normal).unwrap();
        let mut buf = [0xffu8; 16];
        m.copy_out(4090, &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
        m.copy_in(4094, b"cross").unwrap();
        m.copy_out(4094, &mut buf[..5]).unwrap();
        assert_eq!(&buf[..5], b"cross");
        m.write_u64(8184, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(m.read_u32(8184).unwrap(), 0x0506_0708);
        assert_eq!(m.read_u32(8188).unwrap(), 0x0102_0304);
    }

    #[test]
    fn rejects_out_of_bounds_and_misaligned() {
        let m = Mapping::anonymous(4096, Backing::Normal).unwrap();
        assert!(matches!(m.read_u32(4096), Err(Error::OutOfBounds { .. })));
        assert!(m.read_u32(4092).is_ok());
        assert!(m.read_u64(4092).is_err());
        assert!(m.read_u32(2).is_err());
        assert!(m.write_u64(4, 0).is_err());
        assert!(m.copy_in(4000, &[0; 97]).is_err());
        assert!(m.copy_out(usize::MAX, &mut [0; 2]).is_err());
        assert!(Mapping::anonymous(0, Backing::Normal).is_err());
    }

    #[test]
    fn volatile_copies_move_exactly_the_bytes_asked_for_at_any_alignment() {
        let m = Mapping::anonymous(4096, Backing::Normal).unwrap();
        for offset in 0..17 {
            for len in 0..41 {
                let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7) | 1).collect();
                m.copy_in(0, &[0; 64]).unwrap();
                m.copy_in(offset, &data).unwrap();
                let mut all = [0xee; 64];
                m.copy_out(0, &mut all).unwrap();
                let mut expected = [0u8; 64];
                expected[offset..offset + len].copy_from_slice(&data);
                assert_eq!(all, expected, "offset {offset} len {len}");
                let mut back = vec![0xee; len];
                m.copy_out(offset, &mut back).unwrap();
                assert_eq!(back, data, "offset {offset} len {len}");
            }
        }
    }

    #[test]
    fn word_split_covers_the_range_in_three_aligned_parts() {
        assert_eq!(word_split(0x1000, 20), (0, 16));
        assert_eq!(word_split(0x1003, 20), (5, 13));
        assert_eq!(word_split(0x1003, 4), (4, 4));
        assert_eq!(word_split(0x1007, 0), (0, 0));
    }

    /// The `VmFlags` line of the smaps entry that starts at `addr`.
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{addr:x}-");
        smaps
            .lines()
            .skip_while(|l| !l.starts_with(&start))
            .find(|l| l.starts_with("VmFlags:"))
            .unwrap_or_else(|| panic!("no smaps entry at {addr:#x}"))
            .to_owned()
    }

    std::thread_local! {
        /// Resident pages of the last anonymous mapping at the moment MADV_DONTFORK was set.
        static RESIDENT_AT_DONTFORK: std::cell::Cell<Option<usize>> =
            const { std::cell::Cell::new(None) };
    }

    /// Called by `Mapping::anonymous` just before MADV_DONTFORK: records how many of the
    /// mapping's pages the kernel reports present (pagemap's present bit needs no privilege).
    pub(super) fn note_resident_before_dontfork(m: &Mapping) {
        let pagemap = crate::pagemap::Pagemap::open().unwrap();
        let resident = (0..m.len() / PAGE_SIZE)
            .filter(|i| pagemap.entry(m.addr() + i * PAGE_SIZE).unwrap() & (1 << 63) != 0)
            .count();
        RESIDENT_AT_DONTFORK.with(|r| r.set(Some(resident)));
    }

    #[test]
    fn dont_fork_is_set_before_any_page_is_populated() {
        let m = Mapping::anonymous(8 * PAGE_SIZE, Backing::Normal).unwrap();
        assert_eq!(
            RESIDENT_AT_DONTFORK.with(|r| r.get()),
            Some(0),
            "a fork racing with the allocation could share populated pages"
        );
        let pagemap = crate::pagemap::Pagemap::open().unwrap();
        for page in 0..8 {
            let entry = pagemap.entry(m.addr() + page * PAGE_SIZE).unwrap();
            assert_ne!(entry & (1 << 63), 0, "page {page} is populated before use");
        }
    }

    #[test]
    fn dma_memory_is_not_inherited_by_forked_children() {
        let m = Mapping::anonymous(2 * PAGE_SIZE, Backing::Normal).unwrap();
        let flags = vm_flags(m.addr());
        assert!(
            flags.split_whitespace().any(|f| f == "dc"),
            "MADV_DONTFORK missing: {flags}"
        );
    }
}
