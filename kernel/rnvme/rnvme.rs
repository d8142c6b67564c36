// SPDX-License-Identifier: GPL-2.0

//! `rnvme`: a PCI NVMe driver on Linux 7.2's Rust abstractions (PCI, DMA coherent memory, IRQ,
//! blk-mq), binding NVMe controllers by PCI class. See `README.md` for the architecture.

use kernel::{
    device::{Bound, Core},
    dma::{Coherent, DmaMask},
    dma_read, dma_write,
    io::Io,
    irq, new_mutex, pci,
    prelude::*,
    dma::Device as _,
    str::{BStr, CString},
    sync::{
        aref::ARef,
        atomic::{Atomic, Full, Relaxed},
        Arc, ArcBorrow, Mutex,
    },
    time::{delay::fsleep, Delta},
};

mod blk;
mod nvme_spec;
mod queue;

use blk::{Disk, InFlight, Limits, SgTable};
use nvme_spec::{
    build_prps, reg, Cap, Command, IdController, IdNamespace, Prp2, PAGE, PRPS_PER_PAGE,
};
use queue::{Bar0, Completion, Queue};

/// Admin queue entries.
const ADMIN_ENTRIES: u16 = 32;
/// I/O queue entries (fewer if CAP.MQES says so); blk-mq gets one tag less, so a queue never fills.
const IO_ENTRIES: u16 = 128;
/// How long an admin command may take.
const ADMIN_TIMEOUT_MS: u32 = 10_000;
/// How long a normal shutdown may take when Identify gives no RTD3E.
const SHUTDOWN_TIMEOUT_MS: u32 = 5_000;
/// 7.2's `pci::Device::alloc_irq_vectors` names only the first and the last vector it allocated, so
/// two is the most the driver can give distinct interrupts to: I/O queue 1 shares vector 0 with the
/// admin queue (which is polled), I/O queue 2 has vector 1.
const MAX_IO_QUEUES: u32 = 2;
/// Largest transfer, whatever MDTS allows: one PRP list page (with the first page's offset).
const MAX_TRANSFER: u64 = (PRPS_PER_PAGE as u64 - 1) * PAGE;

/// Disk instance numbers (`rnvme<N>n<nsid>`).
static INSTANCES: Atomic<u32> = Atomic::new(0);

/// An I/O queue pair and what its requests in flight hold: scatter lists, PRP list pages and the
/// requests themselves, by tag.
struct IoQueue {
    queue: Arc<Queue>,
    in_flight: InFlight<NvmeDisk>,
    /// Block segments mapped per tag, with bit 31 set for writes; 0 when nothing is mapped.
    mapped: KVec<Atomic<u32>>,
    sg: KVec<SgTable>,
    /// One PRP list page per tag.
    prp_lists: Coherent<[u64]>,
    dev: ARef<kernel::device::Device>,
}

const MAPPED_WRITE: u32 = 1 << 31;

impl IoQueue {
    fn new(
        dev: &kernel::device::Device<Bound>,
        queue: Arc<Queue>,
        tags: usize,
        max_segments: usize,
    ) -> Result<Arc<IoQueue>> {
        let mut mapped = KVec::with_capacity(tags, GFP_KERNEL)?;
        let mut sg = KVec::with_capacity(tags, GFP_KERNEL)?;
        for _ in 0..tags {
            mapped.push(Atomic::new(0), GFP_KERNEL)?;
            sg.push(SgTable::new(max_segments)?, GFP_KERNEL)?;
        }
        Ok(Arc::new(
            IoQueue {
                queue,
                in_flight: InFlight::new(tags)?,
                mapped,
                sg,
                prp_lists: Coherent::<u64>::zeroed_slice(dev, tags * PRPS_PER_PAGE, GFP_KERNEL)?,
                dev: dev.into(),
            },
            GFP_KERNEL,
        )?)
    }

    fn unmap(&self, tag: u16) {
        let i = usize::from(tag);
        let m = self.mapped[i].xchg(0, Full);
        if m != 0 {
            self.sg[i].unmap(&self.dev, m & !MAPPED_WRITE, m & MAPPED_WRITE != 0);
        }
    }

