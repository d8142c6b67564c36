// SPDX-License-Identifier: GPL-2.0

//! What 7.2's abstractions do not offer yet, in one place: a request's position, length,
//! operation and hardware queue, mapping its data for DMA, ending it with an error, a disk with
//! the queue limits NVMe needs (transfer size, segments, the PRP page boundary), and an interrupt
//! handler for every MSI-X vector. Every `unsafe` block of the driver but one lives here.

use core::{cell::UnsafeCell, ffi::c_void, marker::PhantomData, ptr::NonNull};

use kernel::{
    bindings,
    block::mq::{Operations, Request, TagSet},
    device::Bound,
    prelude::*,
    sync::{
        Arc,
        aref::ARef,
        atomic::{Atomic, Full},
    },
    types::ForeignOwnable,
};

/// The raw `struct request` behind a Rust request.
fn raw<T: Operations>(rq: &Request<T>) -> *mut bindings::request {
    // `Request<T>` is `#[repr(transparent)]` over `Opaque<bindings::request>`.
    core::ptr::from_ref(rq).cast_mut().cast()
}

/// The fields of a started request that the driver reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RqInfo {
    /// Index of the hardware queue (`hctx->queue_num`).
    pub(crate) hw_queue: u32,
    /// Tag, unique among the requests in flight on that hardware queue.
    pub(crate) tag: u16,
    pub(crate) op: u32,
    pub(crate) fua: bool,
    /// In 512-byte sectors.
    pub(crate) sector: u64,
    pub(crate) bytes: u32,
}

pub(crate) const OP_READ: u32 = bindings::req_op_REQ_OP_READ;
pub(crate) const OP_WRITE: u32 = bindings::req_op_REQ_OP_WRITE;
pub(crate) const OP_FLUSH: u32 = bindings::req_op_REQ_OP_FLUSH;

pub(crate) fn info<T: Operations>(rq: &Request<T>) -> RqInfo {
    let rq = raw(rq);
    // SAFETY: `rq` is a started request handed to `queue_rq` (the `Request` borrow proves it is
    // live); blk-mq sets `mq_hctx`, `tag`, `cmd_flags`, `__sector` and `__data_len` before dispatch
    // and does not change them while the driver owns the request.
    unsafe {
        let flags = (*rq).cmd_flags;
        RqInfo {
            hw_queue: (*(*rq).mq_hctx).queue_num,
            tag: (*rq).tag as u16,
            op: flags & ((1 << bindings::REQ_OP_BITS) - 1),
            fua: flags & (1 << bindings::req_flag_bits___REQ_FUA) != 0,
            sector: (*rq).__sector,
            bytes: (*rq).__data_len,
        }
    }
}

/// The DMA API's failed mapping (`DMA_MAPPING_ERROR`, a macro bindgen does not carry).
const DMA_MAPPING_ERROR: bindings::dma_addr_t = !0;

/// Calls `f` with the page, offset and length of each range of `rq`'s data, in order: the
/// ranges `rq_for_each_bvec` walks (a multi-page `bio_vec` is one range; `offset` may then pass the
/// first page, within the same physically contiguous folio).
fn for_each_range<T: Operations>(
    rq: &Request<T>,
    mut f: impl FnMut(*mut bindings::page, usize, u32) -> Result,
) -> Result {
    // SAFETY: the request is live and owned by the driver (see `info`); its bio chain and the
    // bios' vectors stay as blk-mq dispatched them until the request ends. Each `bi_idx` read
    // indexes a vector the bio owns while `bi_size` bytes remain, as `bio_for_each_bvec` reads it.
    unsafe {
        let mut bio = (*raw(rq)).bio;
        while !bio.is_null() {
            let vectors = (*bio).bi_io_vec;
            let mut iter = (*bio).bi_iter;
            while iter.bi_size != 0 {
                // `mp_bvec_iter_*`: the range starts `bi_bvec_done` into the vector.
                let bvec = &*vectors.add(iter.bi_idx as usize);
                let len = iter
                    .bi_size
                    .min(bvec.bv_len.checked_sub(iter.bi_bvec_done).ok_or(EIO)?);
                if len == 0 {
                    return Err(EIO);
                }
                f(
                    bvec.bv_page,
                    (bvec.bv_offset + iter.bi_bvec_done) as usize,
                    len,
                )?;
                // `bvec_iter_advance_single`: the rest of this vector was taken, or the bio ends.
                iter.bi_size -= len;
                iter.bi_bvec_done = 0;
                iter.bi_idx += 1;
            }
            bio = (*bio).bi_next;
        }
    }
    Ok(())
}

