// SPDX-License-Identifier: GPL-2.0

//! `rnvme`: a PCI NVMe driver on Linux 7.2's Rust abstractions (PCI, DMA coherent memory, IRQ,
//! blk-mq), binding NVMe controllers by PCI class. See `README.md` for the architecture.

use kernel::{
    device::{Bound, Core},
    dma::Device as _,
    dma::{Coherent, DmaMask},
    dma_read, dma_write,
    io::Io,
    new_mutex, pci,
    prelude::*,
    str::{BStr, CString},
    sync::{
        Arc, ArcBorrow, Mutex,
        aref::ARef,
        atomic::{Atomic, Full, Relaxed},
    },
    time::{Delta, delay::fsleep},
};

mod blk;
// The user-space `nvme` crate's command module, compiled here from the same file (a symbolic link
// to `crates/nvme/src/command.rs`): only `core`, no allocation. Its public items are that crate's
// API, so here they are unused or unreachable, and clippy's exemption for exported names
// (`to_bytes(&self)`) does not apply; its casts predate the kernel's lint set.
#[allow(
    dead_code,
    unreachable_pub,
    clippy::cast_lossless,
    clippy::wrong_self_convention
)]
mod nvme_command;
mod nvme_spec;
// The user-space crate's status module, the same way (`crates/nvme/src/status.rs`).
#[allow(dead_code, unreachable_pub, clippy::cast_lossless)]
mod nvme_status;
mod queue;
mod recovery;

use blk::{BlkQueue, Disk, DmaMaps, EndBatch, InFlight, Limits};
use nvme_spec::{
    Cap, Command, IdController, IdNamespace, PAGE, PRPS_PER_PAGE, Prp2, blk_status, build_prps, reg,
};
use queue::{Bar0, Completion, Queue, ShadowDoorbells};
use recovery::Watchdog;

/// Admin queue entries.
const ADMIN_ENTRIES: u16 = 32;
/// I/O queue entries (fewer if CAP.MQES says so); blk-mq gets one tag less, so a queue never fills.
const IO_ENTRIES: u16 = 128;
/// I/O completion queue entries (fewer if CAP.MQES says so): more than the submission queue's, so
/// the head can be written lazily (see `Queue::new`). The C driver's queues have 1024 entries.
const IO_CQ_ENTRIES: u16 = 1024;
/// How long an admin command may take.
const ADMIN_TIMEOUT_MS: u32 = 10_000;
/// How long a normal shutdown may take when Identify gives no RTD3E.
const SHUTDOWN_TIMEOUT_MS: u32 = 5_000;
/// I/O queues at most (one per online CPU up to this; more CPUs share them through blk-mq's map).
/// QEMU's controller grants 64 by default.
const MAX_IO_QUEUES: u32 = 64;
/// Largest transfer, whatever MDTS allows: one PRP list page (with the first page's offset).
const MAX_TRANSFER: u64 = (PRPS_PER_PAGE as u64 - 1) * PAGE;

/// Disk instance numbers (`rnvme<N>n<nsid>`).
static INSTANCES: Atomic<u32> = Atomic::new(0);
/// I/O commands issued since the module was loaded (for `lose_command`).
static ISSUED: Atomic<u32> = Atomic::new(0);
/// Set by `lose_command` when its command comes: from then until a controller reset, no I/O
/// command reaches the controller (as if it had stopped fetching commands).
pub(crate) static STALLED: Atomic<u32> = Atomic::new(0);

/// An I/O queue pair and what its requests in flight hold: DMA mappings, PRP list pages and the
/// requests themselves, by tag.
struct IoQueue {
    queue: Arc<Queue>,
    in_flight: InFlight<NvmeDisk>,
    /// Per tag, its command as the completion, the watchdog and a reset need it: an [`Issued`],
    /// 0 when the tag is idle. One word, so the I/O path writes it once and takes it back once
    /// (each an atomic operation, which 7.2's atomics make a call into C).
    issued: KVec<Atomic<u64>>,
    dma: DmaMaps,
    /// One PRP list page per tag.
    prp_lists: Coherent<[u64]>,
    dev: ARef<kernel::device::Device>,
    /// The watchdog's tick count for this queue (never 0).
    tick: Atomic<u32>,
    /// Interrupt number, and the controller's vector index for the completion queue.
    irq: u32,
    vector: u16,
}