    fn complete(&self, c: Completion) {
        if usize::from(c.cid) >= self.sg.len() {
            pr_warn!("queue {}: completion for unknown command {}\n", self.queue.qid, c.cid);
            return;
        }
        self.unmap(c.cid);
        let status = if c.status.is_success() {
            0
        } else {
            c.status.blk_status()
        };
        if !self.in_flight.end(c.cid, status) {
            pr_warn!("queue {}: completion for idle command {}\n", self.queue.qid, c.cid);
        }
    }
}

impl irq::Handler for IoQueue {
    fn handle(&self, dev: &kernel::device::Device<Bound>) -> irq::IrqReturn {
        let Ok(bar) = self.queue.bar().access(dev) else {
            return irq::IrqReturn::None;
        };
        if self.queue.reap(bar, |c| self.complete(c)) > 0 {
            irq::IrqReturn::Handled
        } else {
            irq::IrqReturn::None
        }
    }
}

/// What the block layer's callbacks see: the namespace and the I/O queues (one per hardware queue).
struct Namespace {
    nsid: u32,
    lba_shift: u32,
    queues: KVec<Arc<IoQueue>>,
}

struct NvmeDisk;

#[vtable]
impl kernel::block::mq::Operations for NvmeDisk {
    type QueueData = Arc<Namespace>;

    fn queue_rq(
        ns: ArcBorrow<'_, Namespace>,
        rq: ARef<kernel::block::mq::Request<Self>>,
        _is_last: bool,
    ) -> Result {
        let info = blk::info(&rq);
        let q = ns.queues.get(info.hw_queue as usize).ok_or(EIO)?;
        let tag = info.tag;
        let i = usize::from(tag);
        if i >= q.sg.len() {
            return Err(EIO);
        }
        let cmd = match info.op {
            blk::OP_FLUSH => Command::flush(ns.nsid),
            blk::OP_READ | blk::OP_WRITE => {
                let write = info.op == blk::OP_WRITE;
                let blocks = info.bytes >> ns.lba_shift;
                if blocks == 0 || blocks > 0x1_0000 {
                    return Err(EIO);
                }
                let lba = info.sector >> (ns.lba_shift - 9);
                let (segments, mapped) = q.sg[i].map(&q.dev, &rq, write)?;
                let list = i * PRPS_PER_PAGE;
                let prps = build_prps(
                    (0..mapped as usize).map(|s| q.sg[i].segment(s)),
                    u64::from(info.bytes),
                    |n, address| dma_write!(q.prp_lists, [panic: list + n], address),
                );
                let (prp1, prp2) = match prps {
                    Ok((prp1, Prp2::None)) => (prp1, 0),
                    Ok((prp1, Prp2::Page(page))) => (prp1, page),
                    Ok((prp1, Prp2::List(_))) => (prp1, q.prp_lists.dma_handle() + (list * 8) as u64),
                    Err(e) => {
                        pr_err!("request not describable with PRPs: {:?}\n", e);
                        q.sg[i].unmap(&q.dev, segments, write);
                        return Err(EIO);
                    }
                };
                q.mapped[i].store(segments | if write { MAPPED_WRITE } else { 0 }, Relaxed);
                Command::read_write(write, ns.nsid, lba, blocks, info.fua).with_prps(prp1, prp2)
            }
            _ => return Err(Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))),
        };
        if let Err(rq) = q.in_flight.put(tag, rq) {
            q.unmap(tag);
            drop(rq);
            return Err(EIO);
        }
        if let Err(e) = q.queue.submit(&cmd.with_cid(tag)) {
            q.unmap(tag);
            drop(q.in_flight.take_back(tag));
            return Err(e);
        }
        Ok(())
    }

    fn commit_rqs(_ns: ArcBorrow<'_, Namespace>) {}

    fn complete(rq: ARef<kernel::block::mq::Request<Self>>) {
        // Requests are ended by the interrupt handler, never through `blk_mq_complete_request`.
        let _ = kernel::block::mq::Request::end_ok(rq);
    }
}

type Registration = irq::Registration<Arc<IoQueue>>;

