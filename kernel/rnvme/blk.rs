// SPDX-License-Identifier: GPL-2.0

//! What 7.2's blk-mq abstraction does not offer yet, in one place: a request's position, length,
//! operation and hardware queue, mapping its data for DMA, ending it with an error, and a disk with
//! the queue limits NVMe needs (transfer size, segments, the PRP page boundary). Every `unsafe` block
//! of the driver lives here.

use core::{ffi::c_void, marker::PhantomData, ptr::NonNull};

use kernel::{
    bindings,
    block::mq::{Operations, Request, TagSet},
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Full},
        Arc,
    },
    types::{ForeignOwnable, Opaque},
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

/// A per-tag scatter list, filled by the block layer and the DMA API.
pub(crate) struct SgTable {
    entries: KVec<Opaque<bindings::scatterlist>>,
}

// SAFETY: a table belongs to one tag; only the request holding that tag uses it (from `queue_rq`
// until its completion), so it is never accessed from two threads at once.
unsafe impl Sync for SgTable {}
// SAFETY: as above; the memory is plain kernel memory with no thread affinity.
unsafe impl Send for SgTable {}

impl SgTable {
    pub(crate) fn new(len: usize) -> Result<SgTable> {
        let mut entries = KVec::with_capacity(len, GFP_KERNEL)?;
        for _ in 0..len {
            entries.push(Opaque::uninit(), GFP_KERNEL)?;
        }
        Ok(SgTable { entries })
    }

    fn first(&self) -> *mut bindings::scatterlist {
        self.entries[0].get()
    }

    /// Maps the data of `rq` for DMA to or from `dev`; returns the number of block segments (what
    /// [`SgTable::unmap`] takes) and of DMA segments (what [`SgTable::segment`] reads). The table must
    /// have room for the queue's `max_segments`.
    pub(crate) fn map<T: Operations>(
        &self,
        dev: &kernel::device::Device,
        rq: &Request<T>,
        to_device: bool,
    ) -> Result<(u32, u32)> {
        let sg = self.first();
        let mut last: *mut bindings::scatterlist = core::ptr::null_mut();
        // SAFETY: `sg` points to `entries.len()` entries owned by this tag; `sg_init_table` initialises
        // them and `__blk_rq_map_sg` fills at most `max_segments` (no more than the table holds).
        let segments = unsafe {
            bindings::sg_init_table(sg, self.entries.len() as u32);
            bindings::__blk_rq_map_sg(raw(rq), sg, &mut last)
        };
        if segments <= 0 {
            return Err(EIO);
        }
        // SAFETY: `sg` holds `segments` filled entries; `device_ptr` is a live, bound device.
        let mapped = unsafe {
            bindings::dma_map_sg_attrs(device_ptr(dev), sg, segments, direction(to_device), 0)
        };
        if mapped == 0 {
            return Err(ENOMEM);
        }
        Ok((segments as u32, mapped))
    }

    /// The DMA address and length of mapped segment `i`.
    pub(crate) fn segment(&self, i: usize) -> (u64, u64) {
        // SAFETY: `i` is below the count `map` returned, so the entry was written by `dma_map_sg`.
        unsafe {
            let e = self.entries[i].get();
            ((*e).dma_address, u64::from((*e).dma_length))
        }
    }

    /// Undoes [`SgTable::map`]; `segments` is the count the block layer produced (all of them are
    /// unmapped, as the DMA API requires).
    pub(crate) fn unmap(&self, dev: &kernel::device::Device, segments: u32, to_device: bool) {
        // SAFETY: the table was mapped by `map` for this device and direction and not unmapped since.
        unsafe {
            bindings::dma_unmap_sg_attrs(
                device_ptr(dev),
                self.first(),
                segments as i32,
                direction(to_device),
                0,
            )
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
    _tagset: Arc<TagSet<T>>,
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
            _tagset: tagset,
        })
    }
}

impl<T: Operations> Drop for Disk<T> {
    fn drop(&mut self) {
        // SAFETY: the disk was added by `add` and is deleted once; `del_gendisk` waits for every
        // request in flight, after which nothing uses the queue data, which is then released.
        unsafe {
            let data: *mut c_void = (*(*self.gendisk).queue).queuedata;
            bindings::del_gendisk(self.gendisk);
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

    /// The request under `tag`, taken back before the device saw it.
    pub(crate) fn take_back(&self, tag: u16) -> Option<ARef<Request<T>>> {
        let ptr = self.slots.get(usize::from(tag))?.xchg(0, Full);
        let ptr = NonNull::new(ptr as *mut Request<T>)?;
        // SAFETY: a non-zero slot holds a reference `put` released; the exchange takes it once.
        Some(unsafe { ARef::from_raw(ptr) })
    }

    /// Ends the request under `tag` with `status` (a `blk_status_t`, 0 for success). Returns false
    /// when no request is under that tag (a completion the driver did not ask for).
    pub(crate) fn end(&self, tag: u16, status: u8) -> bool {
        let Some(rq) = self.take_back(tag) else {
            return false;
        };
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
        true
    }
}

/// Hardware queues worth creating for the CPUs online (`blk_mq_num_online_queues`), at most `max`.
pub(crate) fn online_queues(max: u32) -> u32 {
    // SAFETY: reads the online CPU count; no pointer is involved.
    unsafe { bindings::blk_mq_num_online_queues(max) }
}