/// What a tag's command holds while it is out: the watchdog tick it was submitted at (never 0), and
/// how many of its data's DMA ranges the completion must unmap (what [`DmaMaps::unmap`] takes; 0
/// for none, also when the DMA API says no unmapping is needed), and the direction.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Issued {
    pub(crate) tick: u32,
    to_unmap: u32,
    write: bool,
}

impl Issued {
    const WRITE: u64 = 1 << 31;

    fn to_word(self) -> u64 {
        (u64::from(self.tick) << 32)
            | u64::from(self.to_unmap)
            | if self.write { Self::WRITE } else { 0 }
    }

    /// `None` for an idle tag's 0.
    pub(crate) fn from_word(word: u64) -> Option<Issued> {
        (word != 0).then_some(Issued {
            tick: (word >> 32) as u32,
            to_unmap: word as u32 & !(Self::WRITE as u32),
            write: word & Self::WRITE != 0,
        })
    }
}

impl IoQueue {
    fn new(
        dev: &kernel::device::Device<Bound>,
        queue: Arc<Queue>,
        tags: usize,
        max_segments: usize,
        (irq, vector): (u32, u16),
    ) -> Result<Arc<IoQueue>> {
        let mut issued = KVec::with_capacity(tags, GFP_KERNEL)?;
        for _ in 0..tags {
            issued.push(Atomic::new(0), GFP_KERNEL)?;
        }
        Ok(Arc::new(
            IoQueue {
                queue,
                in_flight: InFlight::new(tags)?,
                issued,
                dma: DmaMaps::new(tags, max_segments)?,
                prp_lists: Coherent::<u64>::zeroed_slice(dev, tags * PRPS_PER_PAGE, GFP_KERNEL)?,
                dev: dev.into(),
                tick: Atomic::new(1),
                irq,
                vector,
            },
            GFP_KERNEL,
        )?)
    }

    /// Marks `tag` idle and unmaps what its command had mapped.
    fn retire(&self, tag: u16) {
        let i = usize::from(tag);
        if let Some(issued) = Issued::from_word(self.issued[i].xchg(0, Full)) {
            if issued.to_unmap != 0 {
                self.dma.unmap(i, &self.dev, issued.to_unmap, issued.write);
            }
        }
    }

    /// Ends the request `c` completes: with `batch` if it succeeded, at once if not.
    fn complete(&self, c: Completion, batch: &mut EndBatch) {
        if usize::from(c.cid) >= self.dma.tags() {
            pr_warn!(
                "queue {}: completion for unknown command {}\n",
                self.queue.qid,
                c.cid
            );
            return;
        }
        self.retire(c.cid);
        let Some(rq) = self.in_flight.take_back(c.cid) else {
            pr_warn!(
                "queue {}: completion for idle command {}\n",
                self.queue.qid,
                c.cid
            );
            return;
        };
        match c.status {
            None => batch.add(rq),
            Some(status) => blk::end_request(rq, blk_status(status)),
        }
    }
}

impl blk::IrqHandler for IoQueue {
    fn handle(&self) -> bool {
        // The batch ends its requests when it goes, after the completion queue's head is written.
        let mut batch = EndBatch::new();
        self.queue.reap(|c| self.complete(c, &mut batch)) > 0
    }
}

/// What the block layer's callbacks see: the namespace and the I/O queues (one per hardware queue).
struct Namespace {
    nsid: u32,
    lba_shift: u32,
    queues: KVec<Arc<IoQueue>>,
    /// The `lose_command` parameter (fixed once the module is loaded), read here once rather
    /// than per request.
    lose_command: u32,
}

pub(crate) struct NvmeDisk;

#[vtable]
impl kernel::block::mq::Operations for NvmeDisk {
    type QueueData = Arc<Namespace>;

    fn queue_rq(
        ns: ArcBorrow<'_, Namespace>,
        rq: ARef<kernel::block::mq::Request<Self>>,
        is_last: bool,
    ) -> Result {
        let info = blk::info(&rq);
        let q = ns.queues.get(info.hw_queue as usize).ok_or(EIO)?;
        let issued = Self::issue(&ns, q, info, rq, is_last);
        if issued.is_err() && is_last {
            // The batch ends here: ring for the commands before this one.
            q.queue.ring();
        }
        issued
    }