#[pin_data(PinnedDrop)]
struct Rnvme {
    #[pin]
    disk: Mutex<Option<Disk<NvmeDisk>>>,
    irqs: KVec<Pin<KBox<Registration>>>,
    io: KVec<Arc<IoQueue>>,
    admin: Arc<Queue>,
    bar: Arc<Bar0>,
    cap: Cap,
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

/// Waits until `CSTS & mask == want`, for up to `timeout_ms`; fails early on a fatal status.
fn wait_status(
    bar: &pci::Bar<'static, { reg::SIZE }>,
    mask: u32,
    want: u32,
    timeout_ms: u32,
) -> Result {
    let mut waited_ms = 0;
    loop {
        let csts = bar.read32(reg::CSTS);
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
fn disable(bar: &pci::Bar<'static, { reg::SIZE }>, cap: &Cap) -> Result {
    let cc = bar.read32(reg::CC);
    if cc & reg::CC_EN != 0 {
        // Changing EN while RDY still disagrees is undefined: let a bring-up in progress finish.
        let _ = wait_status(bar, reg::CSTS_RDY, reg::CSTS_RDY, cap.timeout_ms);
    }
    bar.write32(cc & !reg::CC_EN, reg::CC);
    wait_status(bar, reg::CSTS_RDY, 0, cap.timeout_ms)
}

/// Runs admin command `cmd`; a failed status is an error.
fn admin_command(admin: &Queue, cmd: Command) -> Result<u32> {
    let c = admin.execute(cmd, 0, ADMIN_TIMEOUT_MS)?;
    if c.status.is_success() {
        Ok(c.result)
    } else {
        pr_err!(
            "admin command {:#x} failed: type {:#x} code {:#x}\n",
            cmd.0[0] & 0xff,
            c.status.code_type(),
            c.status.code()
        );
        Err(EIO)
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

        let bar = Arc::new(pdev.iomap_region_sized::<{ reg::SIZE }>(0, c"rnvme")?.into_devres()?, GFP_KERNEL)?;
        let regs = bar.access(dev)?;
        let cap = Cap::decode(regs.read64(reg::CAP));
        if cap.mps_min_shift > 12 {
            dev_err!(dev, "controller pages above 4 KiB are not supported\n");
            return Err(ENODEV);
        }
        disable(regs, &cap)?;

        let admin = Queue::new(dev, bar.clone(), &cap, 0, ADMIN_ENTRIES)?;
        let n = u32::from(ADMIN_ENTRIES - 1);
        regs.write32(n | (n << 16), reg::AQA);
        regs.write64(admin.sq_address(), reg::ASQ);
        regs.write64(admin.cq_address(), reg::ACQ);
        regs.write32(reg::CC_IO_ENTRY_SIZES | reg::CC_EN, reg::CC);
        if let Err(e) = wait_status(regs, reg::CSTS_RDY, reg::CSTS_RDY, cap.timeout_ms) {
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
            dev_err!(dev, "namespace {} format not supported (2^{} B blocks, {} B metadata)\n", nsid, ns.lba_shift, ns.metadata);
            return Err(ENODEV);
        }

        let wanted = blk::online_queues(MAX_IO_QUEUES).max(1);
        let granted = admin_command(&admin, Command::set_queue_count(wanted as u16))?;
        let granted = (granted & 0xffff).min(granted >> 16) + 1;
        let count = wanted.min(granted);

        let entries = IO_ENTRIES.min(cap.max_queue_entries.min(u32::from(u16::MAX)) as u16);
        let tags = usize::from(entries - 1);
        let max_transfer = ctrl
            .max_transfer(cap.mps_min_shift)
            .map_or(MAX_TRANSFER, |m| m.min(MAX_TRANSFER));
        let max_segments = (max_transfer / PAGE) as usize + 1;

        let vectors = pdev.alloc_irq_vectors(
            1,
            count,
            pci::IrqTypes::default()
                .with(pci::IrqType::MsiX)
                .with(pci::IrqType::Msi),
        )?;
        let vector_ends = [*vectors.start(), *vectors.end()];
        // The vectors' indices are private; their interrupt numbers tell whether there are two.
        let first: irq::IrqRequest<'_> = vector_ends[0].try_into()?;
        let last: irq::IrqRequest<'_> = vector_ends[1].try_into()?;
        let count = if first.irq() == last.irq() { 1 } else { count };

        let mut io = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        let mut irqs = KVec::with_capacity(count as usize, GFP_KERNEL)?;
        for i in 0..count as u16 {
            let qid = i + 1;
            let queue = Queue::new(dev, bar.clone(), &cap, qid, entries)?;
            let ioq = IoQueue::new(dev, queue.clone(), tags, max_segments)?;
            let vector = vector_ends[usize::from(i).min(1)];
            irqs.push(
                KBox::pin_init(
                    pdev.request_irq(vector, irq::Flags::TRIGGER_NONE, c"rnvme", Ok::<_, Error>(ioq.clone())),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
            admin_command(&admin, Command::create_cq(qid, entries, queue.cq_address(), i))?;
            admin_command(&admin, Command::create_sq(qid, entries, queue.sq_address()))?;
            io.push(ioq, GFP_KERNEL)?;
        }

        let mut queues = KVec::with_capacity(io.len(), GFP_KERNEL)?;
        for q in io.iter() {
            queues.push(q.clone(), GFP_KERNEL)?;
        }
        let namespace = Arc::new(
            Namespace {
                nsid,
                lba_shift: ns.lba_shift,
                queues,
            },
            GFP_KERNEL,
        )?;
        let tagset = Arc::pin_init(
            kernel::block::mq::TagSet::new(io.len() as u32, tags as u32, 1),
            GFP_KERNEL,
        )?;
        let limits = Limits {
            logical_block_size: 1 << ns.lba_shift,
            max_hw_sectors: (max_transfer >> 9) as u32,
            max_segments: max_segments as u16,
            capacity_sectors: ns.blocks << (ns.lba_shift - 9),
            volatile_write_cache: ctrl.volatile_write_cache,
        };
        let instance = INSTANCES.fetch_add(1, Relaxed);
        let name = CString::try_from_fmt(fmt!("rnvme{}n{}", instance, nsid))?;
        let disk = Disk::add(dev, name.to_bytes_with_nul(), tagset, &limits, namespace)?;
        dev_info!(
            dev,
            "{}: {} blocks of {} B, {} I/O queue(s) of {}, max transfer {} KiB, model \"{}\", serial \"{}\"\n",
            BStr::from_bytes(name.to_bytes()),
            ns.blocks,
            1u32 << ns.lba_shift,
            io.len(),
            entries,
            max_transfer / 1024,
            BStr::from_bytes(nvme_spec::ascii(&ctrl.model)),
            BStr::from_bytes(nvme_spec::ascii(&ctrl.serial)),
        );
        Ok(try_pin_init!(Rnvme {
            disk <- new_mutex!(Some(disk)),
            irqs,
            io,
            admin,
            bar,
            cap,
        }? Error))
    }

    /// Deletes the I/O queues and shuts the controller down, so it does no more DMA.
    fn shut_down(dev: &kernel::device::Device<Bound>, this: &Rnvme) {
        for q in this.io.iter().rev() {
            let qid = q.queue.qid;
            if let Err(e) = admin_command(&this.admin, Command::delete_sq(qid))
                .and_then(|_| admin_command(&this.admin, Command::delete_cq(qid)))
            {
                dev_warn!(dev, "deleting I/O queue {} failed: {:?}\n", qid, e);
            }
        }
        let Ok(regs) = this.bar.access(dev) else {
            return;
        };
        let cc = regs.read32(reg::CC);
        regs.write32((cc & !reg::CC_SHN_MASK) | reg::CC_SHN_NORMAL, reg::CC);
        if let Err(e) = wait_status(regs, reg::CSTS_SHST_MASK, reg::CSTS_SHST_CMPLT, SHUTDOWN_TIMEOUT_MS) {
            dev_warn!(dev, "shutdown did not complete: {:?}\n", e);
        }
        if let Err(e) = disable(regs, &this.cap) {
            dev_warn!(dev, "disabling the controller failed: {:?}\n", e);
        }
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
        // Deleting the disk waits for every request in flight (their interrupts still run).
        let disk = this.disk.lock().take();
        drop(disk);
        Self::shut_down(pdev.as_ref(), &this);
        dev_info!(pdev, "controller shut down\n");
    }
}

kernel::module_pci_driver! {
    type: RnvmeDriver,
    name: "rnvme",
    authors: ["Kangrejos"],
    description: "NVMe PCI driver on the kernel's Rust abstractions",
    license: "GPL v2",
}
