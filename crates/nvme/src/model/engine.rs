//! The model's controller state machine: registers, queues and command execution.

use std::collections::VecDeque;
use std::sync::Arc;

use super::memory::Bus;
use super::{Effect, Fault, ModelConfig, ModelStats, Target};
use crate::command::{CQE_SIZE, Cqe, SQE_SIZE, Sqe, admin, cns, io};
use crate::platform::DMA_PAGE_SIZE;
use crate::regs;
use crate::status::{Status, csc, sc, sct};

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
    /// Completions waiting for the host to free CQ space.
    waiting: VecDeque<Cqe>,
}

/// A command kept outstanding by [`Effect::Hang`].
#[derive(Debug)]
struct Held {
    sqid: u16,
    cid: u16,
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
    pub(crate) faults: Vec<Fault>,
    pub(crate) stopped: bool,
    pub(crate) stats: ModelStats,
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
            faults: Vec::new(),
            stopped: false,
            stats: ModelStats::default(),
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
        self.sqs.iter_mut().for_each(|q| *q = None);
        self.cqs.iter_mut().for_each(|q| *q = None);
        self.held.clear();
        self.stats.live_io_sqs = 0;
        self.stats.live_io_cqs = 0;
    }

    fn reset(&mut self) {
        self.clear_queues();
        self.queues_granted = None;
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
        if index.is_multiple_of(2) {
            self.sq_doorbell(qid, value as u16);
        } else {
            self.cq_doorbell(qid, value as u16);
        }
    }

    fn cq_doorbell(&mut self, qid: u16, head: u16) {
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
            let outcome = match self.take_fault(qid, sqe.opcode()) {
                Some(Effect::Fail(status)) => Outcome::Done {
                    dw0: 0,
                    status: Some(status),
                },
                Some(Effect::LoseCompletion) => {
                    self.execute(qid, &sqe);
                    Outcome::Lost
                }
                Some(Effect::Hang) => Outcome::Held,
                None => self.execute(qid, &sqe),
            };
            match outcome {
                Outcome::Done { dw0, status } => self.complete(qid, cqid, sqe.cid(), dw0, status),
                Outcome::Lost => {}
                Outcome::Held => self.held.push(Held {
                    sqid: qid,
                    cid: sqe.cid(),
                }),
            }
            if self.csts & regs::CSTS_CFS != 0 {
                return;
            }
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
        let written = self.bus.write(addr, &low) && self.bus.write(addr + 12, &dw[3].to_le_bytes());
        if !written {
            self.set_fatal();
        }
        true
    }

    fn execute(&mut self, qid: u16, sqe: &Sqe) -> Outcome {
        if qid == 0 {
            self.execute_admin(sqe)
        } else {
            self.execute_io(sqe)
        }
    }

    fn execute_admin(&mut self, sqe: &Sqe) -> Outcome {
        match sqe.opcode() {
            admin::IDENTIFY => self.identify(sqe),
            admin::SET_FEATURES => self.set_features(sqe),
            admin::GET_FEATURES => match (sqe.cdw(10) & 0xff, self.queues_granted) {
                (0x07, Some(n)) => ok(((n as u32 - 1) << 16) | (n as u32 - 1)),
                (0x07, None) => {
                    let n = self.config.max_io_queues as u32 - 1;
                    ok((n << 16) | n)
                }
                _ => generic(sc::INVALID_FIELD),
            },
            admin::CREATE_CQ => self.create_cq(sqe),
            admin::CREATE_SQ => self.create_sq(sqe),
            admin::DELETE_SQ => self.delete_sq(sqe),
            admin::DELETE_CQ => self.delete_cq(sqe),
            admin::ABORT => self.abort(sqe),
            _ => generic(sc::INVALID_OPCODE),
        }
    }

    fn identify(&mut self, sqe: &Sqe) -> Outcome {
        let mut data = vec![0u8; DMA_PAGE_SIZE];
        match sqe.cdw(10) & 0xff {
            cns::CONTROLLER => {
                data[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
                data[4..24].copy_from_slice(b"MODEL0001           ");
                data[24..64].copy_from_slice(&{
                    let mut mn = [b' '; 40];
                    mn[..20].copy_from_slice(b"Kangrejos NVMe Model");
                    mn
                });
                data[64..72].copy_from_slice(b"1.0     ");
                data[77] = self.config.mdts;
                data[80..84].copy_from_slice(&0x0001_0400u32.to_le_bytes());
                data[258] = 3;
                data[259] = 3;
                data[512] = 0x66;
                data[513] = 0x44;
                data[516..520].copy_from_slice(&(self.media.len() as u32).to_le_bytes());
                data[520..522].copy_from_slice(&(0b1100u16).to_le_bytes());
                data[525] = 1;
            }
            cns::ACTIVE_NAMESPACES => {
                let after = sqe.nsid();
                let ids = (1..=self.media.len() as u32).filter(|&id| id > after);
                for (slot, id) in data.chunks_exact_mut(4).zip(ids) {
                    slot.copy_from_slice(&id.to_le_bytes());
                }
            }
            cns::NAMESPACE => {
                let Some(ns) = self.namespace(sqe.nsid()) else {
                    return generic(sc::INVALID_NAMESPACE);
                };
                for field in 0..3 {
                    data[field * 8..field * 8 + 8].copy_from_slice(&ns.blocks.to_le_bytes());
                }
                data[130] = ns.lba_shift;
            }
            _ => return generic(sc::INVALID_FIELD),
        }
        match self.transfer(sqe, data.len()) {
            Ok(segments) => {
                if self.scatter(&segments, &data) {
                    ok(0)
                } else {
                    generic(sc::DATA_TRANSFER_ERROR)
                }
            }
            Err(outcome) => outcome,
        }
    }

    fn set_features(&mut self, sqe: &Sqe) -> Outcome {
        if sqe.cdw(10) & 0xff != 0x07 {
            return generic(sc::INVALID_FIELD);
        }
        if self.queues_granted.is_some() {
            return generic(sc::COMMAND_SEQUENCE_ERROR);
        }
        let nsqr = sqe.cdw(11) & 0xffff;
        let ncqr = sqe.cdw(11) >> 16;
        if nsqr == 0xffff || ncqr == 0xffff {
            return generic(sc::INVALID_FIELD);
        }
        let granted = (nsqr.min(ncqr) + 1).min(self.config.max_io_queues as u32) as u16;
        self.queues_granted = Some(granted);
        let n = granted as u32 - 1;
        ok((n << 16) | n)
    }

    fn check_new_queue(&self, sqe: &Sqe, existing: bool) -> Result<(u16, u16), Outcome> {
        let qid = sqe.cdw(10) as u16;
        let entries = (sqe.cdw(10) >> 16) + 1;
        let granted = self.queues_granted.unwrap_or(0);
        if qid == 0 || qid > granted || existing {
            return Err(specific(csc::INVALID_QUEUE_ID));
        }
        if entries < 2 || entries > self.config.mqes as u32 + 1 {
            return Err(specific(csc::INVALID_QUEUE_SIZE));
        }
        if sqe.cdw(11) & 1 == 0 || !sqe.prp1().is_multiple_of(PAGE) || sqe.prp1() == 0 {
            return Err(generic(sc::INVALID_FIELD));
        }
        Ok((qid, entries as u16))
    }

    fn create_cq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16 as usize;
        let exists = matches!(self.cqs.get(qid), Some(Some(_)));
        let (qid, entries) = match self.check_new_queue(sqe, exists) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        self.cqs[qid as usize] = Some(Cq {
            base: sqe.prp1(),
            entries,
            head: 0,
            tail: 0,
            phase: true,
            waiting: VecDeque::new(),
        });
        self.stats.live_io_cqs += 1;
        ok(0)
    }

    fn create_sq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16 as usize;
        let exists = matches!(self.sqs.get(qid), Some(Some(_)));
        let (qid, entries) = match self.check_new_queue(sqe, exists) {
            Ok(v) => v,
            Err(outcome) => return outcome,
        };
        let cqid = (sqe.cdw(11) >> 16) as u16;
        if cqid == 0 || !matches!(self.cqs.get(cqid as usize), Some(Some(_))) {
            return specific(csc::INVALID_CQ);
        }
        self.sqs[qid as usize] = Some(Sq {
            base: sqe.prp1(),
            entries,
            cqid,
            head: 0,
        });
        self.stats.live_io_sqs += 1;
        ok(0)
    }

    fn delete_sq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16;
        let Some(Some(sq)) = self.sqs.get(qid as usize).filter(|_| qid != 0) else {
            return specific(csc::INVALID_QUEUE_ID);
        };
        let cqid = sq.cqid;
        let (aborted, kept): (Vec<Held>, Vec<Held>) =
            self.held.drain(..).partition(|h| h.sqid == qid);
        self.held = kept;
        for h in aborted {
            let status = Status::generic(sc::ABORTED_SQ_DELETION, false);
            self.complete(qid, cqid, h.cid, 0, Some(status));
        }
        self.sqs[qid as usize] = None;
        self.stats.live_io_sqs -= 1;
        ok(0)
    }

    fn delete_cq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw(10) as u16;
        if qid == 0 || !matches!(self.cqs.get(qid as usize), Some(Some(_))) {
            return specific(csc::INVALID_QUEUE_ID);
        }
        if self.sqs.iter().flatten().any(|sq| sq.cqid == qid) {
            return specific(csc::INVALID_QUEUE_DELETION);
        }
        self.cqs[qid as usize] = None;
        self.stats.live_io_cqs -= 1;
        ok(0)
    }

    fn abort(&mut self, sqe: &Sqe) -> Outcome {
        self.stats.aborts += 1;
        let sqid = sqe.cdw(10) as u16;
        let cid = (sqe.cdw(10) >> 16) as u16;
        let Some(index) = self
            .held
            .iter()
            .position(|h| h.sqid == sqid && h.cid == cid)
        else {
            return ok(1);
        };
        self.held.remove(index);
        if let Some(Some(sq)) = self.sqs.get(sqid as usize) {
            let cqid = sq.cqid;
            let status = Status::generic(sc::ABORT_REQUESTED, false);
            self.complete(sqid, cqid, cid, 0, Some(status));
        }
        ok(0)
    }

    fn namespace(&self, nsid: u32) -> Option<super::NamespaceConfig> {
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

    fn execute_io(&mut self, sqe: &Sqe) -> Outcome {
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

    /// Walks PRP1/PRP2 (and chained PRP lists) of a `len`-byte transfer into bus segments.
    fn transfer(&mut self, sqe: &Sqe, len: usize) -> Result<Vec<(u64, usize)>, Outcome> {
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

    fn scatter(&self, segments: &[(u64, usize)], data: &[u8]) -> bool {
        let mut done = 0;
        for &(addr, n) in segments {
            if !self.bus.write(addr, &data[done..done + n]) {
                return false;
            }
            done += n;
        }
        true
    }

    fn gather(&self, segments: &[(u64, usize)], data: &mut [u8]) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DmaLayout, ModelConfig};

    fn engine(config: ModelConfig) -> Engine {
        let mut e = Engine::new(config, Bus::new());
        e.queues_granted = Some(4);
        e
    }

    fn status(outcome: Outcome) -> Option<(u8, u8)> {
        match outcome {
            Outcome::Done { status, .. } => status.map(|s| (s.sct, s.sc)),
            _ => panic!("the command did not complete"),
        }
    }

    fn queue_cmd(opcode: u8, qid: u16, entries: u32, cdw11: u32, prp1: u64) -> Sqe {
        let mut sqe = Sqe::new(opcode, 0);
        sqe.set_cdw(10, (entries - 1) << 16 | qid as u32);
        sqe.set_cdw(11, cdw11);
        sqe.set_prps(prp1, 0);
        sqe
    }

    #[test]
    fn queue_creation_checks_size_id_contiguity_and_order() {
        let mut e = engine(ModelConfig {
            mqes: 15,
            ..ModelConfig::default()
        });
        let cq = |qid, entries, pc| queue_cmd(admin::CREATE_CQ, qid, entries, pc, 0x10_0000);
        let too_big = status(e.execute_admin(&cq(1, 17, 1)));
        assert_eq!(
            too_big,
            Some((sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_SIZE))
        );
        let bad_id = status(e.execute_admin(&cq(5, 16, 1)));
        assert_eq!(bad_id, Some((sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_ID)));
        let not_contiguous = status(e.execute_admin(&cq(1, 16, 0)));
        assert_eq!(not_contiguous, Some((sct::GENERIC, sc::INVALID_FIELD)));
        let sq_first = queue_cmd(admin::CREATE_SQ, 1, 16, 1 << 16 | 1, 0x20_0000);
        let no_cq = status(e.execute_admin(&sq_first));
        assert_eq!(no_cq, Some((sct::COMMAND_SPECIFIC, csc::INVALID_CQ)));
        assert_eq!(status(e.execute_admin(&cq(1, 16, 1))), None);
        assert_eq!(status(e.execute_admin(&sq_first)), None);
        let delete_cq = queue_cmd(admin::DELETE_CQ, 1, 1, 0, 0);
        let in_use = status(e.execute_admin(&delete_cq));
        assert_eq!(
            in_use,
            Some((sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_DELETION))
        );
        let delete_sq = queue_cmd(admin::DELETE_SQ, 1, 1, 0, 0);
        assert_eq!(status(e.execute_admin(&delete_sq)), None);
        assert_eq!(status(e.execute_admin(&delete_cq)), None);
    }

    #[test]
    fn number_of_queues_is_set_once_per_reset() {
        let mut e = engine(ModelConfig::default());
        e.queues_granted = None;
        let mut sqe = Sqe::new(admin::SET_FEATURES, 0);
        sqe.set_cdw(10, 0x07);
        sqe.set_cdw(11, 99 << 16 | 99);
        let Outcome::Done { dw0, status: None } = e.execute_admin(&sqe) else {
            panic!("Set Features failed");
        };
        assert_eq!(dw0, 7 << 16 | 7);
        let again = status(e.execute_admin(&sqe));
        assert_eq!(again, Some((sct::GENERIC, sc::COMMAND_SEQUENCE_ERROR)));
    }

    #[test]
    fn io_is_checked_for_namespace_range_mdts_and_prp_alignment() {
        let mut e = engine(ModelConfig {
            mdts: 1,
            dma_layout: DmaLayout::Contiguous,
            ..ModelConfig::default()
        });
        let read = |nsid, lba, blocks: u32, prp1| {
            let mut sqe = Sqe::new(io::READ, nsid);
            sqe.set_slba(lba);
            sqe.set_cdw(12, blocks - 1);
            sqe.set_prps(prp1, 0);
            sqe
        };
        let ns = status(e.execute_io(&read(2, 0, 1, 0x1000)));
        assert_eq!(ns, Some((sct::GENERIC, sc::INVALID_NAMESPACE)));
        let end = e.config.namespaces[0].blocks;
        let past = status(e.execute_io(&read(1, end - 1, 2, 0x1000)));
        assert_eq!(past, Some((sct::GENERIC, sc::LBA_OUT_OF_RANGE)));
        // MDTS 1 with 4 KiB pages: 8 KiB at most.
        let big = status(e.execute_io(&read(1, 0, 17, 0x1000)));
        assert_eq!(big, Some((sct::GENERIC, sc::INVALID_FIELD)));
        let odd = status(e.execute_io(&read(1, 0, 1, 0x1002)));
        assert_eq!(odd, Some((sct::GENERIC, sc::PRP_OFFSET_INVALID)));
        // Unmapped memory: the transfer fails instead of touching anything.
        let unmapped = status(e.execute_io(&read(1, 0, 1, 0x1000)));
        assert_eq!(unmapped, Some((sct::GENERIC, sc::DATA_TRANSFER_ERROR)));
        let buf = e.bus.alloc(4096, DmaLayout::Contiguous);
        use crate::platform::DmaMemory;
        let ok = status(e.execute_io(&read(1, 0, 8, buf.bus_addr(0))));
        assert_eq!(ok, None);
        let mut bad_prp2 = read(1, 0, 16, buf.bus_addr(0));
        bad_prp2.set_prps(buf.bus_addr(0), buf.bus_addr(0) + 512);
        let misaligned = status(e.execute_io(&bad_prp2));
        assert_eq!(misaligned, Some((sct::GENERIC, sc::PRP_OFFSET_INVALID)));
    }
}
