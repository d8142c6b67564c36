//! One submission/completion queue pair in DMA memory: tails, heads, phase tag and doorbells.

use std::sync::atomic::{Ordering, fence};

use hw::SharedWords;

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
    /// The SQ tail and CQ head last announced (shadow doorbells compare against them).
    sq_announced: u16,
    cq_announced: u16,
}

/// Shadow doorbells (Doorbell Buffer Config): one page of doorbell values the controller reads
/// on its own, and one of event indexes it writes, laid out like the doorbell registers. A new
/// value goes to the shadow page; the register is written only when the controller's event
/// index says it is waiting for one (it has caught up with the value announced before), which
/// saves most register writes (each one a trap into the hypervisor under emulation).
///
/// Both pages belong to all I/O queues, each using only its own two entries; the admin queue
/// always writes its registers. The queue pairs share them without a lock: the pages are
/// [`SharedWords`], reached only by 32-bit atomic loads and stores, and each queue pair stores
/// only to its own entries. The controller-wide writers are the reset (which zeroes both pages
/// while the controller is disabled; a queue pair storing meanwhile leaves at worst a stale
/// value in its own entries, which it zeroes again before recreating its queues, see
/// `recover`) and queue creation (`clear_queue` of an ID no other queue pair holds).
pub(crate) struct Shadow<D: DmaMemory> {
    pub(crate) doorbells: SharedWords<D>,
    pub(crate) event_indexes: SharedWords<D>,
}

/// Whether the controller must be told of `new` by a register write: its event index `event`
/// lies in `[old, new)`, i.e. it asked to be told once the value passed it (the virtio rule, as
/// in the NVMe specification and Linux).
pub(crate) fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

impl<D: DmaMemory> Shadow<D> {
    /// The two pages, shared by every queue pair.
    pub(crate) fn new(doorbells: D, event_indexes: D) -> Self {
        Self {
            doorbells: SharedWords::new(doorbells),
            event_indexes: SharedWords::new(event_indexes),
        }
    }

    /// The two pages back, to park or leak them.
    pub(crate) fn into_memory(self) -> [D; 2] {
        [self.doorbells.into_inner(), self.event_indexes.into_inner()]
    }

    /// Stores `new` in the shadow entry at `offset` (from the first doorbell); whether the
    /// register must be written too.
    fn announce(&self, offset: usize, old: u16, new: u16) -> bool {
        self.doorbells.store_u32(offset, new as u32);
        // The value must be visible before the event index is read (a store then a load of
        // another word): a full barrier.
        fence(Ordering::SeqCst);
        let event = self.event_indexes.load_u32(offset) as u16;
        need_event(event, new, old)
    }

    /// Zeroes queue `qid`'s entries, before the queue is created.
    pub(crate) fn clear_queue(&self, qid: u16, stride: usize) {
        for offset in [2 * qid as usize * stride, (2 * qid as usize + 1) * stride] {
            self.doorbells.store_u32(offset, 0);
            self.event_indexes.store_u32(offset, 0);
        }
    }

    /// Zeroes both pages (after a controller reset, before they are configured again).
    pub(crate) fn clear(&self) {
        for offset in (0..DMA_PAGE_SIZE).step_by(4) {
            self.doorbells.store_u32(offset, 0);
            self.event_indexes.store_u32(offset, 0);
        }
    }
}

/// Where a queue's doorbells go: the shadow pages when configured, else the registers.
pub(crate) type ShadowRef<'a, D> = Option<&'a Shadow<D>>;

fn announce<D: DmaMemory>(
    shadow: ShadowRef<'_, D>,
    qid: u16,
    offset: usize,
    old: u16,
    new: u16,
) -> bool {
    match shadow {
        Some(shadow) if qid != 0 => shadow.announce(offset - regs::DOORBELL_BASE, old, new),
        _ => true,
    }
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
            sq_announced: 0,
            cq_announced: 0,
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
        self.sq_announced = 0;
        self.cq_announced = 0;
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
    pub(crate) fn ring_sq<P: Platform<Dma = D>>(&mut self, platform: &P, shadow: ShadowRef<'_, D>) {
        fence(Ordering::Release);
        let (old, new) = (self.sq_announced, self.sq_tail);
        self.sq_announced = new;
        if announce(shadow, self.qid, self.sq_doorbell, old, new) {
            platform.write32(self.sq_doorbell, new as u32);
        }
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
    pub(crate) fn ring_cq<P: Platform<Dma = D>>(&mut self, platform: &P, shadow: ShadowRef<'_, D>) {
        let (old, new) = (self.cq_announced, self.cq_head);
        self.cq_announced = new;
        self.unacked = 0;
        if announce(shadow, self.qid, self.cq_doorbell, old, new) {
            platform.write32(self.cq_doorbell, new as u32);
        }
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
    fn need_event_follows_the_event_index_across_wrap_around() {
        // The controller has seen 5 and asks to hear of anything past it.
        assert!(need_event(5, 6, 5));
        assert!(need_event(5, 9, 5));
        // It has not caught up with 5 yet (it waits at 3): 5 -> 9 need not be told.
        assert!(!need_event(3, 9, 5));
        // Nothing new, nothing to tell.
        assert!(!need_event(5, 5, 5));
        // Across the 16-bit wrap.
        assert!(need_event(65535, 2, 65535));
        assert!(!need_event(65533, 2, 65535));
    }

    #[test]
    fn a_shadow_doorbell_writes_the_register_only_when_the_controller_waits_for_it() {
        let model = Model::new(ModelConfig::default());
        let shadow = Shadow::new(
            model.alloc_dma(DMA_PAGE_SIZE).unwrap(),
            model.alloc_dma(DMA_PAGE_SIZE).unwrap(),
        );
        let sq1 = 8;
        // The controller has seen tail 0 and waits for more: the register is written.
        assert!(shadow.announce(sq1, 0, 1));
        assert_eq!(shadow.doorbells.load_u32(sq1), 1);
        // It has not caught up with 1 yet: 3 goes to the shadow page only.
        assert!(!shadow.announce(sq1, 1, 3));
        assert_eq!(shadow.doorbells.load_u32(sq1), 3);
        // It has caught up (event index 3): the next value is written to the register.
        shadow.event_indexes.store_u32(sq1, 3);
        assert!(shadow.announce(sq1, 3, 4));
        // Another queue's entries are untouched, and clearing a queue zeroes only its own.
        assert_eq!(shadow.doorbells.load_u32(16), 0);
        shadow.doorbells.store_u32(16, 9);
        shadow.clear_queue(1, 4);
        assert_eq!(shadow.doorbells.load_u32(sq1), 0);
        assert_eq!(shadow.event_indexes.load_u32(sq1), 0);
        assert_eq!(shadow.doorbells.load_u32(16), 9);
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
