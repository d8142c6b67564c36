//! An I/O queue pair: batched submission, polled completion, timeouts, abort and recovery.
//!
//! A queue pair belongs to one thread at a time: it is `Send` but not `Sync`. Its hot path
//! (submit, poll) takes no lock and allocates nothing: command slots, request states and PRP
//! list pages are all allocated when the queue pair is created.

use std::cell::Cell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::admin::may_be_outstanding;
use crate::command::{Cqe, Sqe, admin, io};
use crate::controller::Shared;
use crate::error::{Error, Result};
use crate::identify::Namespace;
use crate::platform::{DMA_PAGE_SIZE, DmaMemory, Interrupt, Platform};
use crate::prp::{self, ListSpace};
use crate::request::{Completion, IoKind, Rejected, Request};
use crate::retained::Retained;
use crate::ring::Rings;
use crate::status::{Status, sc, sct};

mod blocking;
mod passthru;
mod recovery;

pub use passthru::IoPassthru;

/// Bits of a command ID that name the slot; the rest count resubmissions of that slot.
const SLOT_BITS: u16 = 12;
const SLOT_MASK: u16 = (1 << SLOT_BITS) - 1;
/// Idle polls between two looks at the clock for timed-out commands.
const IDLE_POLLS_PER_TIMEOUT_CHECK: u32 = 32;
/// Polls between two looks at the clock while completions keep arriving, so that one stuck
/// command is noticed even on a busy queue.
const POLLS_PER_TIMEOUT_CHECK: u32 = 1024;

/// One command in flight (or a free slot).
#[derive(Debug)]
struct Slot {
    sqe: Sqe,
    request: u16,
    seq: u16,
    busy: bool,
    attempts: u8,
    aborting: bool,
    /// When the command counts as lost. Set by the first timeout check that sees the command
    /// rather than at submission, so submitting never reads the clock; a command therefore
    /// gets between one and a quarter more than one timeout period (see `check_timeouts`).
    deadline: Option<Instant>,
}

/// One request in flight: it may be split into several commands.
struct RequestState<D> {
    tag: u64,
    buffer: Option<D>,
    pending: u16,
    error: Option<Error>,
    /// Completion dword 0 of its last successful command (read by [`QueuePair::io_passthru`]).
    dw0: u32,
}

/// How a request maps onto commands.
#[derive(Debug)]
struct Plan {
    commands: usize,
    blocks_per_command: u64,
    ns: Namespace,
}

/// An I/O submission/completion queue pair, for one thread.
///
/// It can move to another thread but not be shared between threads:
///
/// ```
/// fn send<T: Send>() {}
/// send::<nvme::QueuePair<nvme::model::Model>>();
/// ```
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<nvme::QueuePair<nvme::model::Model>>();
/// ```
pub struct QueuePair<P: Platform> {
    shared: Arc<Shared<P>>,
    rings: Rings<P::Dma>,
    lists: Retained<P::Dma>,
    list_pages: usize,
    slots: Vec<Slot>,
    free_slots: Vec<u16>,
    requests: Vec<RequestState<P::Dma>>,
    free_requests: Vec<u16>,
    ready: VecDeque<u16>,
    in_flight: usize,
    sq_pending: bool,
    generation: u64,
    broken: bool,
    /// Set when recreating the queues failed in a way that may leave the creation running in
    /// the controller: the rings must outlive this queue pair until the controller stops.
    rings_in_doubt: bool,
    idle_polls: u32,
    polls: u32,
    /// Before this instant a timeout check does not scan the slots (see `check_timeouts`).
    next_timeout_scan: Instant,
    /// The vector this queue's completions raise, when the controller uses interrupts.
    interrupt: Option<Arc<Interrupt>>,
    /// Not `Sync`: one thread drives a queue pair.
    _not_sync: PhantomData<Cell<()>>,
}