/// One DMA-mapped range of a request's data.
#[derive(Clone, Copy, Default)]
struct DmaRange {
    address: bindings::dma_addr_t,
    len: u32,
}

/// The DMA mappings of a queue's requests, by tag: one range per range of the request's
/// `bio_vec`s, each mapped with `dma_map_page`, as the C driver's DMA iterator maps them (no
/// scatter list is built).
///
/// Every tag's first range sits side by side in one small array, so a one-range request (the
/// common case) touches memory shared by all tags rather than a page of its own (as the C driver
/// keeps its per-request state in the request's own allocation); a tag's further ranges have a
/// table of their own.
pub(crate) struct DmaMaps {
    first: KVec<UnsafeCell<DmaRange>>,
    rest: KVec<KVec<UnsafeCell<DmaRange>>>,
}

// SAFETY: a tag's ranges are used only by the request holding that tag (from `queue_rq` until its
// completion), so no range is ever accessed from two threads at once.
unsafe impl Sync for DmaMaps {}
// SAFETY: as above; the memory is plain kernel memory with no thread affinity.
unsafe impl Send for DmaMaps {}

impl DmaMaps {
    /// Maps for `tags` tags, each with room for `len` ranges: the most pages one request's data
    /// may touch.
    pub(crate) fn new(tags: usize, len: usize) -> Result<DmaMaps> {
        let cells = |n: usize| -> Result<KVec<UnsafeCell<DmaRange>>> {
            let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
            for _ in 0..n {
                v.push(UnsafeCell::new(DmaRange::default()), GFP_KERNEL)?;
            }
            Ok(v)
        };
        let mut rest = KVec::with_capacity(tags, GFP_KERNEL)?;
        for _ in 0..tags {
            rest.push(cells(len.saturating_sub(1))?, GFP_KERNEL)?;
        }
        Ok(DmaMaps {
            first: cells(tags)?,
            rest,
        })
    }

    /// How many tags the maps are for.
    pub(crate) fn tags(&self) -> usize {
        self.first.len()
    }

    /// Range `i` of `tag`'s map, if there is room for it.
    fn cell(&self, tag: usize, i: usize) -> Option<&UnsafeCell<DmaRange>> {
        match i {
            0 => self.first.get(tag),
            _ => self.rest.get(tag)?.get(i - 1),
        }
    }

    /// Maps the data of `rq`, which holds `tag`, for DMA to or from `dev`. Returns the number of
    /// ranges mapped (what [`DmaMaps::range`] reads) and the number [`DmaMaps::unmap`] must undo:
    /// the same, or 0 when the DMA API says this device's mappings need no unmapping
    /// (`dma_need_unmap`: direct mapping, cache-coherent, no bounce buffer), where the C driver
    /// skips it too.
    ///
    /// Under the queue's virt boundary every range but the first starts a page and every range but
    /// the last ends one, so no two ranges share a page and the map's room suffices; a request
    /// that breaks this fails with `EIO` rather than overflow it.
    pub(crate) fn map<T: Operations>(
        &self,
        tag: usize,
        dev: &kernel::device::Device,
        rq: &Request<T>,
        to_device: bool,
    ) -> Result<(u32, u32)> {
        let mut mapped = 0;
        let walked = for_each_range(rq, |page, offset, len| {
            let cell = self.cell(tag, mapped).ok_or(EIO)?;
            // SAFETY: the range is the request's data, in pages the block layer keeps until the
            // request ends; `device_ptr` is a live, bound device.
            let address = unsafe {
                bindings::dma_map_page_attrs(
                    device_ptr(dev),
                    page,
                    offset,
                    len as usize,
                    direction(to_device),
                    0,
                )
            };
            if address == DMA_MAPPING_ERROR {
                return Err(ENOMEM);
            }
            // SAFETY: the range is this tag's, used by one thread at a time (see `Sync`).
            unsafe { *cell.get() = DmaRange { address, len } };
            mapped += 1;
            Ok(())
        });
        let mapped = mapped as u32;
        if let Err(e) = walked {
            self.unmap(tag, dev, mapped, to_device);
            return Err(e);
        }
        if mapped == 0 {
            return Err(EIO);
        }
        // SAFETY: `device_ptr` is a live, bound device; asked after the mappings, as required.
        let need_unmap = unsafe { bindings::dma_need_unmap(device_ptr(dev)) };
        Ok((mapped, if need_unmap { mapped } else { 0 }))
    }

