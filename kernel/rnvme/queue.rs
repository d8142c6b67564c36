// SPDX-License-Identifier: GPL-2.0

//! One submission/completion queue pair in DMA-coherent memory, with its doorbells.
//!
//! The submission side is locked by `sq` (taken in process context only), the completion side by `cq`
//! (taken by the queue's interrupt handler, or by the polling admin path that has no interrupt). The
//! two are never held together, so neither lock is ever taken by an interrupt that preempts its holder.

use kernel::{
    device::Bound,
    devres::Devres,
    dma::Coherent,
    dma_read, dma_write,
    io::Io,
    new_spinlock, pci,
    prelude::*,
    sync::{Arc, SpinLock},
    time::{delay::fsleep, Delta},
};

use crate::nvme_spec::{completion_cid, completion_phase, Cap, Command, Status};

/// BAR0, shared by the driver, the queues and their interrupt handlers; revoked at unbind.
pub(crate) type Bar0 = Devres<pci::Bar<'static, { crate::nvme_spec::reg::SIZE }>>;

struct CqState {
    head: u16,
    phase: bool,
}

/// One completion: command identifier, status and dword 0 (the command-specific result).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Completion {
    pub(crate) cid: u16,
    pub(crate) status: Status,
    pub(crate) result: u32,
}

#[pin_data]
pub(crate) struct Queue {
    pub(crate) qid: u16,
    pub(crate) entries: u16,
    /// `entries` commands of 16 dwords.
    sq: Coherent<[u32]>,
    /// `entries` completions of 4 dwords.
    cq: Coherent<[u32]>,
    #[pin]
    sq_tail: SpinLock<u16>,
    #[pin]
    cq_state: SpinLock<CqState>,
    sq_doorbell: usize,
    cq_doorbell: usize,
    bar: Arc<Bar0>,
}

impl Queue {
    pub(crate) fn new(
        dev: &kernel::device::Device<Bound>,
        bar: Arc<Bar0>,
        cap: &Cap,
        qid: u16,
        entries: u16,
    ) -> Result<Arc<Queue>> {
        let sq = Coherent::<u32>::zeroed_slice(dev, usize::from(entries) * 16, GFP_KERNEL)?;
        let cq = Coherent::<u32>::zeroed_slice(dev, usize::from(entries) * 4, GFP_KERNEL)?;
        let (sq_doorbell, cq_doorbell) = (cap.sq_doorbell(qid), cap.cq_doorbell(qid));
        Arc::pin_init(
            pin_init!(Queue {
                qid,
                entries,
                sq,
                cq,
                sq_tail <- new_spinlock!(0),
                cq_state <- new_spinlock!(CqState { head: 0, phase: true }),
                sq_doorbell,
                cq_doorbell,
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

    /// Copies `cmd` into the next slot and rings the doorbell. The caller keeps fewer than `entries`
    /// commands outstanding (blk-mq's tag depth, or one admin command at a time), so the ring never
    /// overflows.
    pub(crate) fn submit(&self, cmd: &Command) -> Result {
        let bar = self.bar.try_access().ok_or(ENODEV)?;
        let mut tail = self.sq_tail.lock();
        let base = usize::from(*tail) * 16;
        for (i, dw) in cmd.0.iter().enumerate() {
            dma_write!(self.sq, [panic: base + i], *dw);
        }
        *tail = if *tail + 1 == self.entries { 0 } else { *tail + 1 };
        // `writel` orders the entry's stores before the doorbell.
        bar.try_write32(u32::from(*tail), self.sq_doorbell)
    }

    /// Hands every new completion to `f` and acknowledges them; returns how many there were.
    pub(crate) fn reap(&self, bar: &pci::Bar<'static, { crate::nvme_spec::reg::SIZE }>, mut f: impl FnMut(Completion)) -> usize {
        let mut state = self.cq_state.lock();
        let mut count = 0;
        loop {
            let base = usize::from(state.head) * 4;
            // Dword 3 (phase and status) first; the others are only valid once it says so.
            let dw3 = dma_read!(self.cq, [panic: base + 3]);
            if completion_phase(dw3) != state.phase {
                break;
            }
            let result = dma_read!(self.cq, [panic: base]);
            f(Completion {
                cid: completion_cid(dw3),
                status: Status::from_dw3(dw3),
                result,
            });
            count += 1;
            state.head += 1;
            if state.head == self.entries {
                state.head = 0;
                state.phase = !state.phase;
            }
        }
        if count > 0 {
            let _ = bar.try_write32(u32::from(state.head), self.cq_doorbell);
        }
        count
    }

    /// Submits `cmd` and polls for its completion for up to `timeout_ms` (admin commands, which the
    /// driver issues one at a time from process context).
    pub(crate) fn execute(&self, cmd: Command, cid: u16, timeout_ms: u32) -> Result<Completion> {
        self.submit(&cmd.with_cid(cid))?;
        let step_us = 50;
        let mut waited_us: u64 = 0;
        loop {
            let mut found = None;
            {
                let bar = self.bar.try_access().ok_or(ENODEV)?;
                self.reap(&bar, |c| {
                    if c.cid == cid {
                        found = Some(c);
                    }
                });
            }
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

impl Queue {
    pub(crate) fn bar(&self) -> &Bar0 {
        &self.bar
    }
}
