//! The admin queue: one synchronous command at a time, every wait bounded.

use std::time::{Duration, Instant};

use crate::command::{Sqe, admin, cns};
use crate::error::{Error, Result};
use crate::platform::{DMA_PAGE_SIZE, DmaMemory, Platform};
use crate::regs;
use crate::ring::Rings;
use crate::status::Status;

/// The admin queue and its command identifier counter.
pub(crate) struct AdminQueue<D> {
    pub(crate) rings: Rings<D>,
    next_cid: u16,
    timeout: Duration,
    /// Memory of commands that may still be outstanding in the controller (a timed-out
    /// Identify's page, the rings of a queue whose creation timed out): kept until the
    /// controller is next disabled or stopped, never freed while it might still write it.
    parked: Vec<D>,
}

/// Whether a command that failed this way may still be running in the controller, so that
/// the memory it points at must not be freed yet.
pub(crate) fn may_be_outstanding(error: &Error) -> bool {
    matches!(
        error,
        Error::Timeout(_) | Error::ControllerDead | Error::ControllerFatal
    )
}

/// Checks CSTS for a device that vanished (all-ones) or reported a fatal error.
pub(crate) fn check_alive<P: Platform>(platform: &P) -> Result<()> {
    let csts = platform.read32(regs::CSTS);
    if csts == u32::MAX {
        return Err(Error::ControllerDead);
    }
    if csts & regs::CSTS_CFS != 0 {
        return Err(Error::ControllerFatal);
    }
    Ok(())
}

/// Pauses a polling loop: spins first, then yields the CPU.
pub(crate) fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 1024 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(50));
    }
}

impl<D: DmaMemory> AdminQueue<D> {
    pub(crate) fn new(rings: Rings<D>, timeout: Duration) -> AdminQueue<D> {
        AdminQueue {
            rings,
            next_cid: 0,
            timeout,
            parked: Vec::new(),
        }
    }

    /// Keeps `mem` until the controller is known to have stopped ([`AdminQueue::release_parked`]).
    pub(crate) fn park(&mut self, mem: impl IntoIterator<Item = D>) {
        self.parked.extend(mem);
    }

    /// Frees parked memory: only once the controller was disabled or its DMA stopped.
    pub(crate) fn release_parked(&mut self) {
        self.parked.clear();
    }

    /// Bytes of memory parked so far.
    pub(crate) fn parked_bytes(&self) -> usize {
        self.parked.iter().map(|m| m.len()).sum()
    }

    /// Gives up the admin rings and everything parked for good: for a controller that may
    /// still be running and cannot be stopped. Returns how many bytes were leaked.
    pub(crate) fn leak(&mut self) -> usize {
        let mut bytes = self.parked_bytes();
        for mem in self.rings.take_memory() {
            bytes += mem.len();
            std::mem::forget(mem);
        }
        std::mem::forget(std::mem::take(&mut self.parked));
        bytes
    }

