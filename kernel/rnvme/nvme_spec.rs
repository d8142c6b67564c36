// SPDX-License-Identifier: GPL-2.0

//! The NVMe protocol as data: register offsets and fields, command encoding, completion status and
//! Identify parsing. Nothing here touches the kernel, so it is plain, safe, testable Rust.

/// Controller registers (BAR0).
use crate::nvme_command::{Cqe, FEATURE_NUMBER_OF_QUEUES, admin, io};
use crate::nvme_status::{Status, sc, sct};

pub(crate) mod reg {
    pub(crate) const CAP: usize = 0x00;
    pub(crate) const CC: usize = 0x14;
    pub(crate) const CSTS: usize = 0x1c;
    pub(crate) const AQA: usize = 0x24;
    pub(crate) const ASQ: usize = 0x28;
    pub(crate) const ACQ: usize = 0x30;
    /// The doorbells start here.
    pub(crate) const DOORBELLS: usize = 0x1000;
    /// Registers the driver reads or writes at fixed offsets lie below this size.
    pub(crate) const SIZE: usize = 0x1000;

    pub(crate) const CC_EN: u32 = 1;
    /// IOSQES = 6 (64 B), IOCQES = 4 (16 B), AMS round robin, CSS NVM, MPS 4 KiB.
    pub(crate) const CC_IO_ENTRY_SIZES: u32 = (6 << 16) | (4 << 20);
    pub(crate) const CC_SHN_NORMAL: u32 = 1 << 14;
    pub(crate) const CC_SHN_MASK: u32 = 3 << 14;
    pub(crate) const CSTS_RDY: u32 = 1;
    pub(crate) const CSTS_CFS: u32 = 1 << 1;
    pub(crate) const CSTS_SHST_MASK: u32 = 3 << 2;
    pub(crate) const CSTS_SHST_CMPLT: u32 = 2 << 2;
}

/// The fields of CAP the driver uses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cap {
    /// Largest queue size (entries, 1-based).
    pub(crate) max_queue_entries: u32,
    /// How long CSTS.RDY may take to follow CC.EN, in milliseconds.
    pub(crate) timeout_ms: u32,
    /// Bytes between doorbells.
    pub(crate) doorbell_stride: usize,
    /// Smallest memory page size the controller supports, as a power of two.
    pub(crate) mps_min_shift: u32,
}

impl Cap {
    pub(crate) fn decode(cap: u64) -> Cap {
        Cap {
            max_queue_entries: (cap & 0xffff) as u32 + 1,
            // CAP.TO counts 500 ms units; one more unit of slack, as the spec's "worst case" reads.
            timeout_ms: (((cap >> 24) & 0xff) as u32 + 1) * 500,
            doorbell_stride: 4 << ((cap >> 32) & 0xf),
            mps_min_shift: 12 + ((cap >> 48) & 0xf) as u32,
        }
    }

    /// Offset of the submission queue tail doorbell of queue `qid`.
    pub(crate) fn sq_doorbell(&self, qid: u16) -> usize {
        reg::DOORBELLS + 2 * usize::from(qid) * self.doorbell_stride
    }

    /// Offset of the completion queue head doorbell of queue `qid`.
    pub(crate) fn cq_doorbell(&self, qid: u16) -> usize {
        reg::DOORBELLS + (2 * usize::from(qid) + 1) * self.doorbell_stride
    }
}

/// The page size the driver programs into CC.MPS (4 KiB) and uses for PRPs.
pub(crate) const PAGE: u64 = 4096;
/// PRP entries in one list page.
pub(crate) const PRPS_PER_PAGE: usize = (PAGE / 8) as usize;

/// Opcodes the shared command module does not name.
mod op {
    pub(super) const DOORBELL_BUFFER_CONFIG: u8 = 0x7c;
}

/// A 64-byte submission queue entry: the user-space driver's `Sqe` (the same source file, see
/// `nvme_command.rs`), with the constructors this driver needs.
pub(crate) use crate::nvme_command::Sqe as Command;

impl Command {
    /// Sets the command identifier (dword 0, bits 31:16).
    pub(crate) fn with_cid(mut self, cid: u16) -> Command {
        self.set_cid(cid);
        self
    }

    pub(crate) fn with_prps(mut self, prp1: u64, prp2: u64) -> Command {
        self.set_prps(prp1, prp2);
        self
    }

    /// Identify with CNS `cns` into a 4 KiB buffer at `buffer`.
    pub(crate) fn identify(cns: u8, nsid: u32, buffer: u64) -> Command {
        let mut c = Command::new(admin::IDENTIFY, nsid).with_prps(buffer, 0);
        c.dw[10] = u32::from(cns);
        c
    }

