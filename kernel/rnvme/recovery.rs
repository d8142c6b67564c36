// SPDX-License-Identifier: GPL-2.0

//! Request timeouts: a watchdog that notices an I/O command outstanding past its deadline, aborts it
//! and, when the abort does not bring it back, resets the controller.
//!
//! 7.2's blk-mq abstraction builds the `blk_mq_ops` table without a `timeout` callback, so the block
//! layer never reports a late request to the driver. The driver keeps its own clock instead: a
//! delayed work item ticks once a second, each I/O command records the tick it was submitted at (one
//! relaxed store, no clock read on the I/O path), and a command older than `io_timeout` ticks is
//! late. Like the C driver, a late command is first aborted (Abort, on the admin queue); if the
//! controller does not abort it, the controller is reset: dispatch stops, the controller is disabled
//! (which drops every command it holds), completions already posted are reaped, the late command
//! fails with `BLK_STS_TIMEOUT`, the others are requeued, and the controller is brought back with the
//! same queues. If it does not come back, every request fails from then on.

use kernel::{
    alloc::kvec::PushError,
    block::mq::Request,
    impl_has_delayed_work, new_delayed_work, new_mutex,
    prelude::*,
    sync::{Arc, Mutex, aref::ARef, atomic::Relaxed},
    time::{Delta, delay::fsleep, msecs_to_jiffies},
    workqueue::{self, DelayedWork, WorkItem},
};

use crate::{Ctrl, Issued, NvmeDisk, admin_command, blk, disable, nvme_spec::Command, queue::Gate};

type NvmeRequest = Request<NvmeDisk>;

/// `blk_status_t` of a request that timed out (`BLK_STS_TIMEOUT`).
const STATUS_TIMEOUT: u8 = 2;
/// `blk_status_t` of a request that cannot be served (`BLK_STS_IOERR`).
const STATUS_IOERR: u8 = 10;
/// How long an aborted command may take to come back before the controller is reset.
const ABORT_GRACE_MS: u32 = 1000;
/// The watchdog's period.
const TICK_MS: u32 = 1000;

/// The watchdog of one controller; it runs until [`Watchdog::stop`].
#[pin_data]
pub(crate) struct Watchdog {
    #[pin]
    work: DelayedWork<Watchdog>,
    /// Whether the work item queues itself again; cleared (under the lock) by `stop`.
    #[pin]
    armed: Mutex<bool>,
    ctrl: Arc<Ctrl>,
    /// Ticks a command may be outstanding; 0 disables the check.
    timeout_ticks: u32,
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Watchdog { self.work }
}

impl WorkItem for Watchdog {
    type Pointer = Arc<Watchdog>;

    fn run(this: Arc<Watchdog>) {
        this.check();
        let again = this.clone();
        let armed = this.armed.lock();
        if *armed {
            let _ = workqueue::system().enqueue_delayed(again, msecs_to_jiffies(TICK_MS));
        }
    }
}

impl Watchdog {
    /// Starts the watchdog of `ctrl`, for commands allowed `timeout_s` seconds (0: no limit).
    pub(crate) fn start(ctrl: Arc<Ctrl>, timeout_s: u32) -> Result<Arc<Watchdog>> {
        let watchdog = Arc::pin_init(
            pin_init!(Watchdog {
                work <- new_delayed_work!("rnvme::Watchdog::work"),
                armed <- new_mutex!(true),
                ctrl,
                timeout_ticks: timeout_s,
            }),
            GFP_KERNEL,
        )?;
        let _ = workqueue::system().enqueue_delayed(watchdog.clone(), msecs_to_jiffies(TICK_MS));
        Ok(watchdog)
    }

    /// Stops the watchdog: once this returns, its work item neither runs nor is queued.
    pub(crate) fn stop(&self) {
        *self.armed.lock() = false;
        // A queued run is started at once and waited for; it sees `armed` false and does not queue
        // itself again.
        blk::flush_delayed_work(&self.work);
    }

    /// One tick: advances every queue's clock and handles the oldest late command (a reset, if it
    /// comes to that, gives the others a new start).
    fn check(&self) {
        // (age in ticks, queue index, tag, tick it was submitted at)
        let mut late: Option<(u32, usize, usize, u32)> = None;
        for (index, q) in self.ctrl.io.iter().enumerate() {
            let now = match q.tick.load(Relaxed).wrapping_add(1) {
                0 => 1,
                t => t,
            };
            q.tick.store(now, Relaxed);
            if self.timeout_ticks == 0 {
                continue;
            }
            for (tag, issued) in q.issued.iter().enumerate() {
                let Some(Issued { tick: at, .. }) = Issued::from_word(issued.load(Relaxed)) else {
                    continue;
                };
                let age = now.wrapping_sub(at);
                if age > self.timeout_ticks && late.is_none_or(|l| age > l.0) {
                    late = Some((age, index, tag, at));
                }
            }
        }
        if let Some((_, index, tag, at)) = late {
            self.ctrl.recover(index, tag, at, self.timeout_ticks);
        }
    }
}