    fn commit_rqs(ns: ArcBorrow<'_, Namespace>) {
        // 7.2's callback does not say which hardware queue ended its batch: ring every queue that has
        // commands waiting (a queue without any costs a lock and a compare).
        for q in ns.queues.iter() {
            q.queue.ring();
        }
    }

    fn complete(rq: ARef<kernel::block::mq::Request<Self>>) {
        // Requests are ended by the interrupt handler, never through `blk_mq_complete_request`.
        let _ = kernel::block::mq::Request::end_ok(rq);
    }
}

impl NvmeDisk {
    /// Builds the command for `rq`, maps its data and copies the command into `q`'s submission
    /// queue, ringing the doorbell if `is_last`.
    fn issue(
        ns: &Namespace,
        q: &IoQueue,
        info: blk::RqInfo,
        rq: ARef<kernel::block::mq::Request<Self>>,
        is_last: bool,
    ) -> Result {
        let tag = info.tag;
        let i = usize::from(tag);
        if i >= q.dma.tags() {
            return Err(EIO);
        }
        let (cmd, to_unmap, write) = match info.op {
            blk::OP_FLUSH => (Command::flush(ns.nsid), 0, false),
            blk::OP_READ | blk::OP_WRITE => {
                let write = info.op == blk::OP_WRITE;
                let blocks = info.bytes >> ns.lba_shift;
                if blocks == 0 || blocks > 0x1_0000 {
                    return Err(EIO);
                }
                let lba = info.sector >> (ns.lba_shift - 9);
                let (ranges, to_unmap) = q.dma.map(i, &q.dev, &rq, write)?;
                let list = i * PRPS_PER_PAGE;
                let prps = build_prps(
                    (0..ranges as usize).map(|r| q.dma.range(i, r)),
                    u64::from(info.bytes),
                    |n, address| dma_write!(q.prp_lists, [panic: list + n], address),
                );
                let (prp1, prp2) = match prps {
                    Ok((prp1, Prp2::None)) => (prp1, 0),
                    Ok((prp1, Prp2::Page(page))) => (prp1, page),
                    Ok((prp1, Prp2::List(_))) => {
                        (prp1, q.prp_lists.dma_handle() + (list * 8) as u64)
                    }
                    Err(e) => {
                        pr_err!("request not describable with PRPs: {:?}\n", e);
                        q.dma.unmap(i, &q.dev, to_unmap, write);
                        return Err(EIO);
                    }
                };
                let cmd = Command::read_write(write, ns.nsid, lba, blocks, info.fua);
                (cmd.with_prps(prp1, prp2), to_unmap, write)
            }
            _ => return Err(Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))),
        };
        let lose = match ns.lose_command {
            0 => false,
            _ if STALLED.load(Relaxed) != 0 => true,
            n if ISSUED.fetch_add(1, Relaxed).wrapping_add(1) == n => {
                pr_warn!(
                    "lose_command: I/O queue {} stops taking commands, from command {}\n",
                    q.queue.qid,
                    tag
                );
                STALLED.store(1, Relaxed);
                true
            }
            _ => false,
        };
        let issued = Issued {
            tick: q.tick.load(Relaxed),
            to_unmap,
            write,
        };
        q.issued[i].store(issued.to_word(), Relaxed);
        // Like the C driver, ring the doorbell once per batch: blk-mq marks the batch's last request,
        // or calls `commit_rqs` when the batch ends without one. The request is recorded as in
        // flight under the submission lock, so a reset (which closes the gate under it) sees every
        // command the controller may hold.
        let submitted = q.queue.submit(&cmd.with_cid(tag), is_last, lose, || {
            q.in_flight.put(tag, rq).map_err(|_| EIO)
        });
        if let Err(e) = submitted {
            q.retire(tag);
            // Closed for a reset: blk-mq tries again later (`BLK_STS_RESOURCE`).
            return Err(if e == EBUSY { ENOMEM } else { e });
        }
        Ok(())
    }
}

type Registration = blk::IrqRegistration<IoQueue>;

/// The controller as the I/O path, the watchdog and unbind share it.
#[pin_data]
pub(crate) struct Ctrl {
    bar: Arc<Bar0>,
    cap: Cap,
    admin: Arc<Queue>,
    io: KVec<Arc<IoQueue>>,
    shadow: Option<Arc<ShadowDoorbells>>,
    /// The disk's request queue, from when the disk is added until unbind frees it.
    #[pin]
    blk_queue: Mutex<Option<BlkQueue>>,
    /// Set when a reset failed: the controller is disabled and every request fails.
    dead: Atomic<u32>,
}

