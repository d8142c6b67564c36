//! One ublk queue served by one driver queue pair on one thread.
//!
//! The thread alternates between the ublk command ring (new requests from the block layer) and the
//! NVMe completion queue. Each ublk tag owns one DMA buffer for its whole life, so a request needs
//! no allocation, and the kernel is given that buffer as the tag's I/O buffer: it copies a write's
//! data straight into it before handing us the request, and a read's out of it when we complete
//! the request, so data crosses one copy (the kernel's) between the block layer and the controller.
//! (libublk's own buffers serve only each tag's first request, fetched before the queue could name
//! another address; a write arriving there is copied across once.)
//!
//! Waiting: with polling, while commands are in flight the thread polls both rings, and naps
//! only when the controller holds more work than spinning can speed up (see [`crate::nap`]).
//! With interrupts, it sleeps in `io_uring_enter` on the ublk ring, in which it keeps a
//! poll of the queue's interrupt eventfd (and a one-second timer, so that a lost completion is
//! still timed out by the driver) armed while commands are in flight: a request from the kernel
//! or an NVMe completion wakes it. Either way, once the controller has nothing in flight the
//! thread sleeps until the kernel sends a request (when polling, only after `--poll-linger-us`
//! without one, so back-to-back requests at queue depth 1 are taken without a wake-up), so an
//! idle device costs no CPU.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libublk::helpers::IoBuf;
use libublk::io::{BufDesc, BufDescList, UblkDev, UblkQueue};
use libublk::{UblkError, UblkIORes, UblkUringData, sys};
use nvme::hw_platform::{HwDma, HwPlatform};
use nvme::{Completion, QueuePair, Request};

use crate::geometry::Geometry;
use crate::nap::Pacer;
use crate::supervisor::Failure;

/// `user_data` of the poll on the queue's interrupt eventfd (target I/O as libublk counts it,
/// so it is never taken for a ublk command).
const INTERRUPT: u64 = UblkUringData::Target as u64 | 1;
/// `user_data` of the timer that wakes an interrupt-driven queue while commands are in flight.
const TICK: u64 = UblkUringData::Target as u64 | 2;
/// How often a queue waiting on interrupts wakes anyway while commands are in flight, so the
/// driver can time out a command whose completion was lost.
const TICK_SECS: u64 = 1;
/// `user_data` of the timer that ends a polling queue's nap.
const NAP: u64 = UblkUringData::Target as u64 | 3;

/// A queue thread's driver queue pair and one DMA buffer per ublk tag, made before the ublk device
/// starts: starting it waits for every queue to fetch its requests, so a queue thread that failed
/// to get its memory would leave the daemon stuck instead of failing with the reason.
pub struct QueueParts {
    qp: QueuePair<HwPlatform>,
    tags: Vec<TagBuffer>,
}

impl QueueParts {
    /// `qp` with `depth` tag buffers of `buf_bytes` each (the ublk device's depth and largest request).
    pub fn new(qp: QueuePair<HwPlatform>, depth: usize, buf_bytes: usize) -> Result<Self> {
        let tags = (0..depth)
            .map(|_| {
                qp.alloc_buffer(buf_bytes).map(|dma| TagBuffer {
                    dma: Some(dma),
                    kernel_has_dma: false,
                })
            })
            .collect::<nvme::Result<Vec<TagBuffer>>>()
            .context("allocating DMA buffers")?;
        Ok(Self { qp, tags })
    }
}

