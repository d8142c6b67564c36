//! Submission and completion queue entries and the opcodes the driver uses.

/// Admin command opcodes.
pub mod admin {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Get Log Page.
    pub const GET_LOG_PAGE: u8 = 0x02;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Abort.
    pub const ABORT: u8 = 0x08;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0a;
    /// Format NVM.
    pub const FORMAT_NVM: u8 = 0x80;
    /// Doorbell Buffer Config: shadow doorbells and their event indexes.
    pub const DOORBELL_BUFFER_CONFIG: u8 = 0x7c;
}

/// NVM command set I/O opcodes.
pub mod io {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management.
    pub const DATASET_MANAGEMENT: u8 = 0x09;
}

/// Identify CNS values.
pub mod cns {
    /// Identify Namespace.
    pub const NAMESPACE: u32 = 0x00;
    /// Identify Controller.
    pub const CONTROLLER: u32 = 0x01;
    /// Active namespace ID list.
    pub const ACTIVE_NAMESPACES: u32 = 0x02;
}

/// Feature identifier of Number of Queues.
pub const FEATURE_NUMBER_OF_QUEUES: u32 = 0x07;

/// Size of a submission queue entry.
pub const SQE_SIZE: usize = 64;
/// Size of a completion queue entry.
pub const CQE_SIZE: usize = 16;

/// A 64-byte submission queue entry, as sixteen little-endian dwords.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sqe {
    /// The command dwords.
    pub dw: [u32; 16],
}

impl Sqe {
    /// A command with `opcode` for namespace `nsid`, all other fields zero.
    pub fn new(opcode: u8, nsid: u32) -> Sqe {
        let mut dw = [0; 16];
        dw[0] = opcode as u32;
        dw[1] = nsid;
        Sqe { dw }
    }
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        self.dw[0] as u8
    }
    /// The command identifier.
    pub fn cid(&self) -> u16 {
        (self.dw[0] >> 16) as u16
    }
    /// Sets the command identifier.
    pub fn set_cid(&mut self, cid: u16) {
        self.dw[0] = (self.dw[0] & 0xffff) | ((cid as u32) << 16);
    }
    /// The namespace identifier.
    pub fn nsid(&self) -> u32 {
        self.dw[1]
    }
    /// PRP entry 1.
    pub fn prp1(&self) -> u64 {
        self.dw[6] as u64 | (self.dw[7] as u64) << 32
    }
    /// PRP entry 2.
    pub fn prp2(&self) -> u64 {
        self.dw[8] as u64 | (self.dw[9] as u64) << 32
    }
    /// Sets both PRP entries.
    pub fn set_prps(&mut self, prp1: u64, prp2: u64) {
        self.dw[6] = prp1 as u32;
        self.dw[7] = (prp1 >> 32) as u32;
        self.dw[8] = prp2 as u32;
        self.dw[9] = (prp2 >> 32) as u32;
    }
    /// Command dword `n` (10..=15).
    pub fn cdw(&self, n: usize) -> u32 {
        self.dw[n]
    }
    /// Sets command dword `n` (10..=15).
    pub fn set_cdw(&mut self, n: usize, value: u32) {
        self.dw[n] = value;
    }
    /// The starting LBA of a read/write style command (CDW10-11).
    pub fn slba(&self) -> u64 {
        self.dw[10] as u64 | (self.dw[11] as u64) << 32
    }
    /// Sets the starting LBA (CDW10-11).
    pub fn set_slba(&mut self, lba: u64) {
        self.dw[10] = lba as u32;
        self.dw[11] = (lba >> 32) as u32;
    }
    /// The entry as it lies in memory.
    pub fn to_bytes(&self) -> [u8; SQE_SIZE] {
        let mut out = [0; SQE_SIZE];
        for (chunk, dw) in out.chunks_exact_mut(4).zip(self.dw) {
            chunk.copy_from_slice(&dw.to_le_bytes());
        }
        out
    }
    /// Decodes an entry from memory.
    pub fn from_bytes(bytes: &[u8; SQE_SIZE]) -> Sqe {
        let mut dw = [0; 16];
        for (d, chunk) in dw.iter_mut().zip(bytes.chunks_exact(4)) {
            *d = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Sqe { dw }
    }
}

/// A decoded completion queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cqe {
    /// Command-specific result.
    pub dw0: u32,
    /// The submission queue head pointer at the time of completion.
    pub sq_head: u16,
    /// The submission queue the command came from.
    pub sq_id: u16,
    /// The command identifier.
    pub cid: u16,
    /// The phase tag.
    pub phase: bool,
    /// The 15-bit status field (0 = success).
    pub status: u16,
}

impl Cqe {
    /// Decodes the four dwords of an entry.
    pub fn from_dwords(dw: [u32; 4]) -> Cqe {
        Cqe {
            dw0: dw[0],
            sq_head: dw[2] as u16,
            sq_id: (dw[2] >> 16) as u16,
            cid: dw[3] as u16,
            phase: dw[3] & (1 << 16) != 0,
            status: (dw[3] >> 17) as u16,
        }
    }
    /// Encodes the entry as four dwords.
    pub fn to_dwords(&self) -> [u32; 4] {
        [
            self.dw0,
            0,
            self.sq_head as u32 | (self.sq_id as u32) << 16,
            self.cid as u32 | (self.phase as u32) << 16 | (self.status as u32) << 17,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqe_round_trips_through_bytes() {
        let mut sqe = Sqe::new(io::WRITE, 7);
        sqe.set_cid(0xbeef);
        sqe.set_prps(0x1234_5678_9000, 0xdead_0000);
        sqe.set_slba(0x1_0000_0002);
        sqe.set_cdw(12, 1 << 30 | 7);
        let back = Sqe::from_bytes(&sqe.to_bytes());
        assert_eq!(back, sqe);
        assert_eq!(back.opcode(), io::WRITE);
        assert_eq!(back.cid(), 0xbeef);
        assert_eq!(back.nsid(), 7);
        assert_eq!(back.prp1(), 0x1234_5678_9000);
        assert_eq!(back.prp2(), 0xdead_0000);
        assert_eq!(back.slba(), 0x1_0000_0002);
    }

    #[test]
    fn cqe_round_trips_through_dwords() {
        let cqe = Cqe {
            dw0: 9,
            sq_head: 17,
            sq_id: 3,
            cid: 0x4001,
            phase: true,
            status: 0x4002,
        };
        assert_eq!(Cqe::from_dwords(cqe.to_dwords()), cqe);
    }
}
