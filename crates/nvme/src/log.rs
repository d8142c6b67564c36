//! Log pages (Get Log Page) the driver decodes: SMART / Health, Error Information and
//! Firmware Slot Information. Each structure is parsed from the bytes the controller returned,
//! so tools print typed fields rather than offsets.

/// Log page identifiers.
pub mod lid {
    /// Error Information (64 bytes per entry).
    pub const ERROR: u8 = 0x01;
    /// SMART / Health Information (512 bytes).
    pub const SMART: u8 = 0x02;
    /// Firmware Slot Information (512 bytes).
    pub const FIRMWARE_SLOT: u8 = 0x03;
}

/// Size of the SMART / Health and Firmware Slot log pages.
pub const SMART_LOG_SIZE: usize = 512;
/// Size of one Error Information log entry.
pub const ERROR_ENTRY_SIZE: usize = 64;

fn u16_at(d: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([d[at], d[at + 1]])
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap_or([0; 8]))
}

fn u128_at(d: &[u8], at: usize) -> u128 {
    u128::from_le_bytes(d[at..at + 16].try_into().unwrap_or([0; 16]))
}

/// The SMART / Health Information log page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SmartLog {
    /// Critical warning bits (spare, temperature, reliability, read-only, backup, PMR).
    pub critical_warning: u8,
    /// Composite temperature in kelvin.
    pub temperature: u16,
    /// Available spare, percent.
    pub avail_spare: u8,
    /// Available spare threshold, percent.
    pub spare_thresh: u8,
    /// Percentage used (may exceed 100).
    pub percent_used: u8,
    /// Endurance group critical warning summary.
    pub endurance_grp_critical_warning_summary: u8,
    /// Data units (thousands of 512-byte units) read.
    pub data_units_read: u128,
    /// Data units written.
    pub data_units_written: u128,
    /// Read commands completed.
    pub host_read_commands: u128,
    /// Write commands completed.
    pub host_write_commands: u128,
    /// Minutes the controller was busy with I/O.
    pub controller_busy_time: u128,
    /// Power cycles.
    pub power_cycles: u128,
    /// Power-on hours.
    pub power_on_hours: u128,
    /// Unsafe shutdowns.
    pub unsafe_shutdowns: u128,
    /// Unrecovered data integrity errors.
    pub media_errors: u128,
    /// Error information log entries over the controller's life.
    pub num_err_log_entries: u128,
    /// Minutes above the warning composite temperature threshold.
    pub warning_temp_time: u32,
    /// Minutes above the critical composite temperature threshold.
    pub critical_comp_time: u32,
    /// Temperature sensors 1-8 in kelvin (0 = not reported).
    pub temperature_sensors: [u16; 8],
    /// Thermal management temperature 1 and 2 transition counts.
    pub thm_temp_trans_count: [u32; 2],
    /// Thermal management temperature 1 and 2 total times, seconds.
    pub thm_temp_total_time: [u32; 2],
}

impl SmartLog {
    /// Decodes the 512-byte page; `None` if fewer bytes were given.
    pub fn parse(d: &[u8]) -> Option<SmartLog> {
        if d.len() < SMART_LOG_SIZE {
            return None;
        }
        let mut temperature_sensors = [0; 8];
        for (i, t) in temperature_sensors.iter_mut().enumerate() {
            *t = u16_at(d, 200 + 2 * i);
        }
        Some(SmartLog {
            critical_warning: d[0],
            temperature: u16_at(d, 1),
            avail_spare: d[3],
            spare_thresh: d[4],
            percent_used: d[5],
            endurance_grp_critical_warning_summary: d[6],
            data_units_read: u128_at(d, 32),
            data_units_written: u128_at(d, 48),
            host_read_commands: u128_at(d, 64),
            host_write_commands: u128_at(d, 80),
            controller_busy_time: u128_at(d, 96),
            power_cycles: u128_at(d, 112),
            power_on_hours: u128_at(d, 128),
            unsafe_shutdowns: u128_at(d, 144),
            media_errors: u128_at(d, 160),
            num_err_log_entries: u128_at(d, 176),
            warning_temp_time: u32_at(d, 192),
            critical_comp_time: u32_at(d, 196),
            temperature_sensors,
            thm_temp_trans_count: [u32_at(d, 216), u32_at(d, 220)],
            thm_temp_total_time: [u32_at(d, 224), u32_at(d, 228)],
        })
    }
}

/// One Error Information log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErrorLogEntry {
    /// Unique, incrementing error count (0 = empty entry).
    pub error_count: u64,
    /// Submission queue of the failed command.
    pub sqid: u16,
    /// Command identifier of the failed command.
    pub cmdid: u16,
    /// Status field of the completion, phase tag in bit 0.
    pub status_field: u16,
    /// Byte and bit of the command parameter in error.
    pub parm_error_location: u16,
    /// First LBA that had the error.
    pub lba: u64,
    /// Namespace of the error.
    pub nsid: u32,
    /// Vendor specific log page available.
    pub vs: u8,
    /// Transport type.
    pub trtype: u8,
    /// Command specific information.
    pub cs: u64,
    /// Transport type specific information.
    pub trtype_spec_info: u16,
}

impl ErrorLogEntry {
    /// Decodes every whole 64-byte entry of `d`.
    pub fn parse_all(d: &[u8]) -> Vec<ErrorLogEntry> {
        d.chunks_exact(ERROR_ENTRY_SIZE)
            .map(|e| ErrorLogEntry {
                error_count: u64_at(e, 0),
                sqid: u16_at(e, 8),
                cmdid: u16_at(e, 10),
                status_field: u16_at(e, 12),
                parm_error_location: u16_at(e, 14),
                lba: u64_at(e, 16),
                nsid: u32_at(e, 24),
                vs: e[28],
                trtype: e[29],
                cs: u64_at(e, 32),
                trtype_spec_info: u16_at(e, 40),
            })
            .collect()
    }
}

/// The Firmware Slot Information log page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirmwareLog {
    /// Active firmware info: active slot (bits 2:0) and slot activated at next reset (6:4).
    pub afi: u8,
    /// Firmware revision of slots 1-7 (8 bytes each; all zero = empty slot).
    pub slots: [[u8; 8]; 7],
}

impl FirmwareLog {
    /// Decodes the 512-byte page; `None` if fewer bytes were given.
    pub fn parse(d: &[u8]) -> Option<FirmwareLog> {
        if d.len() < SMART_LOG_SIZE {
            return None;
        }
        let mut slots = [[0; 8]; 7];
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.copy_from_slice(&d[8 + 8 * i..16 + 8 * i]);
        }
        Some(FirmwareLog { afi: d[0], slots })
    }
}