    /// The DMA address and length of `tag`'s mapped range `i` (below the count `map` returned).
    pub(crate) fn range(&self, tag: usize, i: usize) -> (u64, u64) {
        self.cell(tag, i).map_or((0, 0), |cell| {
            // SAFETY: the range is this tag's, used by one thread at a time (see `Sync`).
            let range = unsafe { *cell.get() };
            (range.address, u64::from(range.len))
        })
    }

    /// Unmaps the first `count` ranges [`DmaMaps::map`] mapped for `tag`.
    pub(crate) fn unmap(
        &self,
        tag: usize,
        dev: &kernel::device::Device,
        count: u32,
        to_device: bool,
    ) {
        for i in 0..count as usize {
            let (address, len) = self.range(tag, i);
            // SAFETY: `map` mapped this range for this device and direction and it was not
            // unmapped since.
            unsafe {
                bindings::dma_unmap_page_attrs(
                    device_ptr(dev),
                    address,
                    len as usize,
                    direction(to_device),
                    0,
                )
            };
        }
    }
}

fn direction(to_device: bool) -> bindings::dma_data_direction {
    if to_device {
        bindings::dma_data_direction_DMA_TO_DEVICE
    } else {
        bindings::dma_data_direction_DMA_FROM_DEVICE
    }
}

fn device_ptr(dev: &kernel::device::Device) -> *mut bindings::device {
    // `device::Device` is `#[repr(transparent)]` over `Opaque<bindings::device>`.
    core::ptr::from_ref(dev).cast_mut().cast()
}

/// Limits for the disk, from Identify.
pub(crate) struct Limits {
    pub(crate) logical_block_size: u32,
    pub(crate) max_hw_sectors: u32,
    pub(crate) max_segments: u16,
    pub(crate) capacity_sectors: u64,
    pub(crate) volatile_write_cache: bool,
}

/// A registered gendisk; deleting it drains its requests.
pub(crate) struct Disk<T: Operations> {
    gendisk: *mut bindings::gendisk,
    deleted: bool,
    _tagset: Arc<TagSet<T>>,
}

/// The request queue of a [`Disk`], to stop and restart dispatching around a controller reset. The
/// driver keeps it only between [`Disk::add`] and dropping the disk (which frees the queue).
pub(crate) struct BlkQueue(*mut bindings::request_queue);

// SAFETY: the quiesce functions may be called from any thread; the pointer's lifetime is the
// driver's to keep (see the type's documentation).
unsafe impl Send for BlkQueue {}
// SAFETY: as above; `&BlkQueue` only calls functions that synchronise internally.
unsafe impl Sync for BlkQueue {}

impl BlkQueue {
    /// Stops dispatching: once this returns, no `queue_rq` runs and none starts.
    pub(crate) fn quiesce(&self) {
        // SAFETY: the queue is live while the driver holds a `BlkQueue` (see the type).
        unsafe { bindings::blk_mq_quiesce_queue(self.0) }
    }

    /// Undoes one [`BlkQueue::quiesce`] and runs the hardware queues again.
    pub(crate) fn unquiesce(&self) {
        // SAFETY: as in `quiesce`; each call follows one `quiesce`.
        unsafe {
            bindings::blk_mq_unquiesce_queue(self.0);
            bindings::blk_mq_kick_requeue_list(self.0);
        }
    }
}

// SAFETY: the gendisk pointer is only used to delete and put the disk, from whichever thread drops
// it; the C side synchronises both.
unsafe impl<T: Operations> Send for Disk<T> {}
// SAFETY: `&Disk` gives no access to the gendisk.
unsafe impl<T: Operations> Sync for Disk<T> {}

