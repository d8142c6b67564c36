//! Virtual-to-physical translation through `/proc/self/pagemap`, one 4 KiB page at a time.
//!
//! Without an IOMMU the device sees physical addresses. Physical contiguity is never assumed
//! beyond one page: every 4 KiB page of a buffer is looked up on its own.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};
use crate::map::PAGE_SIZE;

const PRESENT: u64 = 1 << 63;
const SWAPPED: u64 = 1 << 62;
const PFN_MASK: u64 = (1 << 55) - 1;

/// Decodes one pagemap entry into a page frame number.
pub fn frame_number(entry: u64) -> Result<u64> {
    if entry & PRESENT == 0 {
        return Err(Error::WrongState("page is not resident".into()));
    }
    if entry & SWAPPED != 0 {
        return Err(Error::WrongState("page is swapped out".into()));
    }
    match entry & PFN_MASK {
        0 => Err(Error::Unsupported(
            "pagemap hides physical addresses (needs CAP_SYS_ADMIN: run as root)".into(),
        )),
        pfn => Ok(pfn),
    }
}

/// The physical address of `virt` given its page's pagemap entry (an error, not a wrapped
/// address, if the frame number does not fit in 64 bits of address).
pub fn physical_address(entry: u64, virt: usize) -> Result<u64> {
    frame_number(entry)?
        .checked_mul(PAGE_SIZE as u64)
        .map(|page| page + (virt % PAGE_SIZE) as u64)
        .ok_or_else(|| Error::WrongState(format!("pagemap entry {entry:#x} is out of range")))
}

/// An open `/proc/self/pagemap`.
#[derive(Debug)]
pub struct Pagemap {
    file: File,
}

impl Pagemap {
    /// Opens this process's pagemap.
    pub fn open() -> Result<Self> {
        let file = File::open("/proc/self/pagemap")
            .map_err(|e| Error::io("open /proc/self/pagemap", e))?;
        Ok(Self { file })
    }

    /// The raw entry for the page holding virtual address `virt`.
    pub fn entry(&self, virt: usize) -> Result<u64> {
        let mut raw = [0u8; 8];
        let at = (virt / PAGE_SIZE) as u64 * 8;
        self.file
            .read_exact_at(&mut raw, at)
            .map_err(|e| Error::io(format!("read pagemap entry for {virt:#x}"), e))?;
        Ok(u64::from_ne_bytes(raw))
    }

    /// The physical address of virtual address `virt` (which must be resident).
    pub fn physical(&self, virt: usize) -> Result<u64> {
        physical_address(self.entry(virt)?, virt)
    }

    /// The physical address of each 4 KiB page of `[virt, virt + len)` (`virt` page-aligned).
    pub fn physical_pages(&self, virt: usize, len: usize) -> Result<Vec<u64>> {
        (0..len.div_ceil(PAGE_SIZE))
            .map(|i| self.physical(virt + i * PAGE_SIZE))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{Backing, Mapping};

    #[test]
    fn decodes_entries() {
        assert_eq!(frame_number(PRESENT | 0x8800).unwrap(), 0x8800);
        assert_eq!(frame_number(PRESENT | (1 << 55) | 0x12).unwrap(), 0x12);
        assert!(matches!(frame_number(0x8800), Err(Error::WrongState(_))));
        assert!(matches!(
            frame_number(PRESENT | SWAPPED | 5),
            Err(Error::WrongState(_))
        ));
        assert!(matches!(frame_number(PRESENT), Err(Error::Unsupported(_))));
        assert_eq!(
            physical_address(PRESENT | 0x8800, 0x7f00_0123).unwrap(),
            0x880_0123
        );
        assert!(matches!(
            physical_address(PRESENT | PFN_MASK, 0),
            Err(Error::WrongState(_))
        ));
    }

    #[test]
    fn populated_memory_is_reported_present() {
        let m = Mapping::anonymous(2 * PAGE_SIZE, Backing::Normal).unwrap();
        let pagemap = Pagemap::open().unwrap();
        for page in 0..2 {
            let entry = pagemap.entry(m.addr() + page * PAGE_SIZE).unwrap();
            assert_ne!(entry & PRESENT, 0, "allocation populates the page");
        }
        // Root sees frame numbers; others get a clear error instead of address 0.
        match pagemap.physical(m.addr() + 12) {
            Ok(phys) => assert_eq!(phys % PAGE_SIZE as u64, 12),
            Err(e) => assert!(matches!(e, Error::Unsupported(_))),
        }
    }
}
