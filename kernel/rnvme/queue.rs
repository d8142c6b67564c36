// SPDX-License-Identifier: GPL-2.0

//! One submission/completion queue pair in DMA-coherent memory, with its doorbells.
//!
//! The submission side is locked by `sq_state` (taken in process context only), the completion side
//! by `cq_state` (taken by the queue's interrupt handler, by the polling admin path that has no
//! interrupt, or by a reset while the queue's interrupt is disabled). The two are never held together,
//! so neither lock is ever taken by an interrupt that preempts its holder.

use kernel::{
    device::Bound,
    devres::Devres,
    dma::Coherent,
    dma_read, dma_write,
    io::Io,
    new_spinlock, pci,
    prelude::*,
    sync::{
        Arc, SpinLock,
        atomic::{Acquire, Atomic, Release},
        barrier::{smp_mb, smp_wmb},
    },
    time::{Delta, delay::fsleep},
};

use crate::{
    nvme_command::Cqe,
    nvme_spec::{Cap, Command, completion_status},
    nvme_status::Status,
};

/// BAR0, shared by the driver, the queues and their interrupt handlers; revoked at unbind.
pub(crate) type Bar0 = Devres<pci::Bar<'static, { crate::nvme_spec::reg::SIZE }>>;

/// Whether a submission queue takes new commands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    Open,
    /// Closed while the controller resets: commands are refused with `EBUSY`, to be tried again.
    Resetting,
    /// Closed for good (the controller failed to come back): commands are refused with `EIO`.
    Dead,
}

struct SqState {
    tail: u16,
    /// The tail last made known to the controller.
    rung: u16,
    gate: Gate,
}

struct CqState {
    head: u16,
    phase: bool,
    /// Completions consumed since the head was last written to the controller.
    unacknowledged: u16,
}

/// One completion: command identifier, status and dword 0 (the command-specific result).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion {
    pub(crate) cid: u16,
    /// `None` for success.
    pub(crate) status: Option<Status>,
    pub(crate) result: u32,
}

/// The shadow doorbell and event index pages (Doorbell Buffer Config), shared by the I/O queues.
///
/// With them, a doorbell update is a memory write; the register is written only when the controller
/// asks for it through the event index (it stopped looking at the shadow), as the C driver does. On
/// an emulated controller each register write traps into the hypervisor, so this saves most of them.
pub(crate) struct ShadowDoorbells {
    values: Coherent<[u32]>,
    event_indices: Coherent<[u32]>,
    /// Set once the controller accepted the pages; cleared when it is reset.
    active: Atomic<u32>,
}