impl<T: Operations> Disk<T> {
    /// Allocates and adds the disk `name` (NUL-terminated, at most 31 bytes) under `parent`.
    pub(crate) fn add(
        parent: &kernel::device::Device,
        name: &[u8],
        tagset: Arc<TagSet<T>>,
        limits: &Limits,
        queue_data: T::QueueData,
    ) -> Result<Disk<T>> {
        if name.len() > 31 || name.last() != Some(&0) {
            return Err(EINVAL);
        }
        // SAFETY: an all-zero `queue_limits` is its C default ("no limit set").
        let mut lim: bindings::queue_limits = unsafe { core::mem::zeroed() };
        lim.logical_block_size = limits.logical_block_size;
        lim.physical_block_size = limits.logical_block_size;
        lim.max_hw_sectors = limits.max_hw_sectors;
        lim.max_segments = limits.max_segments;
        // Every segment but the first starts on a PRP page and every one but the last ends on one.
        lim.virt_boundary_mask = (crate::nvme_spec::PAGE - 1) as usize;
        lim.dma_alignment = 3;
        if limits.volatile_write_cache {
            lim.features = 1 /* BLK_FEAT_WRITE_CACHE */ | 2 /* BLK_FEAT_FUA */;
        }
        let data = queue_data.into_foreign();
        // `TagSet<T>` is `#[repr(transparent)]` over `Opaque<bindings::blk_mq_tag_set>`.
        let set: *mut bindings::blk_mq_tag_set = core::ptr::from_ref(&*tagset).cast_mut().cast();
        // SAFETY: `set` is an allocated tag set that `tagset` keeps alive as long as the disk;
        // `lim` and the lock class live through the call.
        let gendisk = unsafe {
            bindings::__blk_mq_alloc_disk(
                set,
                &mut lim,
                data,
                kernel::static_lock_class!().as_ptr(),
            )
        };
        if let Err(e) = kernel::error::from_err_ptr(gendisk) {
            // SAFETY: `data` came from `into_foreign` above and the disk did not take it.
            drop(unsafe { T::QueueData::from_foreign(data) });
            return Err(e);
        }
        // SAFETY: `gendisk` was just allocated and is not visible yet; `FOPS` is static; the name fits
        // (checked above); the parent is a bound device that outlives the disk (the driver deletes
        // the disk at unbind).
        let added = unsafe {
            (*gendisk).fops = &FOPS;
            core::ptr::copy_nonoverlapping(
                name.as_ptr(),
                (*gendisk).disk_name.as_mut_ptr().cast(),
                name.len(),
            );
            bindings::set_capacity(gendisk, limits.capacity_sectors);
            bindings::device_add_disk(device_ptr(parent), gendisk, core::ptr::null_mut())
        };
        if added != 0 {
            // SAFETY: the disk was never added; putting it frees it, then the queue data is ours again.
            unsafe {
                bindings::put_disk(gendisk);
                drop(T::QueueData::from_foreign(data));
            }
            return Err(Error::from_errno(added));
        }
        Ok(Disk {
            gendisk,
            deleted: false,
            _tagset: tagset,
        })
    }

    /// The disk's request queue. The caller must stop using it before the `Disk` is dropped.
    pub(crate) fn queue(&self) -> BlkQueue {
        // SAFETY: the disk was added by `add`; its queue lives until `put_disk` in `drop`.
        BlkQueue(unsafe { (*self.gendisk).queue })
    }

    /// Removes the disk from the system, waiting for every request in flight. The queue stays
    /// allocated (a [`BlkQueue`] may still be used) until the `Disk` is dropped.
    pub(crate) fn delete(&mut self) {
        if !self.deleted {
            self.deleted = true;
            // SAFETY: the disk was added by `add` and is deleted once (the flag).
            unsafe { bindings::del_gendisk(self.gendisk) };
        }
    }
}

impl<T: Operations> Drop for Disk<T> {
    fn drop(&mut self) {
        self.delete();
        // SAFETY: the disk is deleted (above): no request is in flight and none can start, so nothing
        // uses the queue data, which is then released; the disk is put once.
        unsafe {
            let data: *mut c_void = (*(*self.gendisk).queue).queuedata;
            bindings::put_disk(self.gendisk);
            drop(T::QueueData::from_foreign(data));
        }
    }
}

