//! Physical Region Page entries: how a command tells the controller where its data lives.
//!
//! DMA memory is contiguous on the bus only within one 4 KiB page, so every page of a transfer
//! gets its own entry. PRP1 may start inside a page; a transfer touching exactly two pages puts
//! the second page in PRP2; more pages go in a PRP list, whose last entry chains to the next list
//! page when one page of entries is not enough.

use crate::error::{Error, Result};
use crate::platform::{DMA_PAGE_SIZE, DmaMemory};

/// Entries in one PRP list page.
const ENTRIES_PER_PAGE: usize = DMA_PAGE_SIZE / 8;
/// Bytes of list entries staged on the stack before being copied to DMA memory (divides a page).
const CHUNK_BYTES: usize = 512;

/// The PRP list pages reserved for one command: `pages` whole pages of `mem` from `offset`.
#[derive(Debug)]
pub struct ListSpace<'a, L> {
    /// The memory holding the list pages.
    pub mem: &'a L,
    /// Byte offset of the first list page (page-aligned).
    pub offset: usize,
    /// How many list pages may be used.
    pub pages: usize,
}

/// How many pages a transfer of `len` bytes starting `offset` bytes into a page touches.
pub fn pages_touched(offset: usize, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    (offset % DMA_PAGE_SIZE + len).div_ceil(DMA_PAGE_SIZE)
}

/// How many list pages `entries` PRP list entries need, counting chain pointers.
pub fn list_pages_for(entries: usize) -> usize {
    if entries <= ENTRIES_PER_PAGE {
        1
    } else {
        1 + (entries - ENTRIES_PER_PAGE).div_ceil(ENTRIES_PER_PAGE - 1)
    }
}