impl<P: Platform> QueuePair<P> {
    pub(crate) fn new(shared: Arc<Shared<P>>) -> Result<QueuePair<P>> {
        shared.options.validate()?;
        if shared.dead.load(Ordering::Acquire) {
            return Err(Error::ControllerDead);
        }
        let qid = shared.take_queue_id()?;
        match Self::build(Arc::clone(&shared), qid) {
            Ok(qp) => Ok(qp),
            Err(e) => {
                shared.release_queue_id(qid);
                Err(e)
            }
        }
    }

    fn build(shared: Arc<Shared<P>>, qid: u16) -> Result<QueuePair<P>> {
        let platform = &shared.platform;
        let wanted = (shared.options.queue_depth as u32 + 1)
            .min(shared.cap.max_queue_entries())
            .min(SLOT_MASK as u32 + 1) as u16;
        let mut rings = Rings::new(platform, qid, wanted, shared.cap.doorbell_stride())?;
        // A queue without a vector of its own (the device has fewer) is polled: sharing one
        // would let one thread clear the other's wake-up.
        let interrupt = shared.interrupts.get(qid as usize).cloned();
        rings.vector = interrupt.as_ref().map(|_| qid);
        let depth = rings.entries as usize - 1;
        let list_pages = prp::list_pages_for((shared.max_transfer / DMA_PAGE_SIZE).max(1));
        // Each slot owns `list_pages` pages at `slot * list_pages * DMA_PAGE_SIZE`: computed
        // checked once here, so no slot's offset can wrap onto another's.
        let list_bytes = depth
            .checked_mul(list_pages)
            .and_then(|pages| pages.checked_mul(DMA_PAGE_SIZE))
            .ok_or_else(|| {
                Error::InvalidOptions(format!(
                    "{depth} slots of {list_pages} PRP list pages do not fit the address space"
                ))
            })?;
        let lists = Retained::new(platform.alloc_dma(list_bytes)?);
        if let Some(shadow) = &shared.shadow {
            // A queue that had this ID before left its last values there.
            shadow.clear_queue(qid, shared.cap.doorbell_stride());
        }
        let generation = {
            let mut admin = shared.lock_admin();
            if let Err(e) = admin.create_io_queues(platform, &rings) {
                if may_be_outstanding(&e) {
                    admin.park(rings.take_memory());
                }
                return Err(e);
            }
            shared.generation.load(Ordering::Acquire)
        };
        Ok(QueuePair {
            slots: (0..depth)
                .map(|_| Slot {
                    sqe: Sqe::default(),
                    request: 0,
                    seq: 0,
                    busy: false,
                    attempts: 0,
                    aborting: false,
                    deadline: None,
                })
                .collect(),
            free_slots: (0..depth as u16).rev().collect(),
            requests: (0..depth)
                .map(|_| RequestState {
                    tag: 0,
                    buffer: None,
                    pending: 0,
                    error: None,
                    dw0: 0,
                })
                .collect(),
            free_requests: (0..depth as u16).rev().collect(),
            ready: VecDeque::with_capacity(depth),
            in_flight: 0,
            sq_pending: false,
            generation,
            broken: false,
            rings_in_doubt: false,
            idle_polls: 0,
            polls: 0,
            next_timeout_scan: Instant::now(),
            list_pages,
            lists,
            rings,
            interrupt,
            shared,
            _not_sync: PhantomData,
        })
    }

    /// The queue ID.
    pub fn id(&self) -> u16 {
        self.rings.qid
    }

    /// How many commands can be in flight at once.
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// The interrupt this queue's completions raise ([`crate::Options::interrupts`]), to sleep
    /// on instead of polling: clear it, [`QueuePair::poll`], and if nothing finished while
    /// commands are in flight, [`Interrupt::wait`] (with a timeout, so that timed-out commands
    /// are still noticed by the next poll). `None`: the queue is polled.
    pub fn interrupt(&self) -> Option<&Interrupt> {
        self.interrupt.as_deref()
    }

