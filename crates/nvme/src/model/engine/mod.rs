//! The model's controller state machine: registers, queues and command execution.

use std::collections::VecDeque;
use std::sync::Arc;

mod admin_commands;
mod management;
mod nvm_commands;

use super::memory::Bus;
use super::{Effect, Fault, ModelConfig, ModelStats, Target};
use crate::command::{CQE_SIZE, Cqe, SQE_SIZE, Sqe};
use crate::platform::{DMA_PAGE_SIZE, Interrupt};
use crate::regs;
use crate::status::{Status, sct};

const PAGE: u64 = DMA_PAGE_SIZE as u64;

#[derive(Debug)]
struct Sq {
    base: u64,
    entries: u16,
    cqid: u16,
    head: u16,
}

#[derive(Debug)]
struct Cq {
    base: u64,
    entries: u16,
    head: u16,
    tail: u16,
    phase: bool,
    /// The interrupt vector raised on each posted completion (Create I/O CQ's IEN and IV).
    vector: Option<u16>,
    /// Completions waiting for the host to free CQ space.
    waiting: VecDeque<Cqe>,
}

/// A command kept outstanding by [`Effect::Hang`].
#[derive(Debug)]
struct Held {
    sqid: u16,
    cid: u16,
    /// The pages it would still transfer to or from (data, PRP lists, a new queue's ring).
    pages: Vec<u64>,
}

/// What running a command produced.
enum Outcome {
    Done { dw0: u32, status: Option<Status> },
    Lost,
    Held,
}

fn ok(dw0: u32) -> Outcome {
    Outcome::Done { dw0, status: None }
}

fn fail(sct: u8, sc: u8) -> Outcome {
    Outcome::Done {
        dw0: 0,
        status: Some(Status { sct, sc, dnr: true }),
    }
}

fn generic(code: u8) -> Outcome {
    fail(sct::GENERIC, code)
}

fn specific(code: u8) -> Outcome {
    fail(sct::COMMAND_SPECIFIC, code)
}

#[derive(Debug)]
pub(crate) struct Engine {
    config: ModelConfig,
    bus: Arc<Bus>,
    cc: u32,
    csts: u32,
    aqa: u32,
    asq: u64,
    acq: u64,
    sqs: Vec<Option<Sq>>,
    cqs: Vec<Option<Cq>>,
    media: Vec<Vec<u8>>,
    queues_granted: Option<u16>,
    held: Vec<Held>,
    /// Log pages and features a management tool reads and sets.
    management: management::State,
    pub(crate) faults: Vec<Fault>,
    pub(crate) stopped: bool,
    pub(crate) stats: ModelStats,
    /// Whether the pages the controller refers to changed since the bus was last told.
    reach_changed: bool,
    /// MSI-X vectors by number, once the host turned them on.
    pub(crate) vectors: Vec<Arc<Interrupt>>,
    /// Bus addresses of the shadow doorbell and event index pages (Doorbell Buffer Config).
    pub(crate) shadow: Option<(u64, u64)>,
}

impl Engine {
    pub(crate) fn new(config: ModelConfig, bus: Arc<Bus>) -> Engine {
        let media = config
            .namespaces
            .iter()
            .map(|ns| vec![0; (ns.blocks << ns.lba_shift) as usize])
            .collect();
        let queues = config.max_io_queues as usize + 1;
        Engine {
            sqs: (0..queues).map(|_| None).collect(),
            cqs: (0..queues).map(|_| None).collect(),
            config,
            bus,
            cc: 0,
            csts: 0,
            aqa: 0,
            asq: 0,
            acq: 0,
            media,
            queues_granted: None,
            held: Vec::new(),
            management: management::State::default(),
            faults: Vec::new(),
            stopped: false,
            stats: ModelStats::default(),
            reach_changed: false,
            vectors: Vec::new(),
            shadow: None,
        }
    }

    /// The I/O queues the model can have.
    pub(crate) fn max_io_queues(&self) -> u16 {
        self.config.max_io_queues
    }

    /// Tells the bus which pages the controller's live state refers to, and so may still read
    /// or write on its own: the admin and I/O rings and what outstanding commands point at.
    fn publish_reach(&mut self) {
        if !self.reach_changed {
            return;
        }
        self.reach_changed = false;
        let ring = |base: u64, entries: u16, size: usize| {
            let bytes = entries as u64 * size as u64;
            (0..bytes.div_ceil(PAGE)).map(move |i| base + i * PAGE)
        };
        let mut pages: Vec<u64> = Vec::new();
        for sq in self.sqs.iter().flatten() {
            pages.extend(ring(sq.base, sq.entries, SQE_SIZE));
        }
        for cq in self.cqs.iter().flatten() {
            pages.extend(ring(cq.base, cq.entries, CQE_SIZE));
        }
        for held in &self.held {
            pages.extend(&held.pages);
        }
        if let Some((doorbells, event_indexes)) = self.shadow {
            pages.extend([doorbells, event_indexes]);
        }
        self.bus.set_reachable(pages);
    }

