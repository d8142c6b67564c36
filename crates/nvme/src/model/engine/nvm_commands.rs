//! NVM command set I/O of the model, and PRP walking.

use super::{Engine, Outcome, generic, ok};
use crate::command::{Sqe, io};
use crate::platform::DMA_PAGE_SIZE;
use crate::status::sc;

const PAGE: u64 = DMA_PAGE_SIZE as u64;

impl Engine {
    pub(super) fn namespace(&self, nsid: u32) -> Option<crate::model::NamespaceConfig> {
        self.config
            .namespaces
            .get((nsid as usize).checked_sub(1)?)
            .copied()
    }

    /// Checks the LBA range of a block command; returns the namespace index and byte range.
    fn block_range(&self, sqe: &Sqe, blocks: u64) -> Result<(usize, usize, usize), Outcome> {
        let Some(ns) = self.namespace(sqe.nsid()) else {
            return Err(generic(sc::INVALID_NAMESPACE));
        };
        let slba = sqe.slba();
        if slba.checked_add(blocks).is_none_or(|end| end > ns.blocks) {
            return Err(generic(sc::LBA_OUT_OF_RANGE));
        }
        let start = (slba << ns.lba_shift) as usize;
        let len = (blocks << ns.lba_shift) as usize;
        Ok((sqe.nsid() as usize - 1, start, len))
    }

    pub(super) fn execute_io(&mut self, sqe: &Sqe) -> Outcome {
        match sqe.opcode() {
            io::READ | io::WRITE => {
                let blocks = (sqe.cdw(12) & 0xffff) as u64 + 1;
                let (ns, start, len) = match self.block_range(sqe, blocks) {
                    Ok(v) => v,
                    Err(outcome) => return outcome,
                };
                let mdts = self.config.mdts;
                if mdts != 0 && len > (DMA_PAGE_SIZE << self.config.mps_min) << mdts {
                    return generic(sc::INVALID_FIELD);
                }
                let segments = match self.transfer(sqe, len) {
                    Ok(s) => s,
                    Err(outcome) => return outcome,
                };
                self.stats.largest_transfer = self.stats.largest_transfer.max(len);
                let moved = if sqe.opcode() == io::READ {
                    self.stats.reads += 1;
                    let data = self.media[ns][start..start + len].to_vec();
                    self.scatter(&segments, &data)
                } else {
                    self.stats.writes += 1;
                    if sqe.cdw(12) & (1 << 30) != 0 {
                        self.stats.fua_writes += 1;
                    }
                    let mut data = vec![0; len];
                    let ok = self.gather(&segments, &mut data);
                    if ok {
                        self.media[ns][start..start + len].copy_from_slice(&data);
                    }
                    ok
                };
                if moved {
                    ok(0)
                } else {
                    generic(sc::DATA_TRANSFER_ERROR)
                }
            }
            io::FLUSH => {
                if sqe.nsid() != u32::MAX && self.namespace(sqe.nsid()).is_none() {
                    return generic(sc::INVALID_NAMESPACE);
                }
                self.stats.flushes += 1;
                ok(0)
            }
            io::WRITE_ZEROES => {
                let blocks = (sqe.cdw(12) & 0xffff) as u64 + 1;
                match self.block_range(sqe, blocks) {
                    Ok((ns, start, len)) => {
                        self.media[ns][start..start + len].fill(0);
                        self.stats.write_zeroes += 1;
                        ok(0)
                    }
                    Err(outcome) => outcome,
                }
            }
            io::DATASET_MANAGEMENT => self.dataset_management(sqe),
            _ => generic(sc::INVALID_OPCODE),
        }
    }

