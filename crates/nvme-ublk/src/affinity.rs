//! Which CPUs the queue threads run on: the daemon's own.
//!
//! libublk pins each queue thread to the CPUs whose requests go to its queue. A polling thread
//! there spins on the very CPU the submitting program needs to take the completion, and that
//! program, woken while its CPU is busy, moves to another CPU and so to another queue whose thread
//! is asleep. Measured in a two-vCPU guest at 4k random reads, two queues pinned gave 3.5-6x the
//! QD1 latency of the same two queues left to the scheduler when polling (1.4-1.8x on interrupts),
//! and 0.5-0.7x their IOPS at QD32. So once the device has started (after libublk set its
//! affinities), every queue thread gets back the CPU set the daemon was started with: the
//! scheduler places them, and an administrator who gives the daemon cores of its own (`taskset`,
//! systemd's `CPUAffinity=`) has all its threads there.

use std::sync::Mutex;

use anyhow::{Context, Result};
use rustix::thread::{CpuSet, Pid, gettid, sched_getaffinity, sched_setaffinity};

/// The daemon's CPU set and the queue threads that should run on it.
pub struct QueueThreads {
    cpus: CpuSet,
    threads: Mutex<Vec<Pid>>,
}

impl QueueThreads {
    /// Reads the calling thread's CPU set (call it from `main`, before any queue thread starts).
    pub fn new() -> Result<Self> {
        Ok(Self {
            cpus: sched_getaffinity(None).context("reading the daemon's CPU affinity")?,
            threads: Mutex::new(Vec::new()),
        })
    }

    /// Records the calling thread as a queue thread.
    pub fn register(&self) {
        if let Ok(mut threads) = self.threads.lock() {
            threads.push(gettid());
        }
    }

    /// Gives every registered queue thread the daemon's CPU set back (a failure is logged: the
    /// thread keeps the CPUs libublk gave it).
    pub fn restore(&self) {
        let Ok(threads) = self.threads.lock() else {
            return;
        };
        for &tid in threads.iter() {
            if let Err(err) = sched_setaffinity(Some(tid), &self.cpus) {
                let tid = tid.as_raw_nonzero();
                tracing::warn!("queue thread {tid}: setting its CPU affinity: {err}");
            }
        }
    }
}