    /// The pages an outstanding command `sqe` of queue `qid` refers to.
    fn command_pages(&mut self, qid: u16, sqe: &Sqe) -> Vec<u64> {
        use crate::command::admin;
        let nonzero = |a: u64| (a != 0).then_some(a);
        let prps = || {
            [nonzero(sqe.prp1()), nonzero(sqe.prp2())]
                .into_iter()
                .flatten()
        };
        if qid == 0 {
            return match sqe.opcode() {
                admin::CREATE_CQ | admin::CREATE_SQ => {
                    let size = if sqe.opcode() == admin::CREATE_CQ {
                        CQE_SIZE
                    } else {
                        SQE_SIZE
                    };
                    let bytes = ((sqe.cdw(10) >> 16) as u64 + 1) * size as u64;
                    (0..bytes.div_ceil(PAGE))
                        .map(|i| sqe.prp1() + i * PAGE)
                        .collect()
                }
                _ => prps().collect(),
            };
        }
        let blocks = (sqe.cdw(12) & 0xffff) as u64 + 1;
        let len = self
            .namespace(sqe.nsid())
            .map_or(0, |ns| (blocks << ns.lba_shift) as usize);
        match self.transfer_pages(sqe, len) {
            Some(pages) if len > 0 => pages,
            _ => prps().collect(),
        }
    }

    fn cap(&self) -> u64 {
        let c = &self.config;
        c.mqes as u64
            | 1 << 16
            | (c.timeout_units as u64) << 24
            | (c.dstrd as u64 & 0xf) << 32
            | 1 << 37
            | (c.mps_min as u64 & 0xf) << 48
            | (c.mps_max as u64 & 0xf) << 52
    }

    pub(crate) fn set_fatal(&mut self) {
        self.csts |= regs::CSTS_CFS;
    }

    pub(crate) fn media(&self, nsid: u32, offset: u64, len: usize) -> Option<Vec<u8>> {
        let data = self.media.get((nsid as usize).checked_sub(1)?)?;
        let start = usize::try_from(offset).ok()?;
        Some(data.get(start..start.checked_add(len)?)?.to_vec())
    }

    pub(crate) fn read32(&self, offset: usize) -> u32 {
        if self.stopped {
            return u32::MAX;
        }
        match offset {
            regs::CAP => self.cap() as u32,
            0x04 => (self.cap() >> 32) as u32,
            regs::VS => 0x0001_0400,
            regs::CC => self.cc,
            regs::CSTS => self.csts,
            regs::AQA => self.aqa,
            regs::ASQ => self.asq as u32,
            0x2c => (self.asq >> 32) as u32,
            regs::ACQ => self.acq as u32,
            0x34 => (self.acq >> 32) as u32,
            _ => 0,
        }
    }

    pub(crate) fn write32(&mut self, offset: usize, value: u32) {
        self.write_register(offset, value);
        self.publish_reach();
    }

    fn write_register(&mut self, offset: usize, value: u32) {
        if self.stopped {
            return;
        }
        match offset {
            regs::CC => self.write_cc(value),
            regs::AQA => self.aqa = value,
            regs::ASQ => self.asq = (self.asq & !0xffff_ffff) | value as u64,
            0x2c => self.asq = (self.asq & 0xffff_ffff) | (value as u64) << 32,
            regs::ACQ => self.acq = (self.acq & !0xffff_ffff) | value as u64,
            0x34 => self.acq = (self.acq & 0xffff_ffff) | (value as u64) << 32,
            o if o >= regs::DOORBELL_BASE => self.doorbell(o, value),
            _ => {}
        }
    }

    fn write_cc(&mut self, value: u32) {
        let was_enabled = self.cc & regs::CC_EN != 0;
        let enable = value & regs::CC_EN != 0;
        self.cc = value;
        if was_enabled && !enable {
            self.reset();
            return;
        }
        if !was_enabled && enable {
            self.enable();
        }
        if enable && value & regs::CC_SHN_MASK != 0 && self.csts & regs::CSTS_RDY != 0 {
            self.clear_queues();
            self.csts = (self.csts & !regs::CSTS_SHST_MASK) | regs::CSTS_SHST_COMPLETE;
            self.stats.shutdowns += 1;
        }
    }