impl Ctrl {
    /// Programs the admin queue and enables the controller (which must be disabled).
    fn enable(regs: &impl Regs, cap: &Cap, admin: &Queue) -> Result {
        admin.rewind();
        let n = u32::from(ADMIN_ENTRIES - 1);
        regs.put32(n | (n << 16), reg::AQA)?;
        regs.put64(admin.sq_address(), reg::ASQ)?;
        regs.put64(admin.cq_address(), reg::ACQ)?;
        regs.put32(reg::CC_IO_ENTRY_SIZES | reg::CC_EN, reg::CC)?;
        wait_status(regs, reg::CSTS_RDY, reg::CSTS_RDY, cap.timeout_ms)
    }

    /// Asks for the I/O queues and creates them (each completion queue, then its submission queue),
    /// then hands the controller the shadow doorbells, as the C driver does.
    fn start_io_queues(&self) -> Result {
        admin_command(&self.admin, Command::set_queue_count(self.io.len() as u16))?;
        for q in self.io.iter() {
            let queue = &q.queue;
            queue.rewind();
            admin_command(
                &self.admin,
                Command::create_cq(queue.qid, queue.cq_entries, queue.cq_address(), q.vector),
            )?;
            admin_command(
                &self.admin,
                Command::create_sq(queue.qid, queue.entries, queue.sq_address()),
            )?;
        }
        if let Some(shadow) = &self.shadow {
            let (values, event_indices) = shadow.addresses();
            match admin_command(
                &self.admin,
                Command::doorbell_buffer_config(values, event_indices),
            ) {
                Ok(_) => shadow.activate(),
                Err(e) => pr_warn!(
                    "shadow doorbells refused ({:?}): doorbell registers only\n",
                    e
                ),
            }
        }
        Ok(())
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Relaxed) != 0
    }

    /// Deletes the I/O queues and shuts the controller down, so it does no more DMA.
    fn shut_down(&self, dev: &kernel::device::Device<Bound>) {
        let Ok(regs) = self.bar.access(dev) else {
            return;
        };
        if !self.is_dead() {
            for q in self.io.iter().rev() {
                let qid = q.queue.qid;
                if let Err(e) = admin_command(&self.admin, Command::delete_sq(qid))
                    .and_then(|_| admin_command(&self.admin, Command::delete_cq(qid)))
                {
                    dev_warn!(dev, "deleting I/O queue {} failed: {:?}\n", qid, e);
                }
            }
            let cc = regs.read32(reg::CC);
            regs.write32((cc & !reg::CC_SHN_MASK) | reg::CC_SHN_NORMAL, reg::CC);
            if let Err(e) = wait_status(
                regs,
                reg::CSTS_SHST_MASK,
                reg::CSTS_SHST_CMPLT,
                SHUTDOWN_TIMEOUT_MS,
            ) {
                dev_warn!(dev, "shutdown did not complete: {:?}\n", e);
            }
        }
        if let Err(e) = disable(regs, &self.cap) {
            dev_warn!(dev, "disabling the controller failed: {:?}\n", e);
        }
    }
}

#[pin_data(PinnedDrop)]
struct Rnvme {
    #[pin]
    disk: Mutex<Option<Disk<NvmeDisk>>>,
    irqs: KVec<Registration>,
    ctrl: Arc<Ctrl>,
    watchdog: Arc<Watchdog>,
}

#[pinned_drop]
impl PinnedDrop for Rnvme {
    fn drop(self: Pin<&mut Self>) {
        pr_debug!("rnvme: released\n");
    }
}

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <RnvmeDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_class(pci::Class::STORAGE_EXPRESS.as_raw(), 0xff_ffff),
        ()
    )]
);

struct RnvmeDriver;

/// Controller registers for the code that sleeps between accesses (enabling, disabling, shutting
/// down): the BAR itself where the caller holds the bound device (probe, unbind), or its `Devres`
/// (the watchdog), reached once per access because `try_access` holds the RCU read lock, under
/// which nothing may sleep.
pub(crate) trait Regs {
    fn get32(&self, offset: usize) -> Result<u32>;
    fn put32(&self, value: u32, offset: usize) -> Result;
    fn put64(&self, value: u64, offset: usize) -> Result;
}

