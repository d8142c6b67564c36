//! What Identify Controller and Identify Namespace report, decoded.

/// The fields of Identify Controller the driver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerInfo {
    /// PCI vendor ID.
    pub vendor_id: u16,
    /// Serial number.
    pub serial: String,
    /// Model number.
    pub model: String,
    /// Firmware revision.
    pub firmware: String,
    /// Maximum data transfer size as a power of two of the minimum page size (0 = no limit).
    pub mdts: u8,
    /// Abort command limit (0-based).
    pub abort_limit: u8,
    /// Number of namespaces.
    pub namespace_count: u32,
    /// Optional admin command support bits.
    pub oacs: u16,
    /// Optional NVM command support bits.
    pub oncs: u16,
    /// Whether a volatile write cache is present.
    pub volatile_write_cache: bool,
    /// RTD3 entry latency in microseconds (bounds shutdown; 0 = not reported).
    pub rtd3e_us: u32,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

impl ControllerInfo {
    /// Decodes the 4 KiB Identify Controller data structure.
    pub fn parse(data: &[u8; 4096]) -> ControllerInfo {
        ControllerInfo {
            vendor_id: u16::from_le_bytes([data[0], data[1]]),
            serial: text(&data[4..24]),
            model: text(&data[24..64]),
            firmware: text(&data[64..72]),
            mdts: data[77],
            abort_limit: data[258],
            namespace_count: u32::from_le_bytes([data[516], data[517], data[518], data[519]]),
            oacs: u16::from_le_bytes([data[256], data[257]]),
            oncs: u16::from_le_bytes([data[520], data[521]]),
            volatile_write_cache: data[525] & 1 != 0,
            rtd3e_us: u32::from_le_bytes([data[88], data[89], data[90], data[91]]),
        }
    }

    /// Whether Write Zeroes is supported.
    pub fn supports_write_zeroes(&self) -> bool {
        self.oncs & (1 << 3) != 0
    }

    /// Whether Doorbell Buffer Config (shadow doorbells) is supported.
    pub fn supports_doorbell_buffer(&self) -> bool {
        self.oacs & (1 << 8) != 0
    }

    /// Whether Dataset Management is supported.
    pub fn supports_deallocate(&self) -> bool {
        self.oncs & (1 << 2) != 0
    }
}

/// An active namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespace {
    /// Namespace ID.
    pub id: u32,
    /// Size in logical blocks.
    pub blocks: u64,
    /// Logical block size as a power of two.
    pub block_shift: u8,
    /// Metadata bytes per block in the current format (the driver supports only 0).
    pub metadata_size: u16,
}

impl Namespace {
    /// Decodes Identify Namespace data for namespace `id`.
    pub fn parse(id: u32, data: &[u8; 4096]) -> Namespace {
        let format = (data[26] & 0xf) as usize;
        let lbaf = &data[128 + 4 * format..132 + 4 * format];
        Namespace {
            id,
            blocks: u64::from_le_bytes(data[0..8].try_into().unwrap_or([0; 8])),
            block_shift: lbaf[2],
            metadata_size: u16::from_le_bytes([lbaf[0], lbaf[1]]),
        }
    }

    /// Logical block size in bytes.
    pub fn block_size(&self) -> usize {
        1 << self.block_shift
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.blocks << self.block_shift
    }
}
