//! One submission/completion queue pair in DMA memory: tails, heads, phase tag and doorbells.

use std::sync::atomic::{Ordering, fence};

use crate::command::{CQE_SIZE, Cqe, SQE_SIZE, Sqe};
use crate::error::Result;
use crate::platform::{DMA_PAGE_SIZE, DmaMemory, Platform};
use crate::regs;
use crate::retained::Retained;

/// The rings of one queue pair and the host's view of their pointers.
pub(crate) struct Rings<D> {
    pub(crate) qid: u16,
    pub(crate) entries: u16,
    sq: Retained<D>,
    cq: Retained<D>,
    sq_tail: u16,
    /// The controller's SQ head as last reported in a completion (CQE.SQHD).
    sq_head: u16,
    cq_head: u16,
    /// Completions consumed since the CQ head doorbell was last written.
    unacked: u16,
    phase: bool,
    sq_doorbell: usize,
    cq_doorbell: usize,
    /// The interrupt vector the completion queue raises (`None`: interrupts off, polled).
    pub(crate) vector: Option<u16>,
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
            sq: Retained::new(sq),
            cq: Retained::new(cq),
            sq_tail: 0,
            sq_head: 0,
            cq_head: 0,
            unacked: 0,
            phase: true,
            sq_doorbell: regs::sq_tail_doorbell(qid, stride),
            cq_doorbell: regs::cq_head_doorbell(qid, stride),
            vector: None,
        })
    }

    /// Takes the rings' memory out, to park or leak it; the rings are unusable afterwards.
    pub(crate) fn take_memory(&mut self) -> Vec<D> {
        [self.sq.take(), self.cq.take()]
            .into_iter()
            .flatten()
            .collect()
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
        self.unacked = 0;
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
        self.unacked += 1;
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
    pub(crate) fn ring_cq<P: Platform<Dma = D>>(&mut self, platform: &P) {
        platform.write32(self.cq_doorbell, self.cq_head as u32);
        self.unacked = 0;
    }

    /// Completions consumed but not yet acknowledged to the controller.
    pub(crate) fn unacked(&self) -> usize {
        self.unacked as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DmaLayout, Model, ModelConfig};

    /// Writes a completion into `rings`' CQ slot `index` as a controller would.
    fn post<D: DmaMemory>(rings: &Rings<D>, index: usize, cqe: Cqe) {
        for (i, dw) in cqe.to_dwords().iter().enumerate() {
            rings.cq.write_u32(index * CQE_SIZE + 4 * i, *dw);
        }
    }

    fn cqe(cid: u16, sq_head: u16, phase: bool) -> Cqe {
        Cqe {
            dw0: 0,
            sq_head,
            sq_id: 1,
            cid,
            phase,
            status: 0,
        }
    }

    #[test]
    fn sq_space_follows_the_head_the_controller_reports_and_phase_flips_on_wrap() {
        let model = Model::new(ModelConfig {
            dma_layout: DmaLayout::Contiguous,
            ..ModelConfig::default()
        });
        let mut rings = Rings::new(&model, 1, 4, 4).unwrap();
        assert_eq!(rings.entries, 4);
        assert_eq!(rings.sq_space(), 3);
        for _ in 0..3 {
            rings.push(&Sqe::new(0, 1));
        }
        assert_eq!(rings.sq_space(), 0);
        // Nothing posted yet: phase 0 entries are not completions.
        assert!(rings.next_cqe().is_none());
        // The controller has consumed two entries so far.
        post(&rings, 0, cqe(7, 2, true));
        assert_eq!(rings.next_cqe().map(|c| c.cid), Some(7));
        assert_eq!(rings.sq_space(), 2);
        post(&rings, 1, cqe(8, 3, true));
        post(&rings, 2, cqe(9, 3, true));
        post(&rings, 3, cqe(10, 3, true));
        let cids: Vec<u16> = std::iter::from_fn(|| rings.next_cqe().map(|c| c.cid)).collect();
        assert_eq!(cids, [8, 9, 10]);
        assert_eq!(rings.sq_space(), 3);
        // After the wrap, stale phase-1 entries are old; a phase-0 entry is new.
        assert!(rings.next_cqe().is_none());
        post(&rings, 0, cqe(11, 3, false));
        assert_eq!(rings.next_cqe().map(|c| c.cid), Some(11));
        rings.reset();
        assert_eq!(rings.sq_space(), 3);
        assert!(rings.next_cqe().is_none());
    }
}
