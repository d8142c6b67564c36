//! One submission/completion queue pair in DMA memory: tails, heads, phase tag and doorbells.

use std::sync::atomic::{Ordering, fence};

use crate::command::{CQE_SIZE, Cqe, SQE_SIZE, Sqe};
use crate::error::Result;
use crate::platform::{DMA_PAGE_SIZE, DmaMemory, Platform};
use crate::regs;

/// The rings of one queue pair and the host's view of their pointers.
pub(crate) struct Rings<D> {
    pub(crate) qid: u16,
    pub(crate) entries: u16,
    sq: D,
    cq: D,
    sq_tail: u16,
    /// The controller's SQ head as last reported in a completion (CQE.SQHD).
    sq_head: u16,
    cq_head: u16,
    phase: bool,
    sq_doorbell: usize,
    cq_doorbell: usize,
}

/// Bytes from the start of `mem` that are contiguous on the bus.
pub(crate) fn contiguous_len<D: DmaMemory>(mem: &D) -> usize {
    let base = mem.bus_addr(0);
    let mut len = DMA_PAGE_SIZE;
    while len < mem.len() && mem.bus_addr(len) == base + len as u64 {
        len += DMA_PAGE_SIZE;
    }
    len.min(mem.len())
}

impl<D: DmaMemory> Rings<D> {
    /// Allocates rings of up to `wanted` entries; fewer when the memory is not contiguous
    /// enough (queues must be physically contiguous).
    pub(crate) fn new<P: Platform<Dma = D>>(
        platform: &P,
        qid: u16,
        wanted: u16,
        stride: usize,
    ) -> Result<Rings<D>> {
        let wanted = wanted.max(2) as usize;
        let sq = platform.alloc_dma(wanted * SQE_SIZE)?;
        let cq = platform.alloc_dma(wanted * CQE_SIZE)?;
        let fit = (contiguous_len(&sq) / SQE_SIZE).min(contiguous_len(&cq) / CQE_SIZE);
        let entries = wanted.min(fit).min(u16::MAX as usize) as u16;
        Ok(Rings {
            qid,
            entries,
            sq,
            cq,
            sq_tail: 0,
            sq_head: 0,
            cq_head: 0,
            phase: true,
            sq_doorbell: regs::sq_tail_doorbell(qid, stride),
            cq_doorbell: regs::cq_head_doorbell(qid, stride),
        })
    }

    /// Bus address of the submission ring.
    pub(crate) fn sq_addr(&self) -> u64 {
        self.sq.bus_addr(0)
    }

    /// Bus address of the completion ring.
    pub(crate) fn cq_addr(&self) -> u64 {
        self.cq.bus_addr(0)
    }

    /// Back to the state of a freshly created queue: empty, CQ zeroed, phase 1.
    pub(crate) fn reset(&mut self) {
        let zeros = [0u8; DMA_PAGE_SIZE];
        let mut at = 0;
        while at < self.cq.len() {
            self.cq.write(at, &zeros);
            at += DMA_PAGE_SIZE;
        }
        self.sq_tail = 0;
        self.sq_head = 0;
        self.cq_head = 0;
        self.phase = true;
    }

    /// Entries the submission ring can still take (one slot always stays empty).
    pub(crate) fn sq_space(&self) -> usize {
        let used = (self.sq_tail + self.entries - self.sq_head) % self.entries;
        (self.entries - 1 - used) as usize
    }

    /// Copies `sqe` to the tail (the doorbell is written later, by [`Rings::ring_sq`]).
    pub(crate) fn push(&mut self, sqe: &Sqe) {
        self.sq
            .write(self.sq_tail as usize * SQE_SIZE, &sqe.to_bytes());
        self.sq_tail = (self.sq_tail + 1) % self.entries;
    }

    /// Tells the controller about every entry pushed so far.
    pub(crate) fn ring_sq<P: Platform<Dma = D>>(&self, platform: &P) {
        fence(Ordering::Release);
        platform.write32(self.sq_doorbell, self.sq_tail as u32);
    }

    /// Takes the next completion if the controller has posted one.
    pub(crate) fn next_cqe(&mut self) -> Option<Cqe> {
        let at = self.cq_head as usize * CQE_SIZE;
        let dw3 = self.cq.read_u32(at + 12);
        if (dw3 & (1 << 16) != 0) != self.phase {
            return None;
        }
        fence(Ordering::Acquire);
        let mut rest = [0u8; 12];
        self.cq.read(at, &mut rest);
        let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let cqe = Cqe::from_dwords([word(0), word(4), word(8), dw3]);
        self.cq_head += 1;
        if self.cq_head == self.entries {
            self.cq_head = 0;
            self.phase = !self.phase;
        }
        if cqe.sq_head < self.entries {
            self.sq_head = cqe.sq_head;
        }
        Some(cqe)
    }

    /// Tells the controller how far completions have been consumed.
    pub(crate) fn ring_cq<P: Platform<Dma = D>>(&self, platform: &P) {
        platform.write32(self.cq_doorbell, self.cq_head as u32);
    }
}