    /// Submits `sqe` and waits for its completion; returns completion dword 0.
    pub(crate) fn run<P: Platform<Dma = D>>(&mut self, platform: &P, mut sqe: Sqe) -> Result<u32> {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1);
        sqe.set_cid(cid);
        if self.rings.sq_space() == 0 {
            return Err(Error::QueueFull);
        }
        self.rings.push(&sqe);
        self.rings.ring_sq(platform, None);
        let deadline = Instant::now() + self.timeout;
        let mut spins = 0;
        loop {
            while let Some(cqe) = self.rings.next_cqe() {
                self.rings.ring_cq(platform, None);
                if cqe.cid != cid {
                    // A late completion of an earlier command that already timed out.
                    continue;
                }
                return match Status::from_field(cqe.status) {
                    None => Ok(cqe.dw0),
                    Some(status) => Err(Error::Command {
                        opcode: sqe.opcode(),
                        status,
                    }),
                };
            }
            if spins % 256 == 255 {
                check_alive(platform)?;
                if Instant::now() > deadline {
                    return Err(Error::Timeout("an admin command"));
                }
            }
            backoff(&mut spins);
        }
    }

    /// Runs a command that transfers one 4 KiB page from the controller.
    pub(crate) fn read_page<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        mut sqe: Sqe,
    ) -> Result<[u8; DMA_PAGE_SIZE]> {
        let page = platform.alloc_dma(DMA_PAGE_SIZE)?;
        sqe.set_prps(page.bus_addr(0), 0);
        if let Err(e) = self.run(platform, sqe) {
            if may_be_outstanding(&e) {
                // The controller may still write the page: not freed until it is stopped.
                self.park([page]);
            }
            return Err(e);
        }
        let mut out = [0u8; DMA_PAGE_SIZE];
        page.read(0, &mut out);
        Ok(out)
    }

    /// Identify with the given CNS and namespace.
    pub(crate) fn identify<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        cns: u32,
        nsid: u32,
    ) -> Result<[u8; DMA_PAGE_SIZE]> {
        let mut sqe = Sqe::new(admin::IDENTIFY, nsid);
        sqe.set_cdw(10, cns);
        self.read_page(platform, sqe)
    }

    /// Get Log Page `lid` for `nsid`: `len` bytes (1 to 4096, a multiple of 4).
    pub(crate) fn get_log_page<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        lid: u8,
        nsid: u32,
        len: usize,
    ) -> Result<Vec<u8>> {
        if len == 0 || len > DMA_PAGE_SIZE || !len.is_multiple_of(4) {
            return Err(Error::InvalidRequest(format!(
                "a log page read is 4 to 4096 bytes, a multiple of 4 (not {len})"
            )));
        }
        let numd = (len / 4 - 1) as u32;
        let mut sqe = Sqe::new(admin::GET_LOG_PAGE, nsid);
        sqe.set_cdw(10, (numd & 0xffff) << 16 | lid as u32);
        let page = self.read_page(platform, sqe)?;
        Ok(page[..len].to_vec())
    }

    /// Get Features `fid` (`select` 0 = current, 1 = default, 2 = saved, 3 = capabilities);
    /// returns completion dword 0.
    pub(crate) fn get_features<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        fid: u8,
        select: u8,
        nsid: u32,
        cdw11: u32,
    ) -> Result<u32> {
        let mut sqe = Sqe::new(admin::GET_FEATURES, nsid);
        sqe.set_cdw(10, ((select & 0x7) as u32) << 8 | fid as u32);
        sqe.set_cdw(11, cdw11);
        self.run(platform, sqe)
    }

    /// Set Features `fid` to `value` (dword 11), saved across resets if `save`.
    pub(crate) fn set_features<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        fid: u8,
        nsid: u32,
        value: u32,
        save: bool,
    ) -> Result<u32> {
        let mut sqe = Sqe::new(admin::SET_FEATURES, nsid);
        sqe.set_cdw(10, (save as u32) << 31 | fid as u32);
        sqe.set_cdw(11, value);
        self.run(platform, sqe)
    }

    /// Runs `sqe` with one page of data: written to the controller from `data` if `to_device`,
    /// else read back (the first `len` bytes). Returns completion dword 0 and the data read.
    pub(crate) fn run_with_page<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        mut sqe: Sqe,
        data: &[u8],
        to_device: bool,
        len: usize,
    ) -> Result<(u32, Vec<u8>)> {
        let page = platform.alloc_dma(DMA_PAGE_SIZE)?;
        if to_device {
            page.write(0, &data[..len.min(data.len())]);
        }
        sqe.set_prps(page.bus_addr(0), 0);
        match self.run(platform, sqe) {
            Ok(dw0) => {
                let mut out = vec![0; if to_device { 0 } else { len }];
                page.read(0, &mut out);
                Ok((dw0, out))
            }
            Err(e) => {
                if may_be_outstanding(&e) {
                    self.park([page]);
                }
                Err(e)
            }
        }
    }

    /// Format NVM of `nsid` to LBA format `lbaf` with secure erase setting `ses`.
    pub(crate) fn format_nvm<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        nsid: u32,
        lbaf: u8,
        ses: u8,
    ) -> Result<()> {
        let lbaf = u32::from(lbaf);
        let mut sqe = Sqe::new(admin::FORMAT_NVM, nsid);
        sqe.set_cdw(
            10,
            (lbaf & 0xf) | (u32::from(ses) & 0x7) << 9 | (lbaf >> 4 & 0x3) << 12,
        );
        self.run(platform, sqe).map(drop)
    }

    /// The active namespace IDs, in order.
    pub(crate) fn active_namespaces<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
    ) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = self.identify(platform, cns::ACTIVE_NAMESPACES, after)?;
            let before = ids.len();
            for chunk in page.chunks_exact(4) {
                let id = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                if id == 0 || id <= after {
                    break;
                }
                ids.push(id);
                after = id;
            }
            if ids.len() - before < 1024 {
                return Ok(ids);
            }
        }
    }

    /// Set Features Number of Queues; returns how many I/O queue pairs were granted.
    pub(crate) fn set_queue_count<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        wanted: u16,
    ) -> Result<u16> {
        let n = (wanted.clamp(1, u16::MAX - 1) - 1) as u32;
        let mut sqe = Sqe::new(admin::SET_FEATURES, 0);
        sqe.set_cdw(10, crate::command::FEATURE_NUMBER_OF_QUEUES);
        sqe.set_cdw(11, n << 16 | n);
        let dw0 = self.run(platform, sqe)?;
        let sqs = (dw0 & 0xffff) as u16 + 1;
        let cqs = (dw0 >> 16) as u16 + 1;
        Ok(wanted.min(sqs).min(cqs))
    }

    /// Creates I/O completion queue and then submission queue `rings.qid`. If the error says a
    /// creation may still be outstanding ([`may_be_outstanding`]), the caller must not free the
    /// rings before the controller is stopped: it could yet create the queue over them.
    pub(crate) fn create_io_queues<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        rings: &Rings<D>,
    ) -> Result<()> {
        self.try_create_io_queues(platform, rings)
    }

    fn try_create_io_queues<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        rings: &Rings<D>,
    ) -> Result<()> {
        let size = (rings.entries as u32 - 1) << 16 | rings.qid as u32;
        let mut cq = Sqe::new(admin::CREATE_CQ, 0);
        cq.set_prps(rings.cq_addr(), 0);
        cq.set_cdw(10, size);
        // Physically contiguous; interrupts enabled (IEN) on vector IV when asked for.
        cq.set_cdw(
            11,
            match rings.vector {
                Some(iv) => u32::from(iv) << 16 | 1 << 1 | 1,
                None => 1,
            },
        );
        self.run(platform, cq)?;
        let mut sq = Sqe::new(admin::CREATE_SQ, 0);
        sq.set_prps(rings.sq_addr(), 0);
        sq.set_cdw(10, size);
        sq.set_cdw(11, (rings.qid as u32) << 16 | 1);
        if let Err(e) = self.run(platform, sq) {
            let _ = self.delete_queue(platform, admin::DELETE_CQ, rings.qid);
            return Err(e);
        }
        Ok(())
    }

    /// Deletes one I/O queue (`DELETE_SQ` or `DELETE_CQ`).
    pub(crate) fn delete_queue<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        opcode: u8,
        qid: u16,
    ) -> Result<()> {
        let mut sqe = Sqe::new(opcode, 0);
        sqe.set_cdw(10, qid as u32);
        self.run(platform, sqe).map(drop)
    }

    /// Abort command `cid` of submission queue `sqid`; `true` if the controller aborted it.
    pub(crate) fn abort<P: Platform<Dma = D>>(
        &mut self,
        platform: &P,
        sqid: u16,
        cid: u16,
    ) -> Result<bool> {
        let mut sqe = Sqe::new(admin::ABORT, 0);
        sqe.set_cdw(10, (cid as u32) << 16 | sqid as u32);
        Ok(self.run(platform, sqe)? & 1 == 0)
    }
}
