//! The block device's shape, taken from Identify: logical block size, capacity, largest transfer,
//! queue depth, and which of flush, FUA, discard and write-zeroes the kernel may send.

use anyhow::{Result, bail};
use libublk::io::UblkDev;
use libublk::sys;
use nvme::platform::Platform;
use nvme::{ControllerInfo, Namespace, QueuePair};
use serde::{Deserialize, Serialize};

/// What the ublk device advertises, and what the queues need to turn sectors into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Geometry {
    /// The namespace served.
    pub nsid: u32,
    /// log2 of the logical block size.
    pub block_shift: u8,
    /// Capacity in logical blocks.
    pub blocks: u64,
    /// Requests per queue.
    pub depth: u16,
    /// The largest request, in bytes (MDTS, so no request is split into several commands).
    pub max_io_bytes: u32,
    /// A volatile write cache is present: the kernel sends flushes and FUA writes.
    pub write_cache: bool,
    /// Dataset Management (deallocate) is supported: discard.
    pub discard: bool,
    /// Write Zeroes is supported.
    pub write_zeroes: bool,
}

/// The largest discard or write-zeroes request, in 512-byte sectors: one command's block count
/// (16 bits, 0-based) at 512-byte blocks.
const MAX_RANGE_SECTORS: u32 = 1 << 16;

impl Geometry {
    /// The geometry of `ns`, with at most `depth` requests in flight per queue.
    pub fn new<P: Platform>(
        ns: &Namespace,
        info: &ControllerInfo,
        qp: &QueuePair<P>,
        depth: u16,
    ) -> Result<Geometry> {
        if ns.metadata_size != 0 {
            bail!(
                "namespace {} is formatted with metadata, which is not served",
                ns.id
            );
        }
        if !(9..=16).contains(&ns.block_shift) {
            bail!(
                "namespace {}: unsupported block size 2^{}",
                ns.id,
                ns.block_shift
            );
        }
        // A ublk request carries at most 512 KiB by default, which covers any MDTS of 4 KiB
        // pages up to 2^7.
        let max_io_bytes = qp.max_transfer().min(512 << 10) as u32;
        if (max_io_bytes as usize) < ns.block_size() {
            bail!("the controller's largest transfer is less than one block");
        }
        let depth = depth.min(u16::try_from(qp.depth()).unwrap_or(u16::MAX));
        Ok(Geometry {
            nsid: ns.id,
            block_shift: ns.block_shift,
            blocks: ns.blocks,
            depth,
            max_io_bytes,
            write_cache: info.volatile_write_cache,
            discard: info.supports_deallocate(),
            write_zeroes: info.supports_write_zeroes(),
        })
    }

    /// Capacity in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks << self.block_shift
    }

    /// Sets the device's parameters before it is started.
    pub fn apply(&self, dev: &mut UblkDev) {
        dev.set_default_params(self.bytes());
        let params = &mut dev.tgt.params;
        let basic = &mut params.basic;
        basic.attrs = if self.write_cache {
            sys::UBLK_ATTR_VOLATILE_CACHE | sys::UBLK_ATTR_FUA
        } else {
            0
        };
        basic.logical_bs_shift = self.block_shift;
        basic.physical_bs_shift = self.block_shift.max(12);
        basic.io_min_shift = self.block_shift;
        basic.io_opt_shift = self.block_shift.max(12);
        basic.max_sectors = self.max_io_bytes >> 9;
        if self.discard || self.write_zeroes {
            params.types |= sys::UBLK_PARAM_TYPE_DISCARD;
            let block = 1u32 << self.block_shift;
            params.discard = sys::ublk_param_discard {
                discard_granularity: block,
                max_discard_sectors: if self.discard { MAX_RANGE_SECTORS } else { 0 },
                max_write_zeroes_sectors: if self.write_zeroes {
                    MAX_RANGE_SECTORS
                } else {
                    0
                },
                max_discard_segments: 1,
                ..Default::default()
            };
        }
    }
}