impl ShadowDoorbells {
    pub(crate) fn new(dev: &kernel::device::Device<Bound>) -> Result<Arc<ShadowDoorbells>> {
        let words = crate::nvme_spec::PAGE as usize / 4;
        Ok(Arc::new(
            ShadowDoorbells {
                values: Coherent::<u32>::zeroed_slice(dev, words, GFP_KERNEL)?,
                event_indices: Coherent::<u32>::zeroed_slice(dev, words, GFP_KERNEL)?,
                active: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// The pages' bus addresses, for the Doorbell Buffer Config command.
    pub(crate) fn addresses(&self) -> (u64, u64) {
        (self.values.dma_handle(), self.event_indices.dma_handle())
    }

    /// Zeroes both pages and stops using them, before the controller is enabled again: a reset
    /// forgets them, and the queues start again from zero.
    pub(crate) fn clear(&self) {
        self.active.store(0, Release);
        for i in 0..self.values.len() {
            dma_write!(self.values, [panic: i], 0);
            dma_write!(self.event_indices, [panic: i], 0);
        }
    }

    pub(crate) fn activate(&self) {
        self.active.store(1, Release);
    }

    /// Stores `value` as doorbell `index` in memory; true if the register must be written too.
    fn update(&self, index: usize, value: u16) -> bool {
        if self.active.load(Acquire) == 0 || index >= self.values.len() {
            return true;
        }
        // The queue entries before the shadow doorbell (the C driver's `wmb()`; x86 keeps stores
        // in order).
        smp_wmb();
        let old = dma_read!(self.values, [panic: index]) as u16;
        dma_write!(self.values, [panic: index], u32::from(value));
        // The shadow doorbell before the event index is read (the C driver's `mb()`).
        smp_mb();
        let event = dma_read!(self.event_indices, [panic: index]) as u16;
        // The controller asked to be told once the doorbell passes `event`.
        value.wrapping_sub(event).wrapping_sub(1) < value.wrapping_sub(old)
    }
}

#[pin_data]
pub(crate) struct Queue {
    pub(crate) qid: u16,
    /// Submission queue entries.
    pub(crate) entries: u16,
    /// Completion queue entries (at least `entries`).
    pub(crate) cq_entries: u16,
    /// How many consumed completions may go unacknowledged before the head is written (0: always
    /// written). See [`Queue::new`].
    lazy_head: u16,
    /// `entries` commands of 16 dwords; each is written with one store, as the C driver's `memcpy`.
    sq: Coherent<[[u32; 16]]>,
    /// `cq_entries` completions of 4 dwords.
    cq: Coherent<[u32]>,
    #[pin]
    sq_state: SpinLock<SqState>,
    #[pin]
    cq_state: SpinLock<CqState>,
    sq_doorbell: usize,
    cq_doorbell: usize,
    /// For I/O queues when the controller offers them; the index of each doorbell in the pages.
    shadow: Option<(Arc<ShadowDoorbells>, usize, usize)>,
    bar: Arc<Bar0>,
}

impl Queue {
    /// A queue pair of `entries` submission and `cq_entries` completion slots.
    ///
    /// A completion queue at least twice the submission queue lets the driver write its head
    /// lazily. The controller needs a free completion slot only for a command it holds: at most
    /// `entries - 1` of them, plus as many again for tags freed and used again while a pass over the
    /// completion queue runs (a failed request is ended within the pass). So up to
    /// `cq_entries - 2 * entries` consumed completions can go unacknowledged without the controller
    /// ever finding the queue full. Half of that is used: the head is written once more than
    /// `(cq_entries - 2 * entries) / 2` completions went unacknowledged. Each head write saved is a
    /// register write (or a shadow update that often becomes one) saved; the C driver writes the
    /// head after every interrupt.
    pub(crate) fn new(
        dev: &kernel::device::Device<Bound>,
        bar: Arc<Bar0>,
        cap: &Cap,
        qid: u16,
        (entries, cq_entries): (u16, u16),
        shadow: Option<Arc<ShadowDoorbells>>,
    ) -> Result<Arc<Queue>> {
        let cq_entries = cq_entries.max(entries);
        let sq = Coherent::<[u32; 16]>::zeroed_slice(dev, usize::from(entries), GFP_KERNEL)?;
        let cq = Coherent::<u32>::zeroed_slice(dev, usize::from(cq_entries) * 4, GFP_KERNEL)?;
        let (sq_doorbell, cq_doorbell) = (cap.sq_doorbell(qid), cap.cq_doorbell(qid));
        let words = |register: usize| (register - crate::nvme_spec::reg::DOORBELLS) / 4;
        let shadow = shadow.map(|s| (s, words(sq_doorbell), words(cq_doorbell)));
        Arc::pin_init(
            pin_init!(Queue {
                qid,
                entries,
                cq_entries,
                lazy_head: cq_entries.saturating_sub(entries.saturating_mul(2)) / 2,
                sq,
                cq,
                sq_state <- new_spinlock!(SqState { tail: 0, rung: 0, gate: Gate::Open }),
                cq_state <- new_spinlock!(CqState { head: 0, phase: true, unacknowledged: 0 }),
                sq_doorbell,
                cq_doorbell,
                shadow,
                bar,
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn sq_address(&self) -> u64 {
        self.sq.dma_handle()
    }

    pub(crate) fn cq_address(&self) -> u64 {
        self.cq.dma_handle()
    }

    /// Writes `value` to a doorbell: to its shadow when there is one, to the register when needed.
    /// The BAR is reached only for the register (most updates go to the shadow only, and reaching
    /// it takes the RCU read lock). A BAR already gone (the device was unbound) leaves the register
    /// alone: there is no controller left to tell.
    fn doorbell(&self, sq: bool, value: u16) {
        let needed = match &self.shadow {
            Some((pages, sq_index, cq_index)) => {
                pages.update(if sq { *sq_index } else { *cq_index }, value)
            }
            None => true,
        };
        if !needed {
            return;
        }
        let register = if sq {
            self.sq_doorbell
        } else {
            self.cq_doorbell
        };
        // `writel` orders the queue entries' stores before the doorbell.
        if let Some(bar) = self.bar.try_access() {
            let _ = bar.try_write32(u32::from(value), register);
        }
    }

    /// Under the submission lock: runs `admit` (which records the command as in flight), then copies
    /// `cmd` into the next slot and, if `ring`, rings the doorbell for every command copied so far.
    /// Fails without running `admit` while the queue's gate is closed. The caller keeps fewer than
    /// `entries` commands outstanding (blk-mq's tag depth, or one admin command at a time), so the
    /// ring never overflows.
    ///
    /// With `lose`, the command is admitted but never copied: the controller never sees it (the
    /// test-only fault that exercises the driver's timeout handling).
    pub(crate) fn submit(
        &self,
        cmd: &Command,
        ring: bool,
        lose: bool,
        admit: impl FnOnce() -> Result,
    ) -> Result {
        let mut sq = self.sq_state.lock();
        match sq.gate {
            Gate::Open => {}
            Gate::Resetting => return Err(EBUSY),
            Gate::Dead => return Err(EIO),
        }
        admit()?;
        if !lose {
            dma_write!(self.sq, [panic: usize::from(sq.tail)], cmd.dw);
            sq.tail = if sq.tail + 1 == self.entries {
                0
            } else {
                sq.tail + 1
            };
        }
        if ring && sq.rung != sq.tail {
            sq.rung = sq.tail;
            self.doorbell(true, sq.tail);
        }
        Ok(())
    }

    /// Rings the doorbell for commands copied without ringing it (blk-mq's `commit_rqs`).
    pub(crate) fn ring(&self) {
        let mut sq = self.sq_state.lock();
        if sq.rung != sq.tail {
            sq.rung = sq.tail;
            self.doorbell(true, sq.tail);
        }
    }

    /// Opens or closes the submission gate. Once this returns, no submission is under way.
    pub(crate) fn set_gate(&self, gate: Gate) {
        self.sq_state.lock().gate = gate;
    }

    /// Forgets both rings' positions and clears the completion ring, for a controller that was
    /// disabled (which empties its queues) and is about to get the queue again. The gate stays as it is.
    pub(crate) fn rewind(&self) {
        {
            let mut sq = self.sq_state.lock();
            sq.tail = 0;
            sq.rung = 0;
        }
        let mut cq = self.cq_state.lock();
        for i in 0..self.cq.len() {
            dma_write!(self.cq, [panic: i], 0);
        }
        cq.head = 0;
        cq.phase = true;
        cq.unacknowledged = 0;
    }

    /// Hands every new completion to `f` and acknowledges them (at once, or lazily: see
    /// [`Queue::new`]); returns how many there were.
    pub(crate) fn reap(&self, mut f: impl FnMut(Completion)) -> usize {
        let mut state = self.cq_state.lock();
        let mut count = 0;
        loop {
            let base = usize::from(state.head) * 4;
            // Dword 3 (phase and status) first; the others are only valid once it says so.
            let dw3 = dma_read!(self.cq, [panic: base + 3]);
            let cqe = Cqe::from_dwords([0, 0, 0, dw3]);
            if cqe.phase != state.phase {
                break;
            }
            let result = dma_read!(self.cq, [panic: base]);
            f(Completion {
                cid: cqe.cid,
                status: completion_status(dw3),
                result,
            });
            count += 1;
            state.head += 1;
            if state.head == self.cq_entries {
                state.head = 0;
                state.phase = !state.phase;
            }
        }
        state.unacknowledged = state.unacknowledged.saturating_add(count as u16);
        if count > 0 && state.unacknowledged > self.lazy_head {
            self.doorbell(false, state.head);
            state.unacknowledged = 0;
        }
        count
    }

    /// Submits `cmd` and polls for its completion for up to `timeout_ms` (admin commands, which the
    /// driver issues one at a time from process context).
    pub(crate) fn execute(&self, cmd: Command, cid: u16, timeout_ms: u32) -> Result<Completion> {
        self.submit(&cmd.with_cid(cid), true, false, || Ok(()))?;
        let step_us = 50;
        let mut waited_us: u64 = 0;
        loop {
            let mut found = None;
            // A device gone (unbound) will not answer.
            self.bar.try_access().ok_or(ENODEV)?;
            self.reap(|c| {
                if c.cid == cid {
                    found = Some(c);
                }
            });
            if let Some(c) = found {
                return Ok(c);
            }
            if waited_us >= u64::from(timeout_ms) * 1000 {
                return Err(ETIMEDOUT);
            }
            fsleep(Delta::from_micros(step_us));
            waited_us += step_us as u64;
        }
    }
}
