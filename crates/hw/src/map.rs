//! Owned memory mappings and the only raw-pointer access in the crate.
//!
//! A [`Mapping`] is unmapped exactly once, in `Drop`, and every access goes through a bounds and
//! alignment check first. Register and DMA memory can change behind the compiler's back, so
//! scalar access is volatile and bulk copies are fenced.

use std::ffi::c_void;
use std::os::fd::AsFd;
use std::ptr::NonNull;
use std::sync::atomic::{Ordering, fence};

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

// SAFETY: the mapping is plain process memory (or device memory) owned by this value alone; the
// raw pointer is not tied to the creating thread.
unsafe impl Send for Mapping {}
// SAFETY: all access through `&self` is volatile scalar access or fenced copies of memory that is
// outside Rust's object model (device registers, DMA memory); the users that need exclusivity
// (DMA buffers) are `!Sync` themselves.
unsafe impl Sync for Mapping {}

/// How anonymous memory is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// Ordinary pages, populated up front.
    Normal,
    /// 2 MiB hugetlbfs pages, populated and locked (they never move, so physical addresses hold).
    Huge,
}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset` shared and read/write (a BAR or a VFIO region).
    pub(crate) fn of_file(fd: impl AsFd, len: usize, offset: u64, what: &str) -> Result<Self> {
        if len == 0 {
            return Err(Error::WrongState(format!("{what} has size 0")));
        }
        // SAFETY: a fresh mapping at an address the kernel picks (null hint) cannot alias any
        // existing Rust object; the result is checked before use.
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

    /// Maps `len` zeroed, populated bytes of anonymous memory.
    pub(crate) fn anonymous(len: usize, backing: Backing) -> Result<Self> {
        if len == 0 {
            return Err(Error::WrongState("anonymous mapping of size 0".into()));
        }
        let mut flags = MapFlags::PRIVATE | MapFlags::POPULATE;
        if backing == Backing::Huge {
            flags |= MapFlags::HUGETLB | MapFlags::LOCKED;
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
        Ok(Self::from_raw(ptr, len))
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

    /// A pointer to `len` bytes at `offset`, checked to lie inside and be `align`-aligned.
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
    pub(crate) fn copy_out(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let p = self.at(offset, out.len(), 1)?;
        fence(Ordering::Acquire);
        // SAFETY: `at` checked the source range lies inside the live mapping; `out` is a
        // distinct Rust slice, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies bytes in; a later register write (doorbell) is ordered after them.
    pub(crate) fn copy_in(&self, offset: usize, data: &[u8]) -> Result<()> {
        let p = self.at(offset, data.len(), 1)?;
        // SAFETY: `at` checked the destination range lies inside the live mapping; `data` is a
        // distinct Rust slice, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        fence(Ordering::Release);
        Ok(())
    }
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
}
