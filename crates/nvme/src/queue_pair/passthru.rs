//! Raw I/O commands for tools (`nvme-tool io-passthru`): one command on an idle queue pair, its
//! data through a bounce buffer, its completion dword 0 handed back.

use super::QueuePair;
use crate::command::Sqe;
use crate::error::{Error, Result};
use crate::platform::{DMA_PAGE_SIZE, DmaMemory, Platform};
use crate::prp::{self, ListSpace};

/// A raw I/O command for [`QueuePair::io_passthru`]: the driver fills in the command identifier
/// and the data pointer; everything else is the caller's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoPassthru {
    /// Opcode.
    pub opcode: u8,
    /// Namespace ID.
    pub nsid: u32,
    /// Command dwords 10 to 15.
    pub cdw: [u32; 6],
    /// Bytes of data (0 up to [`QueuePair::max_transfer`]).
    pub data_len: usize,
    /// Whether the data goes to the controller (else it comes from it).
    pub to_device: bool,
}

impl<P: Platform> QueuePair<P> {
    /// Sends one raw I/O command and waits for it; returns completion dword 0 and the data read.
    /// Only on a queue pair with nothing else in flight. A failed command is an
    /// [`Error::Command`] with its status; retryable statuses are retried like any I/O.
    pub fn io_passthru(&mut self, cmd: &IoPassthru, data: &[u8]) -> Result<(u32, Vec<u8>)> {
        if self.in_flight > 0 || !self.ready.is_empty() {
            return Err(Error::InvalidRequest(
                "io_passthru needs an idle queue pair".into(),
            ));
        }
        if cmd.data_len > self.max_transfer() || (cmd.to_device && data.len() < cmd.data_len) {
            return Err(Error::InvalidRequest(format!(
                "passthrough data is at most {} bytes (the controller's transfer limit), and all of \
                 it given when writing ({} of {})",
                self.max_transfer(),
                data.len(),
                cmd.data_len
            )));
        }
        self.sync_generation();
        if self.broken || self.shared.dead.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::ControllerDead);
        }
        let buffer = match cmd.data_len {
            0 => None,
            len => {
                let buffer = self.alloc_buffer(len)?;
                if cmd.to_device {
                    buffer.write(0, &data[..len]);
                }
                Some(buffer)
            }
        };
        let (Some(r), Some(s)) = (self.free_requests.pop(), self.free_slots.pop()) else {
            return Err(Error::QueueFull);
        };
        let mut sqe = Sqe::new(cmd.opcode, cmd.nsid);
        for (i, value) in cmd.cdw.iter().enumerate() {
            sqe.set_cdw(10 + i, *value);
        }
        if let Some(buffer) = &buffer {
            let list = ListSpace {
                mem: &*self.lists,
                offset: s as usize * self.list_pages * DMA_PAGE_SIZE,
                pages: self.list_pages,
            };
            match prp::build(buffer, 0, cmd.data_len, &list) {
                Ok((prp1, prp2)) => sqe.set_prps(prp1, prp2),
                Err(e) => {
                    self.free_slots.push(s);
                    self.free_requests.push(r);
                    return Err(e);
                }
            }
        }
        let state = &mut self.requests[r as usize];
        state.tag = 0;
        state.buffer = buffer;
        state.pending = 1;
        state.error = None;
        state.dw0 = 0;
        let slot = &mut self.slots[s as usize];
        slot.sqe = sqe;
        slot.request = r;
        slot.attempts = 0;
        self.in_flight += 1;
        self.start(s);
        let done = self.wait_for_one()?;
        done.result?;
        let dw0 = self.requests[r as usize].dw0;
        let mut read = vec![0; if cmd.to_device { 0 } else { cmd.data_len }];
        if let Some(buffer) = done.buffer.filter(|_| !read.is_empty()) {
            buffer.read(0, &mut read);
        }
        Ok((dw0, read))
    }
}