/// Serves queue `qid` until the device is stopped, then waits for what the controller still has.
/// A failure of the ublk ring ends it too, after the same wait.
///
/// `linger`: when polling, how long the thread keeps polling the ublk ring once nothing is in
/// flight, before it sleeps (a request arriving meanwhile is taken without a wake-up). `pacer`:
/// when polling, when the thread naps while commands are in flight.
pub fn serve(
    qid: u16,
    dev: &UblkDev,
    parts: QueueParts,
    geometry: Geometry,
    linger: Duration,
    mut pacer: Pacer,
) -> Result<(), Failure> {
    let QueueParts { mut qp, mut tags } = parts;
    let bufs = dev.alloc_queue_io_bufs();
    let queue = UblkQueue::new(qid, dev)
        .and_then(|q| q.submit_fetch_commands_unified(BufDescList::Slices(Some(&bufs))))
        .map_err(|e| Failure::Setup(anyhow::anyhow!("setting up ublk queue {qid}: {e}")))?;
    // Requests the queue pair had no room for, retried after the next completions.
    let mut waiting: VecDeque<Request<HwDma>> = VecDeque::new();
    // The interrupt's fd and the timer's interval outlive every operation that names them.
    let interrupt = qp.interrupt().map(|irq| irq.as_fd().as_raw_fd());
    let tick = io_uring::types::Timespec::new().sec(TICK_SECS);
    let (mut interrupt_armed, mut tick_armed) = (false, false);
    // The nap's length, read by the kernel when the ring submits the timer.
    let mut nap_length: io_uring::types::Timespec;
    let mut nap_armed = false;
    // Whether the last pass found nothing to do (no request, completion or interrupt).
    let mut fruitless = false;
    // When the queue last became idle (the clock is read once per busy period, not per poll).
    let mut idle_since: Option<Instant> = None;
    let mut failure = None;
    loop {
        let busy = qp.in_flight() > 0 || !waiting.is_empty();
        if busy {
            idle_since = None;
        } else if idle_since.is_none() {
            idle_since = Some(Instant::now());
            pacer.idle();
        }
        // Polling, and idle for less than `linger`: keep polling.
        let lingering = interrupt.is_none()
            && !linger.is_zero()
            && idle_since.is_some_and(|at| at.elapsed() < linger);
        if let (Some(fd), true) = (interrupt, busy) {
            if !interrupt_armed {
                let sqe =
                    io_uring::opcode::PollAdd::new(io_uring::types::Fd(fd), libc::POLLIN as u32)
                        .build()
                        .user_data(INTERRUPT);
                interrupt_armed = arm(&queue, sqe, qid);
            }
            if !tick_armed {
                let sqe = io_uring::opcode::Timeout::new(&tick)
                    .build()
                    .user_data(TICK);
                tick_armed = arm(&queue, sqe, qid);
            }
        }
        // Polling with commands in flight, after a pass that found nothing: nap if the controller
        // holds enough work (the timer's end, or a request, wakes the thread).
        let napping = interrupt.is_none()
            && fruitless
            && match pacer.nap(qp.in_flight()) {
                Some(_) if nap_armed => true,
                Some(length) => {
                    nap_length = length.into();
                    let sqe = io_uring::opcode::Timeout::new(&nap_length)
                        .build()
                        .user_data(NAP);
                    nap_armed = arm(&queue, sqe, qid);
                    nap_armed
                }
                None => false,
            };
        let mut arrived = Vec::new();
        let mut fired = false;
        let polled = queue.flush_and_wake_io_tasks(
            |user_data, cqe, _| match user_data {
                INTERRUPT => {
                    interrupt_armed = false;
                    fired = true;
                }
                TICK => tick_armed = false,
                NAP => nap_armed = false,
                _ if user_data & UblkUringData::Target as u64 != 0 => {}
                _ => {
                    if cqe.result() == sys::UBLK_IO_RES_OK as i32 {
                        arrived.push(libublk::io::UblkIOCtx::user_data_to_tag(user_data) as u16);
                    }
                }
            },
            // Spin only when polling with commands in flight or lingering, and not napping;
            // sleep otherwise.
            if (busy || lingering) && interrupt.is_none() && !napping {
                0
            } else {
                1
            },
        );
        match polled {
            Ok(_) => {}
            Err(UblkError::QueueIsDown) => break,
            Err(UblkError::IOError(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                failure = Some(Failure::Serving(anyhow::anyhow!("ublk ring: {e}")));
                break;
            }
        }
        if fired {
            // Cleared before the completion queue is read: a completion posted after that
            // read fires the vector again.
            if let Some(irq) = qp.interrupt() {
                irq.clear();
            }
        }
        fruitless = arrived.is_empty() && !fired;
        for tag in arrived {
            match request(&queue, tag, &geometry, &bufs, &mut tags) {
                Ok(Some(req)) => waiting.push_back(req),
                Ok(None) => complete(&queue, tag, &bufs, &mut tags, 0),
                Err(errno) => complete(&queue, tag, &bufs, &mut tags, -errno),
            }
        }
        let reaped = qp.poll(|done| finish(&queue, &bufs, &mut tags, done));
        if reaped > 0 {
            fruitless = false;
            if pacer.enabled() {
                pacer.reaped(reaped, Instant::now());
            }
        }
        while let Some(req) = waiting.pop_front() {
            match qp.submit(req) {
                Ok(()) => {}
                Err(rejected) if matches!(rejected.error, nvme::Error::QueueFull) => {
                    waiting.push_front(rejected.request);
                    break;
                }
                Err(rejected) => {
                    tracing::warn!("refused: {}", rejected.error);
                    let failed = Completion {
                        tag: rejected.request.tag,
                        result: Err(rejected.error),
                        buffer: rejected.request.buffer,
                    };
                    finish(&queue, &bufs, &mut tags, failed);
                }
            }
        }
        // One doorbell for everything submitted in this round, before the thread may sleep.
        qp.flush();
    }
    // The device is down; what the controller still holds completes before its buffers go.
    while qp.in_flight() > 0 {
        qp.poll(|done| finish(&queue, &bufs, &mut tags, done));
    }
    // The ring goes before the buffers whose addresses it gave the kernel (as libublk's own
    // buffers outlive the queue): the kernel copies only for commands on this thread's ring.
    drop(queue);
    drop(tags);
    failure.map_or(Ok(()), Err)
}

/// One ublk tag's DMA buffer, and which buffer the kernel copies the tag's next request to or from.
struct TagBuffer {
    /// `None` while the controller holds it (for good if the controller died with it).
    dma: Option<HwDma>,
    /// Whether the address the kernel holds for the tag is `dma`'s (else libublk's buffer's).
    kernel_has_dma: bool,
}

/// Queues `sqe` on the ublk ring (submitted by the next wait); whether it was queued.
fn arm(queue: &UblkQueue, sqe: io_uring::squeue::Entry, qid: u16) -> bool {
    match queue.ublk_submit_sqe_sync(sqe) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("queue {qid}: arming a wait: {e}");
            false
        }
    }
}

