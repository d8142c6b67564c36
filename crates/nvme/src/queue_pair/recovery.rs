//! When commands go missing: timeouts, Abort, controller reset and resubmission.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::QueuePair;
use crate::admin::check_alive;
use crate::error::Error;
use crate::platform::Platform;

/// How many times per I/O timeout period the slots are scanned for overdue commands.
const TIMEOUT_SCANS_PER_PERIOD: u32 = 8;

impl<P: Platform> QueuePair<P> {
    /// Looks for overdue commands, scanning every slot at most [`TIMEOUT_SCANS_PER_PERIOD`] times
    /// per timeout period: a spinning poller checks often, and a scan of a deep queue's slots cost
    /// it as much as the rest of its polling. A command is found overdue between one timeout period
    /// and an eighth more after the first scan that saw it, itself at most an eighth after the
    /// command was submitted.
    pub(super) fn check_timeouts(&mut self) {
        let now = Instant::now();
        if now < self.next_timeout_scan {
            return;
        }
        self.next_timeout_scan = now + self.shared.options.io_timeout / TIMEOUT_SCANS_PER_PERIOD;
        for s in 0..self.slots.len() as u16 {
            let slot = &self.slots[s as usize];
            if !slot.busy {
                continue;
            }
            let Some(deadline) = slot.deadline else {
                self.slots[s as usize].deadline = Some(now + self.shared.options.io_timeout);
                continue;
            };
            if deadline < now && self.handle_timeout(s, now) {
                return;
            }
        }
    }

    /// Deals with one overdue command; `true` if the whole queue pair was recovered.
    fn handle_timeout(&mut self, s: u16, now: Instant) -> bool {
        let platform = &self.shared.platform;
        match check_alive(platform) {
            Ok(()) => {}
            Err(Error::ControllerFatal) => return self.reset_and_recover(),
            Err(_) => {
                // Registers read all-ones: the device is gone or stopped decoding memory, and
                // may still be mastering the bus. Stop its DMA before anything is handed back.
                self.shared.mark_dead();
                self.recover();
                return true;
            }
        }
        let slot = &self.slots[s as usize];
        if slot.aborting {
            return self.reset_and_recover();
        }
        let cid = slot.sqe.cid();
        let aborted = self
            .shared
            .lock_admin()
            .abort(platform, self.rings.qid, cid);
        match aborted {
            // Aborted: its "abort requested" completion follows and it is resubmitted then.
            // Not aborted: it may have completed with the completion lost, or it may still be
            // running and using its buffer. Either way, wait one more period; if nothing comes,
            // only a reset proves the controller is done with the buffer.
            Ok(_) => {
                let slot = &mut self.slots[s as usize];
                slot.aborting = true;
                slot.deadline = Some(now + self.shared.options.io_timeout);
                false
            }
            Err(_) => self.reset_and_recover(),
        }
    }

    fn reset_and_recover(&mut self) -> bool {
        let _ = self.shared.reset(self.generation);
        self.recover();
        true
    }

    pub(super) fn sync_generation(&mut self) {
        let current = self.shared.generation.load(Ordering::Acquire);
        if current != self.generation
            || (self.shared.dead.load(Ordering::Acquire) && self.in_flight > 0)
        {
            self.recover();
        }
    }

    /// After a controller reset: recreate the queues and resubmit every command in flight.
    /// If the controller is dead, fail them all instead.
    fn recover(&mut self) {
        if !self.shared.dead.load(Ordering::Acquire) && !self.broken {
            // Resets happen under the admin lock: reading the generation under it too ties the
            // queues created here to exactly that generation.
            let created = {
                let mut admin = self.shared.lock_admin();
                self.generation = self.shared.generation.load(Ordering::Acquire);
                self.rings.reset();
                if let Some(shadow) = &self.shared.shadow {
                    // A doorbell stored between the reset's clearing and now is stale.
                    shadow.clear_queue(self.rings.qid, self.shared.cap.doorbell_stride());
                }
                admin.create_io_queues(&self.shared.platform, &self.rings)
            };
            if let Err(e) = &created {
                self.rings_in_doubt = crate::admin::may_be_outstanding(e);
            }
            if created.is_ok() {
                for s in 0..self.slots.len() as u16 {
                    let slot = &mut self.slots[s as usize];
                    if !slot.busy {
                        continue;
                    }
                    if slot.attempts >= self.shared.options.retries {
                        self.finish(s, Some(Error::Timeout("an I/O command")));
                    } else {
                        slot.attempts += 1;
                        self.start(s);
                    }
                }
                self.flush();
                return;
            }
            self.broken = true;
        }
        for s in 0..self.slots.len() as u16 {
            if self.slots[s as usize].busy {
                self.finish(s, Some(Error::ControllerDead));
            }
        }
    }
}