    /// Set Features, Number of Queues: `count` submission and completion queues (1-based).
    pub(crate) fn set_queue_count(count: u16) -> Command {
        let mut c = Command::new(admin::SET_FEATURES, 0);
        let n = u32::from(count.saturating_sub(1));
        c.dw[10] = FEATURE_NUMBER_OF_QUEUES;
        c.dw[11] = (n << 16) | n;
        c
    }

    /// Create I/O Completion Queue `qid` of `entries`, physically contiguous, interrupting on `vector`.
    pub(crate) fn create_cq(qid: u16, entries: u16, base: u64, vector: u16) -> Command {
        let mut c = Command::new(admin::CREATE_CQ, 0).with_prps(base, 0);
        c.dw[10] = (u32::from(entries - 1) << 16) | u32::from(qid);
        c.dw[11] = (u32::from(vector) << 16) | 0b11; // IEN | PC
        c
    }

    /// Create I/O Submission Queue `qid` of `entries`, physically contiguous, completing on CQ `qid`.
    pub(crate) fn create_sq(qid: u16, entries: u16, base: u64) -> Command {
        let mut c = Command::new(admin::CREATE_SQ, 0).with_prps(base, 0);
        c.dw[10] = (u32::from(entries - 1) << 16) | u32::from(qid);
        c.dw[11] = (u32::from(qid) << 16) | 0b1; // PC
        c
    }

    /// Abort of command `cid` on submission queue `sqid`. Dword 0 bit 0 of its completion is 0 when
    /// the command was aborted (it then completes with "Command Abort Requested").
    pub(crate) fn abort(sqid: u16, cid: u16) -> Command {
        let mut c = Command::new(admin::ABORT, 0);
        c.dw[10] = (u32::from(cid) << 16) | u32::from(sqid);
        c
    }

    /// Doorbell Buffer Config: the shadow doorbell page and the event index page.
    pub(crate) fn doorbell_buffer_config(shadow: u64, event_index: u64) -> Command {
        Command::new(op::DOORBELL_BUFFER_CONFIG, 0).with_prps(shadow, event_index)
    }

    pub(crate) fn delete_sq(qid: u16) -> Command {
        let mut c = Command::new(admin::DELETE_SQ, 0);
        c.dw[10] = u32::from(qid);
        c
    }

    pub(crate) fn delete_cq(qid: u16) -> Command {
        let mut c = Command::new(admin::DELETE_CQ, 0);
        c.dw[10] = u32::from(qid);
        c
    }

    /// Read or Write of `blocks` (1-based, at most 65536) logical blocks from `lba`.
    pub(crate) fn read_write(write: bool, nsid: u32, lba: u64, blocks: u32, fua: bool) -> Command {
        let mut c = Command::new(if write { io::WRITE } else { io::READ }, nsid);
        c.dw[10] = lba as u32;
        c.dw[11] = (lba >> 32) as u32;
        c.dw[12] = (blocks - 1) & 0xffff;
        if fua {
            c.dw[12] |= 1 << 30;
        }
        c
    }

    pub(crate) fn flush(nsid: u32) -> Command {
        Command::new(io::FLUSH, nsid)
    }
}

/// The status of the completion whose dword 3 is `dw3`, decoded by the user-space crate's status
/// module: `None` for success.
pub(crate) fn completion_status(dw3: u32) -> Option<Status> {
    Status::from_field(Cqe::from_dwords([0, 0, 0, dw3]).status)
}

/// The block layer's status for a command that failed with `status` (`blk_status_t` values).
pub(crate) fn blk_status(status: Status) -> u8 {
    const NOTSUPP: u8 = 1;
    const NOSPC: u8 = 3;
    const TARGET: u8 = 5;
    const MEDIUM: u8 = 7;
    const IOERR: u8 = 10;
    match (status.sct, status.sc) {
        (sct::GENERIC, sc::INVALID_OPCODE) => NOTSUPP,
        (sct::GENERIC, sc::LBA_OUT_OF_RANGE | sc::INVALID_NAMESPACE) => TARGET,
        (sct::GENERIC, sc::CAPACITY_EXCEEDED) => NOSPC,
        (sct::MEDIA, _) => MEDIUM,
        _ => IOERR,
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | (u64::from(le32(b, at + 4)) << 32)
}

/// A fixed-width, space-padded ASCII field, trimmed.
pub(crate) fn ascii(field: &[u8]) -> &[u8] {
    let end = field
        .iter()
        .rposition(|&c| c != b' ' && c != 0)
        .map_or(0, |i| i + 1);
    &field[..end]
}

/// What the driver uses from Identify Controller.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdController {
    pub(crate) serial: [u8; 20],
    pub(crate) model: [u8; 40],
    /// Maximum Data Transfer Size: 2^mdts minimum pages; 0 means no limit.
    pub(crate) mdts: u8,
    /// A volatile write cache is present (flush and FUA mean something).
    pub(crate) volatile_write_cache: bool,
    /// Doorbell Buffer Config is supported (OACS bit 8): shadow doorbells.
    pub(crate) shadow_doorbells: bool,
}