    fn clear_queues(&mut self) {
        self.reach_changed = true;
        self.sqs.iter_mut().for_each(|q| *q = None);
        self.cqs.iter_mut().for_each(|q| *q = None);
        self.held.clear();
        self.stats.live_io_sqs = 0;
        self.stats.live_io_cqs = 0;
    }

    fn reset(&mut self) {
        self.clear_queues();
        self.queues_granted = None;
        self.shadow = None;
        self.csts = 0;
        self.stats.resets += 1;
    }

    fn enable(&mut self) {
        let mps = (self.cc >> 7) & 0xf;
        let sq_entries = (self.aqa & 0xfff) as u16 + 1;
        let cq_entries = ((self.aqa >> 16) & 0xfff) as u16 + 1;
        let valid = (self.config.mps_min as u32..=self.config.mps_max as u32).contains(&mps)
            && self.asq.is_multiple_of(PAGE)
            && self.acq.is_multiple_of(PAGE)
            && self.asq != 0
            && self.acq != 0
            && sq_entries >= 2
            && cq_entries >= 2
            && (self.cc >> 16) & 0xf == 6
            && (self.cc >> 20) & 0xf == 4;
        if !valid {
            self.csts |= regs::CSTS_CFS;
            return;
        }
        // Stands in for what opening a real function does before the driver enables it
        // (function reset, Bus Master on): a model stopped by `stop_dma` works again.
        self.bus.set_bus_master(true);
        self.reach_changed = true;
        self.sqs[0] = Some(Sq {
            base: self.asq,
            entries: sq_entries,
            cqid: 0,
            head: 0,
        });
        self.cqs[0] = Some(Cq {
            base: self.acq,
            entries: cq_entries,
            head: 0,
            tail: 0,
            phase: true,
            // The admin queue always uses vector 0.
            vector: Some(0),
            waiting: VecDeque::new(),
        });
        self.csts = regs::CSTS_RDY;
    }

    fn doorbell(&mut self, offset: usize, value: u32) {
        if self.csts & regs::CSTS_RDY == 0 || self.csts & regs::CSTS_CFS != 0 {
            return;
        }
        let stride = 4usize << self.config.dstrd;
        let index = (offset - regs::DOORBELL_BASE) / stride;
        if !(offset - regs::DOORBELL_BASE).is_multiple_of(stride) {
            return;
        }
        let qid = (index / 2) as u16;
        let mut value = value as u16;
        let shadow = self.shadow.filter(|_| qid != 0);
        let at = (index * stride) as u64;
        if let Some((doorbells, _)) = shadow {
            let mut raw = [0u8; 4];
            if !self.bus.read(doorbells + at, &mut raw) {
                self.set_fatal();
                return;
            }
            value = u32::from_le_bytes(raw) as u16;
            self.stats.shadow_doorbell_reads += 1;
        }
        if index.is_multiple_of(2) {
            self.sq_doorbell(qid, value);
        } else {
            self.cq_doorbell(qid, value);
        }
        if let Some((_, event_indexes)) = shadow
            && !self
                .bus
                .write(event_indexes + at, &u32::from(value).to_le_bytes())
        {
            self.set_fatal();
        }
    }

    fn cq_doorbell(&mut self, qid: u16, head: u16) {
        self.stats.cq_doorbells += 1;
        let Some(Some(cq)) = self.cqs.get_mut(qid as usize) else {
            return;
        };
        if head >= cq.entries {
            return;
        }
        cq.head = head;
        loop {
            let front = match self.cqs.get(qid as usize) {
                Some(Some(cq)) => cq.waiting.front().copied(),
                _ => None,
            };
            let Some(cqe) = front else { break };
            if !self.post_now(qid, cqe) {
                break;
            }
            if let Some(Some(cq)) = self.cqs.get_mut(qid as usize) {
                cq.waiting.pop_front();
            }
        }
    }