impl Regs for pci::Bar<'static, { reg::SIZE }> {
    fn get32(&self, offset: usize) -> Result<u32> {
        self.try_read32(offset)
    }

    fn put32(&self, value: u32, offset: usize) -> Result {
        self.try_write32(value, offset)
    }

    fn put64(&self, value: u64, offset: usize) -> Result {
        self.try_write64(value, offset)
    }
}

impl Regs for Bar0 {
    fn get32(&self, offset: usize) -> Result<u32> {
        self.try_access().ok_or(ENODEV)?.try_read32(offset)
    }

    fn put32(&self, value: u32, offset: usize) -> Result {
        self.try_access().ok_or(ENODEV)?.try_write32(value, offset)
    }

    fn put64(&self, value: u64, offset: usize) -> Result {
        self.try_access().ok_or(ENODEV)?.try_write64(value, offset)
    }
}

/// Waits until `CSTS & mask == want`, for up to `timeout_ms`; fails early on a fatal status.
fn wait_status(regs: &impl Regs, mask: u32, want: u32, timeout_ms: u32) -> Result {
    let mut waited_ms = 0;
    loop {
        let csts = regs.get32(reg::CSTS)?;
        if csts == u32::MAX {
            return Err(ENODEV);
        }
        if csts & mask == want {
            return Ok(());
        }
        if csts & reg::CSTS_CFS != 0 && want & reg::CSTS_SHST_MASK == 0 {
            return Err(EIO);
        }
        if waited_ms >= timeout_ms {
            return Err(ETIMEDOUT);
        }
        fsleep(Delta::from_millis(1));
        waited_ms += 1;
    }
}

/// Clears CC.EN and waits for the controller to stop (CSTS.RDY = 0).
pub(crate) fn disable(regs: &impl Regs, cap: &Cap) -> Result {
    let cc = regs.get32(reg::CC)?;
    if cc & reg::CC_EN != 0 {
        // Changing EN while RDY still disagrees is undefined: let a bring-up in progress finish.
        let _ = wait_status(regs, reg::CSTS_RDY, reg::CSTS_RDY, cap.timeout_ms);
    }
    regs.put32(cc & !reg::CC_EN, reg::CC)?;
    wait_status(regs, reg::CSTS_RDY, 0, cap.timeout_ms)
}

/// Runs admin command `cmd`; a failed status is an error.
pub(crate) fn admin_command(admin: &Queue, cmd: Command) -> Result<u32> {
    let c = admin.execute(cmd, 0, ADMIN_TIMEOUT_MS)?;
    match c.status {
        None => Ok(c.result),
        Some(status) => {
            pr_err!(
                "admin command {:#x} failed: {} (type {:#x}, code {:#x})\n",
                cmd.opcode(),
                status.description(),
                status.sct,
                status.sc
            );
            Err(EIO)
        }
    }
}

/// Runs an Identify into a 4 KiB DMA buffer and copies it out.
fn identify(
    dev: &kernel::device::Device<Bound>,
    admin: &Queue,
    cns: u8,
    nsid: u32,
) -> Result<KVec<u8>> {
    let buffer = Coherent::<u8>::zeroed_slice(dev, PAGE as usize, GFP_KERNEL)?;
    admin_command(admin, Command::identify(cns, nsid, buffer.dma_handle()))?;
    let mut out = KVec::with_capacity(PAGE as usize, GFP_KERNEL)?;
    for i in 0..PAGE as usize {
        out.push(dma_read!(buffer, [panic: i]), GFP_KERNEL)?;
    }
    Ok(out)
}