impl IdController {
    /// Parses a 4096-byte Identify Controller structure.
    pub(crate) fn parse(b: &[u8]) -> Option<IdController> {
        if b.len() < 4096 {
            return None;
        }
        let mut serial = [0; 20];
        serial.copy_from_slice(&b[4..24]);
        let mut model = [0; 40];
        model.copy_from_slice(&b[24..64]);
        Some(IdController {
            serial,
            model,
            mdts: b[77],
            volatile_write_cache: b[525] & 1 != 0,
            shadow_doorbells: le16(b, 256) & (1 << 8) != 0,
        })
    }

    /// Largest transfer in bytes, for a minimum page size of `1 << mps_min_shift`.
    pub(crate) fn max_transfer(&self, mps_min_shift: u32) -> Option<u64> {
        if self.mdts == 0 {
            None
        } else {
            1u64.checked_shl(u32::from(self.mdts) + mps_min_shift)
        }
    }
}

/// What the driver uses from Identify Namespace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdNamespace {
    /// Size in logical blocks.
    pub(crate) blocks: u64,
    /// Logical block size as a power of two.
    pub(crate) lba_shift: u32,
    /// Metadata bytes per block in the active format (the driver serves only 0).
    pub(crate) metadata: u16,
}

impl IdNamespace {
    pub(crate) fn parse(b: &[u8]) -> Option<IdNamespace> {
        if b.len() < 4096 {
            return None;
        }
        let blocks = le64(b, 0);
        let nlbaf = usize::from(b[25]);
        let flbas = usize::from(b[26] & 0xf) | (usize::from(b[26] >> 5 & 0x3) << 4);
        if flbas > nlbaf || flbas >= 64 {
            return None;
        }
        let lbaf = 128 + 4 * flbas;
        Some(IdNamespace {
            blocks,
            lba_shift: u32::from(b[lbaf + 2]),
            metadata: le16(b, lbaf),
        })
    }
}

/// Where a transfer's PRPs go: `prp1`, and `prp2` either unused, the second page or a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prp2 {
    None,
    Page(u64),
    /// The list holds this many entries (written by the caller's `push`).
    List(usize),
}

/// Why DMA ranges cannot be described with PRPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrpError {
    /// A segment other than the first starts inside a page, or one other than the last ends inside one.
    Misaligned,
    /// More pages than one list page holds.
    TooLong,
    /// The segments hold fewer bytes than the transfer.
    Short,
}

/// Describes `length` bytes held by DMA segments `(address, length)` with PRPs.
///
/// Returns PRP1 and PRP2; list entries (when PRP2 is a list) are handed to `push` in order, at most
/// [`PRPS_PER_PAGE`] of them (the queue limits keep every request within one list page).
pub(crate) fn build_prps(
    mut segments: impl Iterator<Item = (u64, u64)>,
    length: u64,
    mut push: impl FnMut(usize, u64),
) -> Result<(u64, Prp2), PrpError> {
    let (first, first_len) = segments.next().ok_or(PrpError::Short)?;
    let offset = first & (PAGE - 1);
    let in_first_page = PAGE - offset;
    if length <= in_first_page {
        return if first_len >= length {
            Ok((first, Prp2::None))
        } else {
            Err(PrpError::Short)
        };
    }
    // The pages after the first: each starts page-aligned.
    let mut pages = [0u64; 2];
    let mut count = 0usize;
    let mut remaining = length - in_first_page;
    let mut current = first + in_first_page;
    let mut left_in_segment = first_len.saturating_sub(in_first_page);
    if first_len < in_first_page {
        return Err(PrpError::Misaligned);
    }
    while remaining > 0 {
        if left_in_segment == 0 {
            let (address, len) = segments.next().ok_or(PrpError::Short)?;
            if address & (PAGE - 1) != 0 {
                return Err(PrpError::Misaligned);
            }
            current = address;
            left_in_segment = len;
        }
        let take = remaining.min(PAGE);
        if left_in_segment < take {
            return Err(PrpError::Misaligned);
        }
        if count < 2 {
            pages[count] = current;
        }
        if count >= PRPS_PER_PAGE {
            return Err(PrpError::TooLong);
        }
        push(count, current);
        count += 1;
        current += take;
        left_in_segment -= take;
        remaining -= take;
    }
    Ok(match count {
        1 => (first, Prp2::Page(pages[0])),
        _ => (first, Prp2::List(count)),
    })
}