    /// Sleeps until this queue's interrupt fires or `timeout` passes; returns at once without
    /// interrupts. Clears the interrupt on waking, so call [`QueuePair::poll`] next.
    pub fn wait_for_completions(&self, timeout: std::time::Duration) -> Result<()> {
        if let Some(irq) = &self.interrupt {
            irq.wait(Some(timeout)).map_err(|source| {
                Error::Platform(crate::platform::PlatformError::Io {
                    context: "waiting for an interrupt".into(),
                    source,
                })
            })?;
            irq.clear();
        }
        Ok(())
    }

    /// Commands currently in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Free command slots.
    pub fn free_slots(&self) -> usize {
        self.free_slots.len()
    }

    /// Largest transfer of one command; bigger requests are split.
    pub fn max_transfer(&self) -> usize {
        self.shared.max_transfer
    }

    /// Allocates DMA memory for request buffers.
    pub fn alloc_buffer(&self, len: usize) -> Result<P::Dma> {
        Ok(self.shared.platform.alloc_dma(len)?)
    }

    /// Namespace `nsid`, if the driver uses it.
    pub fn namespace(&self, nsid: u32) -> Option<Namespace> {
        self.shared
            .namespaces
            .iter()
            .find(|ns| ns.id == nsid)
            .copied()
    }

    fn plan(&self, req: &Request<P::Dma>) -> Result<Plan> {
        if self.broken || self.shared.dead.load(Ordering::Acquire) {
            return Err(Error::ControllerDead);
        }
        let ns = self
            .namespace(req.nsid)
            .ok_or_else(|| Error::InvalidRequest(format!("no usable namespace {}", req.nsid)))?;
        let check_range = || {
            if req.blocks == 0 {
                return Err(Error::InvalidRequest("zero blocks".into()));
            }
            if req
                .lba
                .checked_add(req.blocks)
                .is_none_or(|end| end > ns.blocks)
            {
                return Err(Error::InvalidRequest(format!(
                    "blocks {}..+{} past the end of namespace {} ({} blocks)",
                    req.lba, req.blocks, ns.id, ns.blocks
                )));
            }
            Ok(())
        };
        let per_command = match req.kind {
            IoKind::Flush => u64::MAX,
            IoKind::Read | IoKind::Write { .. } => {
                check_range()?;
                let len = req
                    .blocks
                    .checked_mul(ns.block_size() as u64)
                    .and_then(|l| usize::try_from(l).ok());
                let buffer_len = req.buffer.as_ref().map_or(0, DmaMemory::len);
                let fits = len.is_some_and(|len| {
                    req.buffer_offset
                        .checked_add(len)
                        .is_some_and(|end| end <= buffer_len)
                });
                if !fits {
                    return Err(Error::InvalidRequest(format!(
                        "{} blocks of {} bytes at buffer offset {} do not fit a {buffer_len}-byte buffer",
                        req.blocks,
                        ns.block_size(),
                        req.buffer_offset
                    )));
                }
                if req.buffer_offset % 4 != 0 {
                    return Err(Error::InvalidRequest(
                        "buffer offset is not 4-byte aligned".into(),
                    ));
                }
                // NLB is a 16-bit count, whatever MDTS allows.
                ((self.shared.max_transfer >> ns.block_shift).max(1) as u64).min(1 << 16)
            }
            IoKind::WriteZeroes => {
                check_range()?;
                1 << 16
            }
            IoKind::Deallocate => {
                check_range()?;
                u32::MAX as u64
            }
        };
        let commands = match req.kind {
            IoKind::Flush => 1,
            _ => req.blocks.div_ceil(per_command) as usize,
        };
        if commands > self.slots.len() {
            return Err(Error::InvalidRequest(format!(
                "request needs {commands} commands, the queue holds {}",
                self.slots.len()
            )));
        }
        Ok(Plan {
            commands,
            blocks_per_command: per_command,
            ns,
        })
    }