    fn sq_doorbell(&mut self, qid: u16, tail: u16) {
        self.stats.sq_doorbells += 1;
        let Some(Some(sq)) = self.sqs.get(qid as usize) else {
            return;
        };
        if tail >= sq.entries {
            return;
        }
        loop {
            let Some(Some(sq)) = self.sqs.get_mut(qid as usize) else {
                return;
            };
            if sq.head == tail {
                return;
            }
            let addr = sq.base + sq.head as u64 * SQE_SIZE as u64;
            sq.head = (sq.head + 1) % sq.entries;
            let cqid = sq.cqid;
            let mut bytes = [0; SQE_SIZE];
            if !self.bus.read(addr, &mut bytes) {
                self.set_fatal();
                return;
            }
            let sqe = Sqe::from_bytes(&bytes);
            self.stats.commands += 1;
            let conflict = self
                .held
                .iter()
                .any(|h| h.sqid == qid && h.cid == sqe.cid());
            let outcome = if conflict {
                // The ID of a command still outstanding on this queue.
                fail(sct::GENERIC, 0x03)
            } else {
                self.run_or_fault(qid, &sqe)
            };
            match outcome {
                Outcome::Done { dw0, status } => self.complete(qid, cqid, sqe.cid(), dw0, status),
                Outcome::Lost => {}
                Outcome::Held => {
                    let pages = self.command_pages(qid, &sqe);
                    self.held.push(Held {
                        sqid: qid,
                        cid: sqe.cid(),
                        pages,
                    });
                    self.reach_changed = true;
                }
            }
            if self.csts & regs::CSTS_CFS != 0 {
                return;
            }
        }
    }

    /// Runs a command, unless an injected fault takes it.
    fn run_or_fault(&mut self, qid: u16, sqe: &Sqe) -> Outcome {
        match self.take_fault(qid, sqe.opcode()) {
            Some(Effect::Fail(status)) => Outcome::Done {
                dw0: 0,
                status: Some(status),
            },
            Some(Effect::LoseCompletion) => {
                self.execute(qid, sqe);
                Outcome::Lost
            }
            Some(Effect::Hang) => Outcome::Held,
            None => self.execute(qid, sqe),
        }
    }

    fn take_fault(&mut self, qid: u16, opcode: u8) -> Option<Effect> {
        let index = self.faults.iter().position(|f| match f.target {
            Target::Io(op) => qid != 0 && op.is_none_or(|op| op == opcode),
            Target::Admin(op) => qid == 0 && op == opcode,
        })?;
        Some(self.faults.remove(index).effect)
    }

    /// Queues a completion for `cid` of submission queue `sqid` on completion queue `cqid`.
    fn complete(&mut self, sqid: u16, cqid: u16, cid: u16, dw0: u32, status: Option<Status>) {
        if let Some(status) = status {
            self.management.record_error(sqid, cid, status);
        }
        let sq_head = match self.sqs.get(sqid as usize) {
            Some(Some(sq)) => sq.head,
            _ => 0,
        };
        let cqe = Cqe {
            dw0,
            sq_head,
            sq_id: sqid,
            cid,
            phase: false,
            status: status.map_or(0, Status::to_field),
        };
        let Some(Some(cq)) = self.cqs.get(cqid as usize) else {
            return;
        };
        if (!cq.waiting.is_empty() || !self.post_now(cqid, cqe))
            && let Some(Some(cq)) = self.cqs.get_mut(cqid as usize)
        {
            cq.waiting.push_back(cqe);
            self.stats.cq_full_waits += 1;
        }
    }

    /// Writes `cqe` into the completion queue if there is room; the phase dword goes last.
    fn post_now(&mut self, cqid: u16, mut cqe: Cqe) -> bool {
        let Some(Some(cq)) = self.cqs.get_mut(cqid as usize) else {
            return true;
        };
        if (cq.tail + 1) % cq.entries == cq.head {
            return false;
        }
        cqe.phase = cq.phase;
        let addr = cq.base + cq.tail as u64 * CQE_SIZE as u64;
        cq.tail += 1;
        if cq.tail == cq.entries {
            cq.tail = 0;
            cq.phase = !cq.phase;
        }
        let dw = cqe.to_dwords();
        let mut low = [0u8; 12];
        for (chunk, d) in low.chunks_exact_mut(4).zip(&dw[..3]) {
            chunk.copy_from_slice(&d.to_le_bytes());
        }
        let vector = cq.vector;
        let written = self.bus.write(addr, &low) && self.bus.write(addr + 12, &dw[3].to_le_bytes());
        if !written {
            self.set_fatal();
        }
        if let Some(irq) = vector.and_then(|iv| self.vectors.get(iv as usize)) {
            irq.fire();
        }
        true
    }

    fn execute(&mut self, qid: u16, sqe: &Sqe) -> Outcome {
        if qid == 0 {
            // Admin commands create and delete queues and end held commands.
            self.reach_changed = true;
            self.execute_admin(sqe)
        } else {
            self.execute_io(sqe)
        }
    }
}

#[cfg(test)]
mod tests;
