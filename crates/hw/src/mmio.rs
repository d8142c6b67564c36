//! A mapped BAR: bounds-checked volatile 32/64-bit register access, unmapped on drop.

use std::fmt;

use crate::error::Result;
#[cfg(test)]
use crate::map::Backing;
use crate::map::Mapping;

/// A memory-mapped register window (a PCI BAR), accessed only by volatile, aligned loads and
/// stores. Writes are ordered after every earlier store, so a doorbell write publishes the
/// queue entries written before it.
pub struct Mmio {
    map: Mapping,
}

impl fmt::Debug for Mmio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mmio")
            .field("len", &self.map.len())
            .finish()
    }
}

impl Mmio {
    pub(crate) fn new(map: Mapping) -> Self {
        Self { map }
    }

    /// Plain zeroed memory that behaves like a register file (reads return what was written).
    /// Test-only: `Mmio` is `Sync`, and racing volatile stores from two threads are fine on a
    /// BAR but would be a data race on ordinary memory.
    #[cfg(test)]
    pub(crate) fn anonymous(len: usize) -> Result<Self> {
        Mapping::anonymous(len, Backing::Normal).map(Self::new)
    }

    /// Size of the window in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the window is empty (never, for a mapped BAR).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Reads the 32-bit register at `offset` (4-byte aligned, inside the window).
    pub fn read32(&self, offset: usize) -> Result<u32> {
        self.map.read_u32(offset)
    }

    /// Writes the 32-bit register at `offset` (4-byte aligned, inside the window).
    pub fn write32(&self, offset: usize, value: u32) -> Result<()> {
        self.map.write_u32(offset, value)
    }

    /// Reads the 64-bit register at `offset` (8-byte aligned, inside the window).
    pub fn read64(&self, offset: usize) -> Result<u64> {
        self.map.read_u64(offset)
    }

    /// Writes the 64-bit register at `offset` (8-byte aligned, inside the window).
    pub fn write64(&self, offset: usize, value: u64) -> Result<()> {
        self.map.write_u64(offset, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn registers_round_trip_and_bounds_hold() {
        let regs = Mmio::anonymous(0x4000).unwrap();
        assert_eq!(regs.len(), 0x4000);
        regs.write64(0x28, 0xdead_beef_0000_1000).unwrap();
        assert_eq!(regs.read64(0x28).unwrap(), 0xdead_beef_0000_1000);
        assert_eq!(regs.read32(0x2c).unwrap(), 0xdead_beef);
        regs.write32(0x3ffc, 7).unwrap();
        assert_eq!(regs.read32(0x3ffc).unwrap(), 7);
        assert!(matches!(
            regs.read32(0x4000),
            Err(Error::OutOfBounds { offset: 0x4000, .. })
        ));
        assert!(regs.write64(0x3ffc, 0).is_err());
        assert!(regs.read64(0x1004).is_err());
        assert!(regs.write32(usize::MAX - 1, 0).is_err());
    }
}