impl RnvmeDriver {
    fn bring_up(pdev: &pci::Device<Core<'_>>) -> Result<impl PinInit<Rnvme, Error>> {
        let dev: &kernel::device::Device<Bound> = pdev.as_ref();
        pdev.enable_device_mem()?;
        pdev.set_master();
        // SAFETY: probe runs before any DMA allocation or mapping of this device.
        unsafe { pdev.dma_set_mask_and_coherent(DmaMask::new::<64>())? };

        let bar = Arc::new(
            pdev.iomap_region_sized::<{ reg::SIZE }>(0, c"rnvme")?
                .into_devres()?,
            GFP_KERNEL,
        )?;
        let regs = bar.access(dev)?;
        let cap = Cap::decode(regs.read64(reg::CAP));
        if cap.mps_min_shift > 12 {
            dev_err!(dev, "controller pages above 4 KiB are not supported\n");
            return Err(ENODEV);
        }
        disable(regs, &cap)?;

        let admin = Queue::new(
            dev,
            bar.clone(),
            &cap,
            0,
            (ADMIN_ENTRIES, ADMIN_ENTRIES),
            None,
        )?;
        if let Err(e) = Ctrl::enable(regs, &cap, &admin) {
            dev_err!(dev, "controller did not become ready: {:?}\n", e);
            let _ = disable(regs, &cap);
            return Err(e);
        }
        match Self::configure(pdev, bar.clone(), cap, admin.clone()) {
            Ok(init) => Ok(init),
            Err(e) => {
                let _ = disable(regs, &cap);
                Err(e)
            }
        }
    }