/// The NVMe request for ublk request `tag` (`None`: nothing to do), or the errno it fails with.
fn request(
    queue: &UblkQueue,
    tag: u16,
    geometry: &Geometry,
    bufs: &[IoBuf<u8>],
    tags: &mut [TagBuffer],
) -> Result<Option<Request<HwDma>>, i32> {
    let iod = queue.get_iod(tag);
    let op = iod.op_flags & 0xff;
    let shift = geometry.block_shift - 9;
    let lba = iod.start_sector >> shift;
    let blocks = u64::from(iod.nr_sectors) >> shift;
    let bytes = (iod.nr_sectors as usize) << 9;
    let nsid = geometry.nsid;
    if op == sys::UBLK_IO_OP_FLUSH {
        // A flush names no blocks (its start sector may be anything).
        return Ok(Some(Request::flush(nsid).with_tag(u64::from(tag))));
    }
    let unaligned = (iod.start_sector | u64::from(iod.nr_sectors)) & ((1 << shift) - 1) != 0;
    if unaligned
        || lba
            .checked_add(blocks)
            .is_none_or(|end| end > geometry.blocks)
    {
        return Err(libc::EINVAL);
    }
    if blocks == 0 {
        return Ok(None);
    }
    let req = match op {
        sys::UBLK_IO_OP_READ | sys::UBLK_IO_OP_WRITE => {
            let slot = &mut tags[tag as usize];
            let buffer = slot.dma.take().ok_or(libc::EIO)?;
            if bytes > buffer.len() {
                slot.dma = Some(buffer);
                return Err(libc::EINVAL);
            }
            if op == sys::UBLK_IO_OP_READ {
                Request::read(nsid, lba, blocks, buffer)
            } else {
                // The kernel copied the data into whichever buffer it held for the tag.
                if !slot.kernel_has_dma && buffer.write(0, &bufs[tag as usize][..bytes]).is_err() {
                    slot.dma = Some(buffer);
                    return Err(libc::EIO);
                }
                let fua = iod.op_flags & sys::UBLK_IO_F_FUA != 0;
                Request::write(nsid, lba, blocks, buffer, fua)
            }
        }
        sys::UBLK_IO_OP_DISCARD if geometry.discard => Request::deallocate(nsid, lba, blocks),
        sys::UBLK_IO_OP_WRITE_ZEROES if geometry.write_zeroes => {
            Request::write_zeroes(nsid, lba, blocks)
        }
        _ => return Err(libc::EOPNOTSUPP),
    };
    Ok(Some(req.with_tag(u64::from(tag))))
}

/// Hands a finished NVMe request back to the block layer.
fn finish(queue: &UblkQueue, bufs: &[IoBuf<u8>], tags: &mut [TagBuffer], done: Completion<HwDma>) {
    let tag = done.tag as u16;
    let iod = queue.get_iod(tag);
    let bytes = (iod.nr_sectors as usize) << 9;
    let is_read = iod.op_flags & 0xff == sys::UBLK_IO_OP_READ;
    let is_rw = is_read || iod.op_flags & 0xff == sys::UBLK_IO_OP_WRITE;
    let mut result = match &done.result {
        Ok(()) if is_rw => bytes as i32,
        Ok(()) => 0,
        Err(err) => {
            tracing::warn!("tag {tag}: {err}");
            -libc::EIO
        }
    };
    if let Some(buffer) = done.buffer {
        tags[tag as usize].dma = Some(buffer);
    }
    if is_read && result > 0 && tags[tag as usize].dma.is_none() {
        // The data is in no buffer the kernel could be pointed at.
        result = -libc::EIO;
    }
    complete(queue, tag, bufs, tags, result);
}

/// Completes ublk request `tag` with `result` and fetches the tag's next request into the tag's DMA
/// buffer (libublk's buffer if the DMA buffer was lost). For a read, the kernel copies the data out
/// of that buffer when the ring submits the completion, before the tag can carry a new request.
fn complete(queue: &UblkQueue, tag: u16, bufs: &[IoBuf<u8>], tags: &mut [TagBuffer], result: i32) {
    let slot = &mut tags[tag as usize];
    slot.kernel_has_dma = slot.dma.is_some();
    let buf = match &slot.dma {
        // The buffer stays in `tags` until the queue is dropped, and the tag's next request
        // takes it from there only after the kernel has copied into it.
        Some(dma) => BufDesc::RawAddress(dma.process_address() as *const u8),
        None => BufDesc::Slice(bufs[tag as usize].as_slice()),
    };
    if let Err(err) = queue.complete_io_cmd_unified(tag, buf, Ok(UblkIORes::Result(result))) {
        tracing::warn!("tag {tag}: completing the ublk request: {err}");
    }
}