const FOPS: bindings::block_device_operations = bindings::block_device_operations {
    submit_bio: None,
    open: None,
    release: None,
    ioctl: None,
    compat_ioctl: None,
    check_events: None,
    unlock_native_capacity: None,
    getgeo: None,
    set_read_only: None,
    swap_slot_free_notify: None,
    report_zones: None,
    devnode: None,
    alternative_gpt_sector: None,
    get_unique_id: None,
    owner: core::ptr::null_mut(),
    pr_ops: core::ptr::null_mut(),
    free_disk: None,
    poll_bio: None,
};

/// Requests handed to the device, by tag: the reference `queue_rq` received, kept until the
/// completion with that tag (command identifier) arrives.
pub(crate) struct InFlight<T: Operations> {
    slots: KVec<Atomic<usize>>,
    _p: PhantomData<T>,
}

impl<T: Operations> InFlight<T> {
    pub(crate) fn new(tags: usize) -> Result<InFlight<T>> {
        let mut slots = KVec::with_capacity(tags, GFP_KERNEL)?;
        for _ in 0..tags {
            slots.push(Atomic::new(0), GFP_KERNEL)?;
        }
        Ok(InFlight {
            slots,
            _p: PhantomData,
        })
    }

    /// Keeps `rq` under `tag` until [`InFlight::end`] or [`InFlight::take_back`]. Gives it back if
    /// the tag is out of range or already taken (blk-mq never does that).
    pub(crate) fn put(&self, tag: u16, rq: ARef<Request<T>>) -> Result<(), ARef<Request<T>>> {
        let Some(slot) = self.slots.get(usize::from(tag)) else {
            return Err(rq);
        };
        let ptr = ARef::into_raw(rq);
        if slot.cmpxchg(0, ptr.as_ptr() as usize, Full).is_err() {
            // SAFETY: `ptr` was released just above and is taken back once.
            return Err(unsafe { ARef::from_raw(ptr) });
        }
        Ok(())
    }

    /// The request under `tag`, taken back to be ended or requeued.
    pub(crate) fn take_back(&self, tag: u16) -> Option<ARef<Request<T>>> {
        let ptr = self.slots.get(usize::from(tag))?.xchg(0, Full);
        let ptr = NonNull::new(ptr as *mut Request<T>)?;
        // SAFETY: a non-zero slot holds a reference `put` released; the exchange takes it once.
        Some(unsafe { ARef::from_raw(ptr) })
    }
}

/// Ends `rq`, which the driver took back from [`InFlight`], with `status` (a `blk_status_t`).
pub(crate) fn end_request<T: Operations>(rq: ARef<Request<T>>, status: u8) {
    if status == 0 {
        if let Err(rq) = Request::end_ok(rq) {
            // Another reference exists (the driver holds none besides this one): leaking the
            // reference is safer than ending the request twice.
            core::mem::forget(rq);
        }
    } else {
        let ptr = ARef::into_raw(rq);
        // SAFETY: the request is in flight and owned by the driver; ending it returns it to
        // blk-mq. The abstraction's reference count is reset when the request is dispatched again.
        unsafe { bindings::blk_mq_end_request(ptr.as_ptr().cast(), status) };
    }
}

/// Requests that completed successfully in one pass over a completion queue, ended together once
/// the pass is over, as the C driver ends them (`blk_mq_end_request_batch`): the block layer then
/// accounts them and frees their tags in one go instead of once per request. Dropping the batch ends
/// what it holds.
pub(crate) struct EndBatch {
    iob: bindings::io_comp_batch,
}

impl EndBatch {
    pub(crate) fn new() -> EndBatch {
        EndBatch {
            iob: bindings::io_comp_batch {
                req_list: bindings::rq_list {
                    head: core::ptr::null_mut(),
                    tail: core::ptr::null_mut(),
                },
                need_ts: false,
                complete: None,
                poll_ctx: core::ptr::null_mut(),
            },
        }
    }