    /// Queues a request. The doorbell is written by [`QueuePair::flush`] or the next poll, so
    /// several submissions share one doorbell write.
    pub fn submit(&mut self, req: Request<P::Dma>) -> Result<(), Rejected<P::Dma>> {
        self.sync_generation();
        let plan = match self.plan(&req) {
            Ok(plan) => plan,
            Err(error) => {
                return Err(Rejected {
                    error,
                    request: req,
                });
            }
        };
        if plan.commands > self.free_slots.len() || plan.commands > self.rings.sq_space() {
            return Err(Rejected {
                error: Error::QueueFull,
                request: req,
            });
        }
        let Some(r) = self.free_requests.pop() else {
            return Err(Rejected {
                error: Error::QueueFull,
                request: req,
            });
        };
        let state = &mut self.requests[r as usize];
        state.tag = req.tag;
        state.buffer = req.buffer;
        state.pending = 0;
        state.error = None;
        for i in 0..plan.commands as u64 {
            let Some(s) = self.free_slots.pop() else {
                break;
            };
            let first = i * plan.blocks_per_command;
            let blocks = plan
                .blocks_per_command
                .min(req.blocks.saturating_sub(first));
            let byte_offset = req.buffer_offset + ((first << plan.ns.block_shift) as usize);
            match self.build_command(
                s,
                req.kind,
                &plan.ns,
                req.lba + first,
                blocks,
                r,
                byte_offset,
            ) {
                Ok(sqe) => {
                    let slot = &mut self.slots[s as usize];
                    slot.sqe = sqe;
                    slot.request = r;
                    slot.attempts = 0;
                    self.requests[r as usize].pending += 1;
                    self.in_flight += 1;
                    self.start(s);
                }
                Err(e) => {
                    self.free_slots.push(s);
                    let state = &mut self.requests[r as usize];
                    state.error.get_or_insert(e);
                    break;
                }
            }
        }
        if self.requests[r as usize].pending == 0 {
            self.ready.push_back(r);
        }
        self.sq_pending = true;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn build_command(
        &self,
        s: u16,
        kind: IoKind,
        ns: &Namespace,
        lba: u64,
        blocks: u64,
        r: u16,
        byte_offset: usize,
    ) -> Result<Sqe> {
        let list_offset = s as usize * self.list_pages * DMA_PAGE_SIZE;
        let sqe = match kind {
            IoKind::Read | IoKind::Write { .. } => {
                let (opcode, fua) = match kind {
                    IoKind::Write { fua } => (io::WRITE, fua),
                    _ => (io::READ, false),
                };
                let mut sqe = Sqe::new(opcode, ns.id);
                sqe.set_slba(lba);
                sqe.set_cdw(12, (blocks as u32 - 1) | (fua as u32) << 30);
                let Some(buffer) = self.requests[r as usize].buffer.as_ref() else {
                    return Err(Error::InvalidRequest(
                        "read or write without a buffer".into(),
                    ));
                };
                let list = ListSpace {
                    mem: &*self.lists,
                    offset: list_offset,
                    pages: self.list_pages,
                };
                let (prp1, prp2) = prp::build(
                    buffer,
                    byte_offset,
                    (blocks << ns.block_shift) as usize,
                    &list,
                )?;
                sqe.set_prps(prp1, prp2);
                sqe
            }
            IoKind::Flush => Sqe::new(io::FLUSH, ns.id),
            IoKind::WriteZeroes => {
                let mut sqe = Sqe::new(io::WRITE_ZEROES, ns.id);
                sqe.set_slba(lba);
                sqe.set_cdw(12, blocks as u32 - 1);
                sqe
            }
            IoKind::Deallocate => {
                let mut range = [0u8; 16];
                range[4..8].copy_from_slice(&(blocks as u32).to_le_bytes());
                range[8..16].copy_from_slice(&lba.to_le_bytes());
                self.lists.write(list_offset, &range);
                let mut sqe = Sqe::new(io::DATASET_MANAGEMENT, ns.id);
                sqe.set_prps(self.lists.bus_addr(list_offset), 0);
                sqe.set_cdw(10, 0);
                sqe.set_cdw(11, 1 << 2);
                sqe
            }
        };
        Ok(sqe)
    }

    /// Gives slot `s` a fresh command ID and copies its command to the submission ring.
    ///
    /// The CQ head doorbell is written lazily, but always before the controller could find
    /// the CQ full: completions consumed and not yet acknowledged plus commands in flight
    /// (this one included) must fit in the ring.
    fn start(&mut self, s: u16) {
        if self.rings.unacked() + self.in_flight > self.rings.entries as usize - 1 {
            self.rings
                .ring_cq(&self.shared.platform, self.shared.shadow.as_ref());
        }
        let slot = &mut self.slots[s as usize];
        slot.seq = (slot.seq + 1) & (u16::MAX >> SLOT_BITS);
        slot.sqe.set_cid(s | slot.seq << SLOT_BITS);
        slot.busy = true;
        slot.aborting = false;
        slot.deadline = None;
        self.rings.push(&slot.sqe);
        self.sq_pending = true;
    }

    /// Submits requests in order until one is refused (that one is handed back; the rest stay
    /// in the iterator), then writes the doorbell once for all of them. Returns how many went.
    pub fn submit_batch(
        &mut self,
        requests: impl IntoIterator<Item = Request<P::Dma>>,
    ) -> Result<usize, Rejected<P::Dma>> {
        let mut submitted = 0;
        for req in requests {
            if let Err(rejected) = self.submit(req) {
                self.flush();
                return Err(rejected);
            }
            submitted += 1;
        }
        self.flush();
        Ok(submitted)
    }

    /// Writes the submission doorbell for everything queued since the last write.
    pub fn flush(&mut self) {
        if self.sq_pending {
            self.rings
                .ring_sq(&self.shared.platform, self.shared.shadow.as_ref());
            self.sq_pending = false;
        }
    }

    /// Rings pending doorbells, reaps completions, handles timeouts, and hands every finished
    /// request to `on_complete`. Returns how many requests finished.
    pub fn poll(&mut self, mut on_complete: impl FnMut(Completion<P::Dma>)) -> usize {
        self.sync_generation();
        self.flush();
        let mut reaped = 0;
        while let Some(cqe) = self.rings.next_cqe() {
            reaped += 1;
            self.on_cqe(cqe);
        }
        self.polls = self.polls.wrapping_add(1);
        if reaped > 0 {
            // One CQ doorbell per half ring of completions rather than per poll; `start`
            // writes it earlier when the ring could otherwise fill.
            if self.rings.unacked() * 2 >= self.rings.entries as usize {
                self.rings
                    .ring_cq(&self.shared.platform, self.shared.shadow.as_ref());
            }
            self.idle_polls = 0;
        } else {
            self.idle_polls = self.idle_polls.wrapping_add(1);
        }
        // With interrupts a poll follows a wake-up or a timer, so an empty one looks at the
        // clock every time; a spinning poller only every so often.
        let idle_check = self.interrupt.is_some()
            || self.idle_polls.is_multiple_of(IDLE_POLLS_PER_TIMEOUT_CHECK);
        let due = (reaped == 0 && idle_check) || self.polls.is_multiple_of(POLLS_PER_TIMEOUT_CHECK);
        if due && self.in_flight > 0 {
            self.check_timeouts();
        }
        self.flush();
        let mut finished = 0;
        while let Some(r) = self.ready.pop_front() {
            finished += 1;
            let dead = self.shared.dead.load(Ordering::Acquire);
            let state = &mut self.requests[r as usize];
            let mut buffer = state.buffer.take();
            if dead && state.error.is_some() && !self.shared.dma_stopped() {
                // The device may still write into it: never free memory it could reach.
                std::mem::forget(buffer.take());
            }
            let completion = Completion {
                tag: state.tag,
                result: state.error.take().map_or(Ok(()), Err),
                buffer,
            };
            self.free_requests.push(r);
            on_complete(completion);
        }
        finished
    }

    fn on_cqe(&mut self, cqe: Cqe) {
        let s = cqe.cid & SLOT_MASK;
        let Some(slot) = self.slots.get(s as usize) else {
            return;
        };
        if !slot.busy || slot.sqe.cid() != cqe.cid {
            // A late completion of a command already resubmitted or failed.
            return;
        }
        let opcode = slot.sqe.opcode();
        match Status::from_field(cqe.status) {
            None => {
                self.requests[slot.request as usize].dw0 = cqe.dw0;
                self.finish(s, None);
            }
            Some(status) if status.is_abort_requested() && slot.aborting => {
                self.retry(s, Error::Timeout("an I/O command"));
            }
            Some(status) if retryable(status) => {
                self.retry(s, Error::Command { opcode, status });
            }
            Some(status) => self.finish(s, Some(Error::Command { opcode, status })),
        }
    }

    /// Resubmits slot `s` unless it has used up its retries.
    fn retry(&mut self, s: u16, error: Error) {
        let slot = &mut self.slots[s as usize];
        if slot.attempts >= self.shared.options.retries || self.rings.sq_space() == 0 {
            self.finish(s, Some(error));
            return;
        }
        slot.attempts += 1;
        self.start(s);
    }

    fn finish(&mut self, s: u16, error: Option<Error>) {
        let slot = &mut self.slots[s as usize];
        slot.busy = false;
        slot.aborting = false;
        let r = slot.request;
        self.in_flight -= 1;
        self.free_slots.push(s);
        let state = &mut self.requests[r as usize];
        if let Some(e) = error {
            state.error.get_or_insert(e);
        }
        state.pending -= 1;
        if state.pending == 0 {
            self.ready.push_back(r);
        }
    }
}

impl<P: Platform> Drop for QueuePair<P> {
    /// Deletes the SQ (which ends its commands) and then the CQ; if that fails, resets the
    /// controller so it cannot touch this queue pair's memory any more. Memory the controller
    /// may still reach (a dead controller whose DMA could not be stopped) is leaked instead.
    fn drop(&mut self) {
        let qid = self.rings.qid;
        let mut admin = self.shared.lock_admin();
        let current = self.shared.generation.load(Ordering::Acquire);
        let dead = self.shared.dead.load(Ordering::Acquire);
        // A reset since the queues were created (or a failed recreation after one) means the
        // controller no longer has them.
        let mut released = !dead && (self.broken || current != self.generation);
        if !dead && self.rings_in_doubt {
            // A queue creation may still be running over these rings: they stay with the admin
            // queue until the controller is next disabled or stopped.
            admin.park(self.rings.take_memory());
        }
        if !dead && !self.broken && current == self.generation {
            let platform = &self.shared.platform;
            let deleted = admin
                .delete_queue(platform, admin::DELETE_SQ, qid)
                .and_then(|()| admin.delete_queue(platform, admin::DELETE_CQ, qid));
            drop(admin);
            released = deleted.is_ok() || self.shared.reset(current).is_ok();
        } else {
            drop(admin);
        }
        if !released && !self.shared.dma_stopped() {
            let mut bytes = 0;
            let memory = self
                .lists
                .take()
                .into_iter()
                .chain(self.rings.take_memory());
            for mem in memory {
                bytes += mem.len();
                std::mem::forget(mem);
            }
            for slot in &self.slots {
                if slot.busy {
                    let state = &mut self.requests[slot.request as usize];
                    if let Some(buffer) = state.buffer.take() {
                        bytes += buffer.len();
                        std::mem::forget(buffer);
                    }
                }
            }
            tracing::error!(
                "queue pair {qid}: the controller may still use its memory and cannot be \
                 stopped; leaking {bytes} bytes of rings, PRP lists and buffers"
            );
        }
        self.shared.release_queue_id(qid);
    }
}

impl<P: Platform> std::fmt::Debug for QueuePair<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePair")
            .field("qid", &self.rings.qid)
            .field("depth", &self.slots.len())
            .field("in_flight", &self.in_flight)
            .field("generation", &self.generation)
            .field("broken", &self.broken)
            .finish()
    }
}

/// Whether a failed command may succeed when sent again: the controller did not set Do Not
/// Retry, and it was not aborted on purpose.
fn retryable(status: Status) -> bool {
    let aborted = status.sct == sct::GENERIC
        && matches!(status.sc, sc::ABORT_REQUESTED | sc::ABORTED_SQ_DELETION);
    !status.dnr && !aborted
}