impl Ctrl {
    /// Still the command submitted at tick `at` under `tag` of I/O queue `index`?
    fn still_late(&self, index: usize, tag: usize, at: u32) -> bool {
        Issued::from_word(self.io[index].issued[tag].load(Relaxed)).is_some_and(|i| i.tick == at)
    }

    /// Handles a late command: abort, then reset if the abort does not bring it back.
    fn recover(&self, index: usize, tag: usize, at: u32, timeout_s: u32) {
        let qid = self.io[index].queue.qid;
        pr_warn!(
            "I/O queue {}: command {} outstanding for over {} s, aborting it\n",
            qid,
            tag,
            timeout_s
        );
        if self.is_dead() {
            return;
        }
        match admin_command(&self.admin, Command::abort(qid, tag as u16)) {
            Ok(result) if result & 1 == 0 => {
                let mut waited = 0;
                while waited < ABORT_GRACE_MS && self.still_late(index, tag, at) {
                    fsleep(Delta::from_millis(10));
                    waited += 10;
                }
                if !self.still_late(index, tag, at) {
                    pr_info!("I/O queue {}: command {} aborted\n", qid, tag);
                    return;
                }
            }
            Ok(_) => pr_warn!(
                "I/O queue {}: the controller did not abort command {}\n",
                qid,
                tag
            ),
            Err(e) => pr_warn!(
                "I/O queue {}: abort of command {} failed: {:?}\n",
                qid,
                tag,
                e
            ),
        }
        if !self.still_late(index, tag, at) {
            // It completed while the abort was under way.
            return;
        }
        self.reset(Some((index, tag)));
    }

    /// Resets the controller: everything it holds is dropped, `late` (I/O queue index and tag)
    /// fails with a timeout, other commands are requeued, and the queues are created again.
    pub(crate) fn reset(&self, late: Option<(usize, usize)>) {
        pr_warn!("resetting the controller\n");
        // Room for every request the queues can hold, taken before anything stops.
        let tags = self.io.iter().map(|q| q.issued.len()).sum();
        let requeue = KVec::with_capacity(tags, GFP_KERNEL).unwrap_or_default();
        let blk_queue = self.blk_queue.lock();
        // Closing the gates stops submissions at once; quiescing also waits for `queue_rq` calls
        // under way (they fail at the gate, and blk-mq retries them once dispatch runs again).
        for q in self.io.iter() {
            q.queue.set_gate(Gate::Resetting);
        }
        if let Some(q) = blk_queue.as_ref() {
            q.quiesce();
        }
        self.restart(late, requeue);
        if let Some(q) = blk_queue.as_ref() {
            q.unquiesce();
        }
    }

    /// The part of [`Ctrl::reset`] that runs with dispatch stopped and the gates closed.
    fn restart(&self, late: Option<(usize, usize)>, mut requeue: KVec<ARef<NvmeRequest>>) {
        // Registers are reached through `self.bar` access by access: the steps below sleep.
        let regs = &*self.bar;
        if let Err(e) = disable(regs, &self.cap) {
            pr_err!("disabling the controller for a reset failed: {:?}\n", e);
        }
        for q in self.io.iter() {
            blk::disable_irq(q.irq);
        }
        // Completions posted before the controller stopped are real: end them normally.
        let mut reaped = 0;
        for q in self.io.iter() {
            let mut batch = blk::EndBatch::new();
            reaped += q.queue.reap(|c| q.complete(c, &mut batch));
        }
        let mut failed = 0;
        for (index, q) in self.io.iter().enumerate() {
            for tag in 0..q.issued.len() {
                let Some(rq) = q.in_flight.take_back(tag as u16) else {
                    continue;
                };
                q.retire(tag as u16);
                if late == Some((index, tag)) {
                    blk::end_request(rq, STATUS_TIMEOUT);
                    failed += 1;
                } else if let Err(PushError(rq)) = requeue.push_within_capacity(rq) {
                    // No room to hold it until the restart: fail it rather than lose it.
                    blk::end_request(rq, STATUS_IOERR);
                    failed += 1;
                }
            }
        }

        if let Some(shadow) = &self.shadow {
            shadow.clear();
        }
        crate::STALLED.store(0, Relaxed);
        let restarted =
            Ctrl::enable(regs, &self.cap, &self.admin).and_then(|()| self.start_io_queues());
        for q in self.io.iter() {
            blk::enable_irq(q.irq);
        }
        match restarted {
            Ok(()) => {
                for q in self.io.iter() {
                    q.queue.set_gate(Gate::Open);
                }
                pr_warn!(
                    "controller reset: {} completion(s) reaped, {} request(s) failed, {} requeued\n",
                    reaped,
                    failed,
                    requeue.len()
                );
                for rq in requeue.drain_all() {
                    blk::requeue_request(rq);
                }
            }
            Err(e) => {
                pr_err!(
                    "the controller did not come back from a reset ({:?}): failing all I/O\n",
                    e
                );
                self.dead.store(1, Relaxed);
                let _ = disable(regs, &self.cap);
                for q in self.io.iter() {
                    q.queue.set_gate(Gate::Dead);
                }
                for rq in requeue.drain_all() {
                    blk::end_request(rq, STATUS_IOERR);
                }
            }
        }
    }
}