    fn dataset_management(&mut self, sqe: &Sqe) -> Outcome {
        let Some(ns) = self.namespace(sqe.nsid()) else {
            return generic(sc::INVALID_NAMESPACE);
        };
        let ranges = (sqe.cdw(10) & 0xff) as usize + 1;
        let segments = match self.transfer(sqe, ranges * 16) {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let mut raw = vec![0; ranges * 16];
        if !self.gather(&segments, &mut raw) {
            return generic(sc::DATA_TRANSFER_ERROR);
        }
        let mut parsed = Vec::with_capacity(ranges);
        for r in raw.chunks_exact(16) {
            let blocks = u32::from_le_bytes([r[4], r[5], r[6], r[7]]) as u64;
            let slba = u64::from_le_bytes(r[8..16].try_into().unwrap_or([0; 8]));
            if slba.checked_add(blocks).is_none_or(|end| end > ns.blocks) {
                return generic(sc::LBA_OUT_OF_RANGE);
            }
            parsed.push((slba, blocks));
        }
        if sqe.cdw(11) & (1 << 2) != 0 {
            let data = &mut self.media[sqe.nsid() as usize - 1];
            for (slba, blocks) in parsed {
                let start = (slba << ns.lba_shift) as usize;
                data[start..start + (blocks << ns.lba_shift) as usize].fill(0);
            }
            self.stats.deallocates += 1;
        }
        ok(0)
    }

    /// Every page a `len`-byte transfer of `sqe` refers to: data pages and PRP list pages.
    pub(super) fn transfer_pages(&mut self, sqe: &Sqe, len: usize) -> Option<Vec<u64>> {
        let mut lists = Vec::new();
        let segments = self.walk_prps(sqe, len, &mut lists).ok()?;
        lists.extend(segments.iter().map(|&(addr, _)| addr - addr % PAGE));
        Some(lists)
    }

    /// Walks PRP1/PRP2 (and chained PRP lists) of a `len`-byte transfer into bus segments.
    pub(super) fn transfer(&mut self, sqe: &Sqe, len: usize) -> Result<Vec<(u64, usize)>, Outcome> {
        self.walk_prps(sqe, len, &mut Vec::new())
    }

    /// [`Engine::transfer`], also noting the page of every PRP list page in `lists`.
    fn walk_prps(
        &mut self,
        sqe: &Sqe,
        len: usize,
        lists: &mut Vec<u64>,
    ) -> Result<Vec<(u64, usize)>, Outcome> {
        let prp_invalid = || generic(sc::PRP_OFFSET_INVALID);
        let (prp1, prp2) = (sqe.prp1(), sqe.prp2());
        if prp1 % 4 != 0 {
            return Err(prp_invalid());
        }
        let first = len.min(DMA_PAGE_SIZE - (prp1 % PAGE) as usize);
        let mut segments = vec![(prp1, first)];
        let mut remaining = len - first;
        if remaining == 0 {
            return Ok(segments);
        }
        if remaining <= DMA_PAGE_SIZE {
            if prp2 % PAGE != 0 {
                return Err(prp_invalid());
            }
            segments.push((prp2, remaining));
            return Ok(segments);
        }
        if prp2 % 8 != 0 {
            return Err(prp_invalid());
        }
        let mut entry_addr = prp2;
        let mut list_pages = 1;
        lists.push(prp2 - prp2 % PAGE);
        while remaining > 0 {
            let mut raw = [0u8; 8];
            if !self.bus.read(entry_addr, &mut raw) {
                return Err(generic(sc::DATA_TRANSFER_ERROR));
            }
            let entry = u64::from_le_bytes(raw);
            let last_in_page = entry_addr % PAGE == PAGE - 8;
            if entry % PAGE != 0 {
                return Err(prp_invalid());
            }
            if last_in_page && remaining > DMA_PAGE_SIZE {
                entry_addr = entry;
                list_pages += 1;
                lists.push(entry);
                continue;
            }
            let n = remaining.min(DMA_PAGE_SIZE);
            segments.push((entry, n));
            remaining -= n;
            entry_addr += 8;
        }
        self.stats.most_prp_list_pages = self.stats.most_prp_list_pages.max(list_pages);
        Ok(segments)
    }

    pub(super) fn scatter(&self, segments: &[(u64, usize)], data: &[u8]) -> bool {
        let mut done = 0;
        for &(addr, n) in segments {
            if !self.bus.write(addr, &data[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }

    pub(super) fn gather(&self, segments: &[(u64, usize)], data: &mut [u8]) -> bool {
        let mut done = 0;
        for &(addr, n) in segments {
            if !self.bus.read(addr, &mut data[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }
}