    /// Ends `rq`, which the driver took back from [`InFlight`], successfully: with the batch, or at
    /// once if the block layer does not batch it (`blk_mq_add_to_batch`'s rules: scheduler tags or
    /// an `end_io` callback).
    pub(crate) fn add<T: Operations>(&mut self, rq: ARef<Request<T>>) {
        let ptr = raw(&rq);
        // SAFETY: the request is in flight and owned by the driver; blk-mq does not change these
        // fields while the driver owns it.
        let alone = unsafe {
            (*ptr).rq_flags & (1 << bindings::rqf_flags___RQF_SCHED_TAGS) != 0
                || (*ptr).end_io.is_some()
        };
        if alone {
            end_request(rq, 0);
            return;
        }
        let timed = (1 << bindings::rqf_flags___RQF_IO_STAT)
            | (1 << bindings::rqf_flags___RQF_STATS)
            | (1 << bindings::rqf_flags___RQF_USE_SCHED);
        let ptr = ARef::into_raw(rq).as_ptr().cast::<bindings::request>();
        // SAFETY: the driver owns the request until it is ended, and an in-flight request's
        // `rq_next` (which shares its place with the dispatch list link) is the driver's to use:
        // linking it at the tail of the batch is what `rq_list_add_tail` does. The reference the
        // driver held is given up here; the abstraction resets its count when blk-mq dispatches the
        // request again.
        unsafe {
            self.iob.need_ts |= (*ptr).rq_flags & timed != 0;
            (*ptr).__bindgen_anon_1.rq_next = core::ptr::null_mut();
            match self.iob.req_list.tail.is_null() {
                true => self.iob.req_list.head = ptr,
                false => (*self.iob.req_list.tail).__bindgen_anon_1.rq_next = ptr,
            }
        }
        self.iob.req_list.tail = ptr;
    }
}

impl Drop for EndBatch {
    fn drop(&mut self) {
        if !self.iob.req_list.head.is_null() {
            // SAFETY: the list holds started requests the driver owns, each once, linked by
            // `EndBatch::add`, with no `end_io` and no scheduler tags; ending them gives them back.
            unsafe { bindings::blk_mq_end_request_batch(&mut self.iob) };
        }
    }
}

/// Gives `rq`, which the driver took back from [`InFlight`] after the controller dropped it (a
/// reset), back to blk-mq to be dispatched again once the queue runs.
pub(crate) fn requeue_request<T: Operations>(rq: ARef<Request<T>>) {
    let ptr = ARef::into_raw(rq);
    // SAFETY: the request is started and owned by the driver, and the device no longer holds it (the
    // controller was disabled); requeueing returns it to blk-mq, which dispatches it again through
    // `queue_rq` (where the abstraction resets its reference count).
    unsafe { bindings::blk_mq_requeue_request(ptr.as_ptr().cast(), false) };
}

/// Disables interrupt `irq`, waiting for a handler that is running to finish.
pub(crate) fn disable_irq(irq: u32) {
    // SAFETY: `irq` is a vector the driver requested and holds; disabling nests and is undone by
    // `enable_irq`; called from process context.
    unsafe { bindings::disable_irq(irq) }
}

/// Undoes one [`disable_irq`].
pub(crate) fn enable_irq(irq: u32) {
    // SAFETY: as in `disable_irq`; each call follows one `disable_irq` of the same interrupt.
    unsafe { bindings::enable_irq(irq) }
}

/// Runs `work` now if it is pending and waits until it is idle (7.2's workqueue abstraction has no
/// flush or cancel).
pub(crate) fn flush_delayed_work<T>(work: &kernel::workqueue::DelayedWork<T>) {
    // `DelayedWork` is `#[repr(transparent)]` over `Opaque<bindings::delayed_work>`.
    let raw: *mut bindings::delayed_work = core::ptr::from_ref(work).cast_mut().cast();
    // SAFETY: `work` is an initialised delayed work item, live for the call.
    unsafe { bindings::flush_delayed_work(raw) };
}

/// Hardware queues worth creating for the CPUs online (`blk_mq_num_online_queues`), at most `max`.
pub(crate) fn online_queues(max: u32) -> u32 {
    // SAFETY: reads the online CPU count; no pointer is involved.
    unsafe { bindings::blk_mq_num_online_queues(max) }
}