/// Builds PRP1 and PRP2 for bytes `offset..offset + len` of `buf`, writing a (chained) PRP list
/// into `list` when the transfer touches more than two pages.
pub fn build<D: DmaMemory, L: DmaMemory>(
    buf: &D,
    offset: usize,
    len: usize,
    list: &ListSpace<'_, L>,
) -> Result<(u64, u64)> {
    if len == 0 {
        return Err(Error::InvalidRequest("empty data transfer".into()));
    }
    if !offset.is_multiple_of(4) {
        return Err(Error::InvalidRequest(format!(
            "buffer offset {offset} is not 4-byte aligned"
        )));
    }
    let end = offset
        .checked_add(len)
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| {
            Error::InvalidRequest(format!(
                "{len} bytes at offset {offset} do not fit a {}-byte buffer",
                buf.len()
            ))
        })?;
    let first_page = offset / DMA_PAGE_SIZE;
    let last_page = (end - 1) / DMA_PAGE_SIZE;
    let prp1 = buf.bus_addr(offset);
    if first_page == last_page {
        return Ok((prp1, 0));
    }
    if last_page == first_page + 1 {
        return Ok((prp1, buf.bus_addr(last_page * DMA_PAGE_SIZE)));
    }
    let entries = last_page - first_page;
    let needed = list_pages_for(entries);
    if needed > list.pages {
        return Err(Error::InvalidRequest(format!(
            "transfer needs {needed} PRP list pages, {} reserved",
            list.pages
        )));
    }
    // Entries are staged in a small chunk (a whole list page would cost a 4 KiB memset per
    // command) and copied out when it fills, at a chain pointer, and at the end.
    let mut chunk = [0u8; CHUNK_BYTES];
    let mut staged = 0;
    let mut list_index = 0;
    let mut slot = 0;
    let write_out = |list_index: usize, slot: usize, chunk: &[u8; CHUNK_BYTES], staged: usize| {
        let at = list.offset + list_index * DMA_PAGE_SIZE + (slot - staged) * 8;
        list.mem.write(at, &chunk[..staged * 8]);
    };
    for (i, data_page) in (first_page + 1..=last_page).enumerate() {
        let remaining = entries - i;
        if slot == ENTRIES_PER_PAGE - 1 && remaining > 1 {
            let next = list
                .mem
                .bus_addr(list.offset + (list_index + 1) * DMA_PAGE_SIZE);
            chunk[staged * 8..staged * 8 + 8].copy_from_slice(&next.to_le_bytes());
            write_out(list_index, slot + 1, &chunk, staged + 1);
            list_index += 1;
            slot = 0;
            staged = 0;
        }
        let addr = buf.bus_addr(data_page * DMA_PAGE_SIZE);
        chunk[staged * 8..staged * 8 + 8].copy_from_slice(&addr.to_le_bytes());
        staged += 1;
        slot += 1;
        if staged == CHUNK_BYTES / 8 {
            write_out(list_index, slot, &chunk, staged);
            staged = 0;
        }
    }
    if staged > 0 {
        write_out(list_index, slot, &chunk, staged);
    }
    Ok((prp1, list.mem.bus_addr(list.offset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DmaLayout;
    use crate::model::memory::Bus;
    use proptest::prelude::*;

    /// Walks PRP1/PRP2 the way a controller does and returns the address of every data page.
    fn walk(bus: &Bus, prp1: u64, prp2: u64, len: usize) -> (Vec<u64>, usize) {
        let page = DMA_PAGE_SIZE as u64;
        let mut pages = vec![prp1];
        let mut rest = len.saturating_sub((page - prp1 % page) as usize);
        if rest == 0 {
            return (pages, 0);
        }
        if rest <= DMA_PAGE_SIZE {
            pages.push(prp2);
            return (pages, 0);
        }
        let (mut at, mut list_pages) = (prp2, 1);
        while rest > 0 {
            let mut raw = [0u8; 8];
            assert!(
                bus.read(at, &mut raw),
                "list entry at {at:#x} is not mapped"
            );
            let entry = u64::from_le_bytes(raw);
            if at % page == page - 8 && rest > DMA_PAGE_SIZE {
                at = entry;
                list_pages += 1;
                continue;
            }
            pages.push(entry);
            rest = rest.saturating_sub(DMA_PAGE_SIZE);
            at += 8;
        }
        (pages, list_pages)
    }

    proptest! {
        #[test]
        fn every_page_is_named_once_in_order(
            offset in (0usize..2048).prop_map(|o| o * 4),
            len in 1usize..(3 << 20),
            scattered in any::<bool>(),
        ) {
            let layout = if scattered { DmaLayout::Scattered } else { DmaLayout::Contiguous };
            let bus = Bus::new();
            let buf = bus.alloc(offset + len, layout);
            let touched = pages_touched(offset, len);
            let needed = if touched > 2 { list_pages_for(touched - 1) } else { 0 };
            let lists = bus.alloc(needed.max(1) * DMA_PAGE_SIZE, layout);
            let space = ListSpace { mem: &lists, offset: 0, pages: needed };
            let (prp1, prp2) = build(&buf, offset, len, &space).unwrap();
            let (pages, list_pages) = walk(&bus, prp1, prp2, len);
            let first = offset / DMA_PAGE_SIZE;
            let mut expected = vec![buf.bus_addr(offset)];
            expected.extend((first + 1..first + touched).map(|p| buf.bus_addr(p * DMA_PAGE_SIZE)));
            prop_assert_eq!(pages, expected);
            prop_assert_eq!(list_pages, needed);
            if needed > 0 {
                let short = ListSpace { mem: &lists, offset: 0, pages: needed - 1 };
                prop_assert!(build(&buf, offset, len, &short).is_err());
            }
        }
    }

    #[test]
    fn counts_pages_with_the_first_page_offset() {
        assert_eq!(pages_touched(0, 4096), 1);
        assert_eq!(pages_touched(512, 4096), 2);
        assert_eq!(pages_touched(4092, 8), 2);
        assert_eq!(pages_touched(0, 8192), 2);
        assert_eq!(pages_touched(0, 8193), 3);
    }

    #[test]
    fn list_pages_account_for_chain_pointers() {
        assert_eq!(list_pages_for(1), 1);
        assert_eq!(list_pages_for(512), 1);
        assert_eq!(list_pages_for(513), 2);
        assert_eq!(list_pages_for(1023), 2);
        assert_eq!(list_pages_for(1024), 3);
    }
}
