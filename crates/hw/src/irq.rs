//! An interrupt vector as an eventfd: the kernel (VFIO's MSI-X handler) or a device model adds
//! to its counter when the vector fires, and the driver sleeps in `poll` until it does, so
//! waiting for a completion costs no CPU.
//!
//! Reading the counter clears it. A waiter clears it *before* looking at its completion queue:
//! a completion posted after that look fires the vector again, so none is slept through.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd, poll};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// One interrupt vector, signalled through an eventfd (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct Interrupt {
    fd: OwnedFd,
}

impl Interrupt {
    /// A fresh vector that has not fired.
    pub fn new() -> Result<Interrupt> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::io("eventfd", std::io::Error::from(e)))?;
        Ok(Interrupt { fd })
    }

    /// Fires the vector (what the kernel does for a real device; used by device models).
    pub fn fire(&self) {
        // The counter saturates long before 2^64 - 1 signals: EAGAIN then means "already
        // pending", which is all a waiter needs.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Clears the vector; how many times it fired since the last clear (0: not at all).
    pub fn clear(&self) -> u64 {
        let mut count = [0u8; 8];
        match rustix::io::read(&self.fd, &mut count) {
            Ok(8) => u64::from_ne_bytes(count),
            _ => 0,
        }
    }

    /// Sleeps until the vector fires or `timeout` passes (`None`: no limit). Returns whether it
    /// fired; the vector is left set, so a [`Interrupt::clear`] follows before the queue is read.
    pub fn wait(&self, timeout: Option<Duration>) -> std::io::Result<bool> {
        let timeout = timeout.map(|t| Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(n) => Ok(n > 0),
            Err(Errno::INTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for Interrupt {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_wakes_its_waiter_once_per_clear() {
        let irq = Interrupt::new().unwrap();
        assert!(!irq.wait(Some(Duration::from_millis(1))).unwrap());
        assert_eq!(irq.clear(), 0);
        irq.fire();
        irq.fire();
        assert!(irq.wait(Some(Duration::ZERO)).unwrap());
        assert!(irq.wait(None).unwrap(), "still set until cleared");
        assert_eq!(irq.clear(), 2);
        assert!(!irq.wait(Some(Duration::from_millis(1))).unwrap());
        let fired = std::sync::Arc::new(irq);
        let other = fired.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            other.fire();
        });
        assert!(fired.wait(Some(Duration::from_secs(10))).unwrap());
        t.join().unwrap();
    }
}