/// Points interrupt `irq` at the CPUs whose requests blk-mq sends to hardware queue `hw_queue` of
/// `tagset`, so a completion is handled where its request was submitted (the C driver gets the same
/// from managed affinity, which 7.2's `IrqTypes` cannot ask for). Without it the interrupt may land on
/// another CPU, and every completion then costs a cross-CPU wake-up.
pub(crate) fn steer_irq<T: Operations>(tagset: &TagSet<T>, hw_queue: u32, irq: u32) -> Result {
    let mut cpus = kernel::cpumask::CpumaskVar::new_zero(GFP_KERNEL)?;
    let set: *const bindings::blk_mq_tag_set = core::ptr::from_ref(tagset).cast();
    // SAFETY: `set` is an allocated tag set (`TagSet` is `#[repr(transparent)]` over it), whose
    // default map `blk_mq_alloc_tag_set` filled with one entry per possible CPU id.
    let map = unsafe { (*set).map[0] };
    for cpu in 0..kernel::cpu::nr_cpu_ids() {
        // SAFETY: `cpu` is below `nr_cpu_ids`, the length of `mq_map`.
        let queue = unsafe { *map.mq_map.add(cpu as usize) };
        if queue == hw_queue + map.queue_offset {
            if let Some(id) = kernel::cpu::CpuId::from_u32(cpu) {
                cpus.set(id);
            }
        }
    }
    if cpus.empty() {
        return Ok(());
    }
    // SAFETY: `irq` is a vector the driver requested and holds; the mask lives through the call,
    // which copies it.
    kernel::error::to_result(unsafe { bindings::irq_set_affinity(irq, cpus.as_raw()) })
}

/// The interrupt number of vector `index` of those `pdev` allocated with `alloc_irq_vectors`, or
/// `None` past the last one. 7.2's `IrqVector` range names only its first and last vector, and a
/// queue per CPU needs every one.
pub(crate) fn irq_vector(pdev: &kernel::pci::Device<Bound>, index: u32) -> Option<u32> {
    // `pci::Device` is `#[repr(transparent)]` over `Opaque<bindings::pci_dev>`.
    let raw: *mut bindings::pci_dev = core::ptr::from_ref(pdev).cast_mut().cast();
    // SAFETY: `raw` is the bound device's `struct pci_dev`; `pci_irq_vector` checks `index` against
    // the vectors it has and returns an error for one it has not.
    let irq = unsafe { bindings::pci_irq_vector(raw, index) };
    u32::try_from(irq).ok()
}

/// An interrupt handler without the device: the handler finds what it needs through its own data.
pub(crate) trait IrqHandler: Sync {
    /// Handles the interrupt; whether it was this handler's.
    fn handle(&self) -> bool;
}

/// `handler` registered for interrupt `irq` until dropped, for the vectors 7.2's PCI abstraction
/// cannot name (see [`irq_vector`]). Dropping it frees the interrupt, which waits for a handler
/// that is running.
pub(crate) struct IrqRegistration<T: IrqHandler> {
    irq: u32,
    handler: Arc<T>,
}

impl<T: IrqHandler> IrqRegistration<T> {
    pub(crate) fn new(irq: u32, name: &'static CStr, handler: Arc<T>) -> Result<Self> {
        let data = Arc::as_ptr(&handler).cast_mut().cast::<c_void>();
        // SAFETY: `handle_irq::<T>` reads `data` as a `T`, which `handler` keeps alive until `drop`
        // has freed the interrupt (after any handler still running has returned); everything it
        // touches is initialised. `name` lives for ever.
        kernel::error::to_result(unsafe {
            bindings::request_irq(irq, Some(handle_irq::<T>), 0, name.as_char_ptr(), data)
        })?;
        Ok(IrqRegistration { irq, handler })
    }
}

impl<T: IrqHandler> Drop for IrqRegistration<T> {
    fn drop(&mut self) {
        let data = Arc::as_ptr(&self.handler).cast_mut().cast::<c_void>();
        // SAFETY: `new` registered `data` for `irq`; freeing it waits for a running handler.
        unsafe { bindings::free_irq(self.irq, data) };
    }
}

/// # Safety
///
/// Only for [`IrqRegistration::new`], which passes a `T` as `data`.
unsafe extern "C" fn handle_irq<T: IrqHandler>(_irq: i32, data: *mut c_void) -> u32 {
    // SAFETY: `data` is the `T` `IrqRegistration::new` registered; it lives until the interrupt is
    // freed, which waits for this call to return.
    let handler = unsafe { &*data.cast_const().cast::<T>() };
    if handler.handle() {
        bindings::irqreturn_IRQ_HANDLED
    } else {
        bindings::irqreturn_IRQ_NONE
    }
}
