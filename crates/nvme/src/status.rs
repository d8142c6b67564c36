//! Completion status: the status code type and value the controller reported.
//!
//! Only `core`: the kernel driver `rnvme` compiles this file too (`kernel/rnvme/nvme_status.rs`).

use core::fmt;

/// Status code types.
pub mod sct {
    /// Generic command status.
    pub const GENERIC: u8 = 0;
    /// Command specific status.
    pub const COMMAND_SPECIFIC: u8 = 1;
    /// Media and data integrity errors.
    pub const MEDIA: u8 = 2;
}

/// Generic status codes (status code type 0).
pub mod sc {
    /// Invalid command opcode.
    pub const INVALID_OPCODE: u8 = 0x01;
    /// Invalid field in command.
    pub const INVALID_FIELD: u8 = 0x02;
    /// Data transfer error.
    pub const DATA_TRANSFER_ERROR: u8 = 0x04;
    /// Internal error.
    pub const INTERNAL_ERROR: u8 = 0x06;
    /// Command abort requested.
    pub const ABORT_REQUESTED: u8 = 0x07;
    /// Command aborted due to SQ deletion.
    pub const ABORTED_SQ_DELETION: u8 = 0x08;
    /// Invalid namespace or format.
    pub const INVALID_NAMESPACE: u8 = 0x0b;
    /// Command sequence error.
    pub const COMMAND_SEQUENCE_ERROR: u8 = 0x0c;
    /// PRP offset invalid.
    pub const PRP_OFFSET_INVALID: u8 = 0x13;
    /// LBA out of range.
    pub const LBA_OUT_OF_RANGE: u8 = 0x80;
    /// Capacity exceeded.
    pub const CAPACITY_EXCEEDED: u8 = 0x81;
}

/// Command specific status codes (status code type 1).
pub mod csc {
    /// Completion queue invalid.
    pub const INVALID_CQ: u8 = 0x00;
    /// Invalid queue identifier.
    pub const INVALID_QUEUE_ID: u8 = 0x01;
    /// Invalid queue size.
    pub const INVALID_QUEUE_SIZE: u8 = 0x02;
    /// Invalid log page.
    pub const INVALID_LOG_PAGE: u8 = 0x09;
    /// Invalid format (no such LBA format).
    pub const INVALID_FORMAT: u8 = 0x0a;
    /// Invalid queue deletion.
    pub const INVALID_QUEUE_DELETION: u8 = 0x0c;
    /// Feature identifier not saveable.
    pub const FEATURE_NOT_SAVEABLE: u8 = 0x0d;
}

/// A non-success completion status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Status code type.
    pub sct: u8,
    /// Status code.
    pub sc: u8,
    /// Do Not Retry: the same command would fail again.
    pub dnr: bool,
}

impl Status {
    /// Decodes the 15-bit status field of a completion; `None` means success.
    pub fn from_field(field: u16) -> Option<Status> {
        let sc = field as u8;
        let sct = ((field >> 8) & 7) as u8;
        if sc == 0 && sct == 0 {
            return None;
        }
        Some(Status {
            sct,
            sc,
            dnr: field & (1 << 14) != 0,
        })
    }
    /// Encodes the status as the 15-bit completion field.
    pub fn to_field(self) -> u16 {
        self.sc as u16 | (self.sct as u16 & 7) << 8 | (self.dnr as u16) << 14
    }
    /// A generic status with `sc`.
    pub fn generic(sc: u8, dnr: bool) -> Status {
        Status {
            sct: sct::GENERIC,
            sc,
            dnr,
        }
    }
    /// Whether this is the status of a command the host asked to abort.
    pub fn is_abort_requested(self) -> bool {
        self.sct == sct::GENERIC && self.sc == sc::ABORT_REQUESTED
    }
    /// A short description of well-known codes.
    pub fn description(self) -> &'static str {
        match (self.sct, self.sc) {
            (sct::GENERIC, sc::INVALID_OPCODE) => "invalid command opcode",
            (sct::GENERIC, sc::INVALID_FIELD) => "invalid field in command",
            (sct::GENERIC, 0x03) => "command ID conflict",
            (sct::GENERIC, sc::DATA_TRANSFER_ERROR) => "data transfer error",
            (sct::GENERIC, sc::INTERNAL_ERROR) => "internal error",
            (sct::GENERIC, sc::ABORT_REQUESTED) => "command abort requested",
            (sct::GENERIC, sc::ABORTED_SQ_DELETION) => "aborted due to SQ deletion",
            (sct::GENERIC, sc::INVALID_NAMESPACE) => "invalid namespace or format",
            (sct::GENERIC, sc::COMMAND_SEQUENCE_ERROR) => "command sequence error",
            (sct::GENERIC, sc::PRP_OFFSET_INVALID) => "PRP offset invalid",
            (sct::GENERIC, sc::LBA_OUT_OF_RANGE) => "LBA out of range",
            (sct::GENERIC, sc::CAPACITY_EXCEEDED) => "capacity exceeded",
            (sct::GENERIC, 0x82) => "namespace not ready",
            (sct::COMMAND_SPECIFIC, csc::INVALID_CQ) => "invalid completion queue",
            (sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_ID) => "invalid queue identifier",
            (sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_SIZE) => "invalid queue size",
            (sct::COMMAND_SPECIFIC, 0x03) => "abort command limit exceeded",
            (sct::COMMAND_SPECIFIC, csc::INVALID_LOG_PAGE) => "invalid log page",
            (sct::COMMAND_SPECIFIC, csc::INVALID_FORMAT) => "invalid format",
            (sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_DELETION) => "invalid queue deletion",
            (sct::COMMAND_SPECIFIC, csc::FEATURE_NOT_SAVEABLE) => "feature not saveable",
            (sct::MEDIA, 0x80) => "write fault",
            (sct::MEDIA, 0x81) => "unrecovered read error",
            _ => "unknown status",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (type {:#x}, code {:#04x}{})",
            self.description(),
            self.sct,
            self.sc,
            if self.dnr { ", do not retry" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_none_and_fields_round_trip() {
        assert_eq!(Status::from_field(0), None);
        assert_eq!(Status::from_field(1 << 14), None);
        let s = Status {
            sct: sct::MEDIA,
            sc: 0x81,
            dnr: true,
        };
        assert_eq!(Status::from_field(s.to_field()), Some(s));
        assert!(s.to_string().contains("unrecovered read error"));
    }
}
