//! BAR0 register offsets and fields (NVMe base specification 1.4, section 3.1).

/// Controller Capabilities (64-bit).
pub const CAP: usize = 0x00;
/// Version.
pub const VS: usize = 0x08;
/// Interrupt Mask Set.
pub const INTMS: usize = 0x0c;
/// Controller Configuration.
pub const CC: usize = 0x14;
/// Controller Status.
pub const CSTS: usize = 0x1c;
/// Admin Queue Attributes.
pub const AQA: usize = 0x24;
/// Admin Submission Queue base address (64-bit).
pub const ASQ: usize = 0x28;
/// Admin Completion Queue base address (64-bit).
pub const ACQ: usize = 0x30;
/// First doorbell register.
pub const DOORBELL_BASE: usize = 0x1000;

/// CC.EN: enable.
pub const CC_EN: u32 = 1;
/// CC.SHN = 01b: normal shutdown notification.
pub const CC_SHN_NORMAL: u32 = 1 << 14;
/// CC.SHN mask.
pub const CC_SHN_MASK: u32 = 3 << 14;
/// CSTS.RDY: ready.
pub const CSTS_RDY: u32 = 1;
/// CSTS.CFS: controller fatal status.
pub const CSTS_CFS: u32 = 1 << 1;
/// CSTS.SHST mask.
pub const CSTS_SHST_MASK: u32 = 3 << 2;
/// CSTS.SHST = 10b: shutdown processing complete.
pub const CSTS_SHST_COMPLETE: u32 = 2 << 2;

/// Builds a CC value: NVM command set, round robin, 64-byte SQEs, 16-byte CQEs, page size `2^(12+mps)`.
pub fn cc_value(mps: u32) -> u32 {
    (mps << 7) | (6 << 16) | (4 << 20)
}

/// The decoded Controller Capabilities register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(pub u64);

impl Cap {
    /// Largest queue size the controller accepts, in entries (MQES is 0-based).
    pub fn max_queue_entries(self) -> u32 {
        (self.0 & 0xffff) as u32 + 1
    }
    /// Whether queues must be physically contiguous.
    pub fn contiguous_queues_required(self) -> bool {
        self.0 & (1 << 16) != 0
    }
    /// Worst-case time to become ready, in milliseconds (TO is in 500 ms units).
    pub fn timeout_ms(self) -> u64 {
        ((self.0 >> 24) & 0xff) * 500
    }
    /// Doorbell stride in bytes.
    pub fn doorbell_stride(self) -> usize {
        4 << ((self.0 >> 32) & 0xf)
    }
    /// Whether the NVM command set is supported.
    pub fn supports_nvm_command_set(self) -> bool {
        (self.0 >> 37) & 1 != 0
    }
    /// Smallest memory page size exponent (page = 2^(12+n)).
    pub fn mps_min(self) -> u32 {
        ((self.0 >> 48) & 0xf) as u32
    }
    /// Largest memory page size exponent.
    pub fn mps_max(self) -> u32 {
        ((self.0 >> 52) & 0xf) as u32
    }
}

/// Offset of submission queue `qid`'s tail doorbell.
pub fn sq_tail_doorbell(qid: u16, stride: usize) -> usize {
    DOORBELL_BASE + 2 * qid as usize * stride
}

/// Offset of completion queue `qid`'s head doorbell.
pub fn cq_head_doorbell(qid: u16, stride: usize) -> usize {
    DOORBELL_BASE + (2 * qid as usize + 1) * stride
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_qemu_cap() {
        let cap = Cap(0x004018200f0107ff);
        assert_eq!(cap.max_queue_entries(), 2048);
        assert!(cap.contiguous_queues_required());
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.doorbell_stride(), 4);
        assert!(cap.supports_nvm_command_set());
        assert_eq!(cap.mps_min(), 0);
        assert_eq!(cap.mps_max(), 4);
    }

    #[test]
    fn doorbells_follow_stride() {
        assert_eq!(sq_tail_doorbell(0, 4), 0x1000);
        assert_eq!(cq_head_doorbell(0, 4), 0x1004);
        assert_eq!(sq_tail_doorbell(3, 16), 0x1000 + 6 * 16);
        assert_eq!(cq_head_doorbell(3, 16), 0x1000 + 7 * 16);
    }
}
