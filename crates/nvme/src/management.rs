//! Management commands on the admin queue for tools: log pages, features and raw Identify.
//! Each takes the admin queue lock for one command, like the driver's own admin work.

use crate::controller::Controller;
use crate::error::{Error, Result};
use crate::log::{ERROR_ENTRY_SIZE, ErrorLogEntry, FirmwareLog, SMART_LOG_SIZE, SmartLog, lid};
use crate::platform::{DMA_PAGE_SIZE, Platform};

/// A raw admin command for [`Controller::admin_passthru`]: the driver fills in the command
/// identifier and the data pointer; everything else is the caller's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdminPassthru {
    /// Opcode.
    pub opcode: u8,
    /// Namespace ID.
    pub nsid: u32,
    /// Command dwords 10 to 15.
    pub cdw: [u32; 6],
    /// Bytes of data (0 to 4096).
    pub data_len: usize,
    /// Whether the data goes to the controller (else it comes from it).
    pub to_device: bool,
}

/// Admin opcodes that would take the driver's own state from under it: queue creation and
/// deletion, Abort, Asynchronous Event Request (never completes on its own), Doorbell Buffer
/// Config, and Format NVM (see [`Controller::format_nvm`]).
pub const RESERVED_ADMIN_OPCODES: [u8; 8] = [0x00, 0x01, 0x04, 0x05, 0x08, 0x0c, 0x7c, 0x80];

/// The namespace ID that means "the controller as a whole" in log pages and features.
pub const ALL_NAMESPACES: u32 = 0xffff_ffff;

impl<P: Platform> Controller<P> {
    fn usable(&self) -> Result<()> {
        if self.is_dead() {
            return Err(Error::ControllerDead);
        }
        Ok(())
    }

    /// Identify with any CNS: the raw 4 KiB data structure.
    pub fn identify_raw(&self, cns: u32, nsid: u32) -> Result<[u8; DMA_PAGE_SIZE]> {
        self.usable()?;
        self.shared
            .lock_admin()
            .identify(&self.shared.platform, cns, nsid)
    }

    /// Get Log Page: the first `len` bytes (4 to 4096, a multiple of 4) of log `lid`.
    pub fn get_log_page(&self, lid: u8, nsid: u32, len: usize) -> Result<Vec<u8>> {
        self.usable()?;
        self.shared
            .lock_admin()
            .get_log_page(&self.shared.platform, lid, nsid, len)
    }

    /// The SMART / Health Information log of the controller (`nsid` = [`ALL_NAMESPACES`]) or
    /// of one namespace.
    pub fn smart_log(&self, nsid: u32) -> Result<SmartLog> {
        let page = self.get_log_page(lid::SMART, nsid, SMART_LOG_SIZE)?;
        SmartLog::parse(&page).ok_or_else(|| Error::InvalidRequest("short SMART log".into()))
    }

    /// The newest `entries` Error Information log entries (at most what one page holds).
    pub fn error_log(&self, entries: usize) -> Result<Vec<ErrorLogEntry>> {
        let entries = entries.clamp(1, DMA_PAGE_SIZE / ERROR_ENTRY_SIZE);
        let page = self.get_log_page(lid::ERROR, ALL_NAMESPACES, entries * ERROR_ENTRY_SIZE)?;
        Ok(ErrorLogEntry::parse_all(&page))
    }

    /// The Firmware Slot Information log.
    pub fn firmware_log(&self) -> Result<FirmwareLog> {
        let page = self.get_log_page(lid::FIRMWARE_SLOT, ALL_NAMESPACES, SMART_LOG_SIZE)?;
        FirmwareLog::parse(&page).ok_or_else(|| Error::InvalidRequest("short firmware log".into()))
    }

    /// Get Features `fid` (`select`: 0 current, 1 default, 2 saved, 3 capabilities); returns
    /// completion dword 0, which holds the value of the features the driver knows.
    pub fn get_feature(&self, fid: u8, select: u8, nsid: u32, cdw11: u32) -> Result<u32> {
        if select > 3 {
            return Err(Error::InvalidRequest(format!(
                "feature select {select} (0 current, 1 default, 2 saved, 3 capabilities)"
            )));
        }
        self.usable()?;
        self.shared
            .lock_admin()
            .get_features(&self.shared.platform, fid, select, nsid, cdw11)
    }

    /// Set Features `fid` to `value`; returns completion dword 0. The Number of Queues feature
    /// is the driver's own (set once when the controller is brought up) and is refused here.
    pub fn set_feature(&self, fid: u8, nsid: u32, value: u32, save: bool) -> Result<u32> {
        if u32::from(fid) == crate::command::FEATURE_NUMBER_OF_QUEUES {
            return Err(Error::InvalidRequest(
                "the number of queues is set by the driver when it brings the controller up".into(),
            ));
        }
        self.usable()?;
        self.shared
            .lock_admin()
            .set_features(&self.shared.platform, fid, nsid, value, save)
    }

    /// Format NVM: namespace `nsid` to LBA format `lbaf` (0-63), erasing it (`ses` 0 none,
    /// 1 user data erase, 2 cryptographic erase). Its block size may change, so the controller
    /// is shut down afterwards (open it again to see the new format), and every queue pair must
    /// be closed first: none may keep sending I/O sized for the old format.
    pub fn format_nvm(self, nsid: u32, lbaf: u8, ses: u8) -> Result<()> {
        if lbaf > 63 || ses > 2 {
            return Err(Error::InvalidRequest(format!(
                "LBA format {lbaf} (0-63) or secure erase setting {ses} (0-2) out of range"
            )));
        }
        if std::sync::Arc::strong_count(&self.shared) != 1 {
            return Err(Error::InvalidRequest(
                "close every queue pair before formatting".into(),
            ));
        }
        self.usable()?;
        self.shared
            .lock_admin()
            .format_nvm(&self.shared.platform, nsid, lbaf, ses)
    }

    /// Sends a raw admin command with up to one page of data; returns completion dword 0 and the
    /// data read. The opcodes the driver manages itself ([`RESERVED_ADMIN_OPCODES`]) are refused.
    pub fn admin_passthru(&self, cmd: &AdminPassthru, data: &[u8]) -> Result<(u32, Vec<u8>)> {
        if RESERVED_ADMIN_OPCODES.contains(&cmd.opcode) {
            return Err(Error::InvalidRequest(format!(
                "admin opcode {:#04x} is the driver's own (queues, abort, events, format)",
                cmd.opcode
            )));
        }
        if cmd.data_len > DMA_PAGE_SIZE || (cmd.to_device && data.len() < cmd.data_len) {
            return Err(Error::InvalidRequest(format!(
                "passthrough data is at most {DMA_PAGE_SIZE} bytes, and all of it given when \
                 writing ({} of {})",
                data.len(),
                cmd.data_len
            )));
        }
        self.usable()?;
        let mut sqe = crate::command::Sqe::new(cmd.opcode, cmd.nsid);
        for (i, value) in cmd.cdw.iter().enumerate() {
            sqe.set_cdw(10 + i, *value);
        }
        self.shared.lock_admin().run_with_page(
            &self.shared.platform,
            sqe,
            data,
            cmd.to_device,
            cmd.data_len,
        )
    }
}
