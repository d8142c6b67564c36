//! Blocking conveniences over submit and poll, with bounce buffers.

use std::time::{Duration, Instant};

use super::QueuePair;
use crate::admin::backoff;
use crate::error::{Error, Result};
use crate::platform::{DmaMemory, Platform};
use crate::request::{Completion, Request};

/// The longest sleep on an interrupt between two polls.
const INTERRUPT_WAIT: Duration = Duration::from_millis(10);

impl<P: Platform> QueuePair<P> {
    /// Submits one request and waits for it. Only for a queue pair with nothing else in
    /// flight (use [`QueuePair::submit`] and [`QueuePair::poll`] otherwise).
    pub fn execute(&mut self, req: Request<P::Dma>) -> Result<Completion<P::Dma>> {
        if self.in_flight > 0 || !self.ready.is_empty() {
            return Err(Error::InvalidRequest(
                "execute needs an idle queue pair".into(),
            ));
        }
        self.submit(req).map_err(|rejected| rejected.error)?;
        self.wait_for_one()
    }

    /// Polls until the one request in flight finishes, within a bound that covers its retries,
    /// an abort and a controller reset.
    pub(super) fn wait_for_one(&mut self) -> Result<Completion<P::Dma>> {
        let options = &self.shared.options;
        let bound = (options.io_timeout * 2 + options.admin_timeout * 2)
            * (options.retries as u32 + 2)
            + Duration::from_millis(2 * self.shared.cap.timeout_ms());
        let deadline = Instant::now() + bound;
        let mut spins = 0;
        loop {
            let mut done = None;
            self.poll(|c| done = Some(c));
            if let Some(c) = done {
                return Ok(c);
            }
            if (self.interrupt.is_some() || spins % 256 == 255) && Instant::now() > deadline {
                return Err(Error::Timeout("a request"));
            }
            if self.interrupt.is_some() {
                // The next poll also checks for timed-out commands.
                self.wait_for_completions(INTERRUPT_WAIT)?;
            } else {
                backoff(&mut spins);
            }
        }
    }

    fn run_simple(&mut self, req: Request<P::Dma>) -> Result<()> {
        self.execute(req)?.result
    }

    fn bytes_to_blocks(&self, nsid: u32, len: usize) -> Result<u64> {
        let ns = self
            .namespace(nsid)
            .ok_or_else(|| Error::InvalidRequest(format!("no usable namespace {nsid}")))?;
        if len == 0 || !len.is_multiple_of(ns.block_size()) {
            return Err(Error::InvalidRequest(format!(
                "{len} bytes is not a whole number of {}-byte blocks",
                ns.block_size()
            )));
        }
        Ok((len / ns.block_size()) as u64)
    }

    /// Reads `out.len()` bytes (whole blocks) at `lba` through a bounce buffer.
    pub fn read(&mut self, nsid: u32, lba: u64, out: &mut [u8]) -> Result<()> {
        let blocks = self.bytes_to_blocks(nsid, out.len())?;
        let buffer = self.alloc_buffer(out.len())?;
        let done = self.execute(Request::read(nsid, lba, blocks, buffer))?;
        done.result?;
        if let Some(buffer) = done.buffer {
            buffer.read(0, out);
        }
        Ok(())
    }

    /// Writes `data` (whole blocks) at `lba` through a bounce buffer.
    pub fn write(&mut self, nsid: u32, lba: u64, data: &[u8], fua: bool) -> Result<()> {
        let blocks = self.bytes_to_blocks(nsid, data.len())?;
        let buffer = self.alloc_buffer(data.len())?;
        buffer.write(0, data);
        self.run_simple(Request::write(nsid, lba, blocks, buffer, fua))
    }

    /// Flushes the volatile write cache of namespace `nsid`.
    pub fn flush_cache(&mut self, nsid: u32) -> Result<()> {
        self.run_simple(Request::flush(nsid))
    }

    /// Zeroes `blocks` blocks at `lba`.
    pub fn write_zeroes(&mut self, nsid: u32, lba: u64, blocks: u64) -> Result<()> {
        self.run_simple(Request::write_zeroes(nsid, lba, blocks))
    }

    /// Deallocates `blocks` blocks at `lba`.
    pub fn deallocate(&mut self, nsid: u32, lba: u64, blocks: u64) -> Result<()> {
        self.run_simple(Request::deallocate(nsid, lba, blocks))
    }
}