    fn configure(
        pdev: &pci::Device<Core<'_>>,
        bar: Arc<Bar0>,
        cap: Cap,
        admin: Arc<Queue>,
    ) -> Result<impl PinInit<Rnvme, Error>> {
        let dev: &kernel::device::Device<Bound> = pdev.as_ref();
        let ctrl = IdController::parse(&identify(dev, &admin, 1, 0)?).ok_or(EIO)?;
        let list = identify(dev, &admin, 2, 0)?;
        let nsid = u32::from_le_bytes([list[0], list[1], list[2], list[3]]);
        if nsid == 0 {
            dev_err!(dev, "no active namespace\n");
            return Err(ENODEV);
        }
        let ns = IdNamespace::parse(&identify(dev, &admin, 0, nsid)?).ok_or(EIO)?;
        if !(9..=12).contains(&ns.lba_shift) || ns.metadata != 0 {
            dev_err!(
                dev,
                "namespace {} format not supported (2^{} B blocks, {} B metadata)\n",
                nsid,
                ns.lba_shift,
                ns.metadata
            );
            return Err(ENODEV);
        }

        // How many queues the controller grants: asking is harmless, the count is asked again (the
        // same) when the queues are created.
        let wanted = blk::online_queues(MAX_IO_QUEUES).max(1);
        let granted = admin_command(&admin, Command::set_queue_count(wanted as u16))?;
        let granted = (granted & 0xffff).min(granted >> 16) + 1;
        let count = wanted.min(granted);

        let max_entries = cap.max_queue_entries.min(u32::from(u16::MAX)) as u16;
        let entries = IO_ENTRIES.min(max_entries);
        let cq_entries = IO_CQ_ENTRIES.min(max_entries);
        let tags = usize::from(entries - 1);
        let max_transfer = ctrl
            .max_transfer(cap.mps_min_shift)
            .map_or(MAX_TRANSFER, |m| m.min(MAX_TRANSFER));
        let max_segments = (max_transfer / PAGE) as usize + 1;

        // One vector per I/O queue, the first shared with the admin queue (which is polled). Fewer
        // vectors than asked for (MSI's limits) mean as many queues.
        pdev.alloc_irq_vectors(
            1,
            count,
            pci::IrqTypes::default()
                .with(pci::IrqType::MsiX)
                .with(pci::IrqType::Msi),
        )?;
        let mut irq_numbers = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        for index in 0..count {
            let Some(irq) = blk::irq_vector(pdev, index) else {
                break;
            };
            irq_numbers.push(irq, GFP_KERNEL)?;
        }
        let count = irq_numbers.len() as u32;

        let shadow = if ctrl.shadow_doorbells {
            Some(ShadowDoorbells::new(dev)?)
        } else {
            None
        };
        let mut io = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        let mut irqs = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        for i in 0..count as u16 {
            let (qid, vector) = (i + 1, i);
            let queue = Queue::new(
                dev,
                bar.clone(),
                &cap,
                qid,
                (entries, cq_entries),
                shadow.clone(),
            )?;
            let irq = irq_numbers[usize::from(vector)];
            let ioq = IoQueue::new(dev, queue, tags, max_segments, (irq, vector))?;
            irqs.push(Registration::new(irq, c"rnvme", ioq.clone())?, GFP_KERNEL)?;
            io.push(ioq, GFP_KERNEL)?;
        }
        let mut queues = KVec::with_capacity(io.len(), GFP_KERNEL)?;
        for q in io.iter() {
            queues.push(q.clone(), GFP_KERNEL)?;
        }
        let controller = Arc::pin_init(
            pin_init!(Ctrl {
                bar,
                cap,
                admin,
                io,
                shadow,
                blk_queue <- new_mutex!(None),
                dead: Atomic::new(0),
            }),
            GFP_KERNEL,
        )?;
        controller.start_io_queues()?;

        let namespace = Arc::new(
            Namespace {
                nsid,
                lba_shift: ns.lba_shift,
                queues,
                lose_command: *crate::module_parameters::lose_command.value(),
            },
            GFP_KERNEL,
        )?;
        let tagset = Arc::pin_init(
            kernel::block::mq::TagSet::new(controller.io.len() as u32, tags as u32, 1),
            GFP_KERNEL,
        )?;
        for (i, q) in controller.io.iter().enumerate() {
            if let Err(e) = blk::steer_irq(&tagset, i as u32, q.irq) {
                dev_warn!(
                    dev,
                    "interrupt {} keeps its default affinity: {:?}\n",
                    q.irq,
                    e
                );
            }
        }
        let limits = Limits {
            logical_block_size: 1 << ns.lba_shift,
            max_hw_sectors: (max_transfer >> 9) as u32,
            max_segments: max_segments as u16,
            capacity_sectors: ns.blocks << (ns.lba_shift - 9),
            volatile_write_cache: ctrl.volatile_write_cache,
        };
        // The watchdog runs from before the disk is added: adding it reads the partition table.
        let watchdog = Watchdog::start(
            controller.clone(),
            *crate::module_parameters::io_timeout.value(),
        )?;
        let instance = INSTANCES.fetch_add(1, Relaxed);
        let name = CString::try_from_fmt(fmt!("rnvme{}n{}", instance, nsid))?;
        let disk = match Disk::add(dev, name.to_bytes_with_nul(), tagset, &limits, namespace) {
            Ok(disk) => disk,
            Err(e) => {
                watchdog.stop();
                return Err(e);
            }
        };
        // From here a reset also quiesces the queue (until then, while the partition table is
        // read, the closed gates alone hold submissions back: blk-mq retries them).
        *controller.blk_queue.lock() = Some(disk.queue());
        dev_info!(
            dev,
            "{}: {} blocks of {} B, {} I/O queue(s) of {}, max transfer {} KiB, shadow doorbells {}, model \"{}\", serial \"{}\"\n",
            BStr::from_bytes(name.to_bytes()),
            ns.blocks,
            1u32 << ns.lba_shift,
            controller.io.len(),
            entries,
            max_transfer / 1024,
            if controller.shadow.is_some() {
                "on"
            } else {
                "off"
            },
            BStr::from_bytes(nvme_spec::ascii(&ctrl.model)),
            BStr::from_bytes(nvme_spec::ascii(&ctrl.serial)),
        );
        Ok(try_pin_init!(Rnvme {
            disk <- new_mutex!(Some(disk)),
            irqs,
            ctrl: controller,
            watchdog,
        }? Error))
    }
}

impl pci::Driver for RnvmeDriver {
    type IdInfo = ();
    type Data<'bound> = Rnvme;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || Self::bring_up(pdev))
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // Deleting the disk waits for every request in flight (their interrupts still run, and the
        // watchdog still recovers a command the controller does not complete).
        let mut disk = this.disk.lock().take();
        if let Some(disk) = disk.as_mut() {
            disk.delete();
        }
        this.watchdog.stop();
        *this.ctrl.blk_queue.lock() = None;
        drop(disk);
        this.ctrl.shut_down(pdev.as_ref());
        dev_info!(pdev, "controller shut down\n");
    }
}

kernel::module_pci_driver! {
    type: RnvmeDriver,
    name: "rnvme",
    authors: ["Kangrejos"],
    description: "NVMe PCI driver on the kernel's Rust abstractions",
    license: "GPL v2",
    params: {
        io_timeout: u32 {
            default: 30,
            description: "Seconds an I/O command may take before it is aborted and, failing that, the controller reset (0: never)",
        },
        lose_command: u32 {
            default: 0,
            description: "Testing only: from the Nth I/O command after loading until a controller reset, commands are not handed to the controller, so that they time out (0: never)",
        },
    },
}
