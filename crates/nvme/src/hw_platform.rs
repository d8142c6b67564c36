//! The [`Platform`] over real hardware: a PCI function bound to vfio-pci or uio_pci_generic,
//! reached through `crates/hw`.
//!
//! Register and DMA offsets are asserted, as the trait documents: a bad one is a driver bug.

use hw::{DmaBuffer, Mmio, PciAddress, Sysfs, UioDevice, VfioDevice};

use crate::platform::{DmaMemory, Platform, PlatformError};

/// A PCI NVMe function bound through vfio-pci or uio_pci_generic.
#[derive(Debug)]
pub enum HwPlatform {
    /// vfio-pci behind an IOMMU: the device reaches only our buffers, at IOVAs.
    Vfio(VfioDevice),
    /// uio_pci_generic without an IOMMU: hugepage buffers at physical addresses. Nothing checks
    /// what the device is told to reach, so this relies on the driver giving it only addresses
    /// of buffers it still holds (see `hw::uio`).
    Uio(UioDevice),
}

fn platform_error(e: hw::Error) -> PlatformError {
    match e {
        hw::Error::Io { context, source } => PlatformError::Io { context, source },
        hw::Error::BadAddress(spec) => PlatformError::BadSpec(spec),
        hw::Error::AddressSpaceExhausted(requested) => PlatformError::OutOfDmaMemory { requested },
        other => PlatformError::Unsupported(other.to_string()),
    }
}

impl HwPlatform {
    /// Opens `vfio:DDDD:BB:DD.F` or `uio:DDDD:BB:DD.F`; the function must already be bound to
    /// vfio-pci or uio_pci_generic respectively.
    pub fn open(spec: &str) -> Result<Self, PlatformError> {
        let (kind, addr) = spec
            .split_once(':')
            .ok_or_else(|| PlatformError::BadSpec(spec.to_owned()))?;
        let addr: PciAddress = addr
            .parse()
            .map_err(|_| PlatformError::BadSpec(spec.to_owned()))?;
        let sysfs = Sysfs::default();
        match kind {
            "vfio" => VfioDevice::open(&sysfs, addr).map(HwPlatform::Vfio),
            "uio" => UioDevice::open(&sysfs, addr).map(HwPlatform::Uio),
            _ => return Err(PlatformError::BadSpec(spec.to_owned())),
        }
        .map_err(platform_error)
    }

    fn bar0(&self) -> &Mmio {
        match self {
            HwPlatform::Vfio(d) => d.bar0(),
            HwPlatform::Uio(d) => d.bar0(),
        }
    }
}

/// Reports a driver bug: an offset the trait contract forbids.
fn bad_offset<T>(what: &str) -> impl FnOnce(hw::Error) -> T + '_ {
    move |e| panic!("{what}: {e}")
}

impl Platform for HwPlatform {
    type Dma = HwDma;

    fn read32(&self, offset: usize) -> u32 {
        self.bar0()
            .read32(offset)
            .unwrap_or_else(bad_offset("BAR0 read32"))
    }

    fn write32(&self, offset: usize, value: u32) {
        self.bar0()
            .write32(offset, value)
            .unwrap_or_else(bad_offset("BAR0 write32"))
    }

    fn read64(&self, offset: usize) -> u64 {
        self.bar0()
            .read64(offset)
            .unwrap_or_else(bad_offset("BAR0 read64"))
    }

    fn write64(&self, offset: usize, value: u64) {
        self.bar0()
            .write64(offset, value)
            .unwrap_or_else(bad_offset("BAR0 write64"))
    }

    fn alloc_dma(&self, len: usize) -> Result<HwDma, PlatformError> {
        match self {
            HwPlatform::Vfio(d) => d.alloc_dma(len),
            HwPlatform::Uio(d) => d.alloc_dma(len),
        }
        .map(HwDma)
        .map_err(platform_error)
    }
}

/// DMA memory from `crates/hw`: freed only when dropped, after the device lost access.
#[derive(Debug)]
pub struct HwDma(DmaBuffer);

impl DmaMemory for HwDma {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn bus_addr(&self, offset: usize) -> u64 {
        self.0
            .bus_addr(offset)
            .unwrap_or_else(bad_offset("DMA bus_addr"))
    }

    fn read(&self, offset: usize, out: &mut [u8]) {
        self.0
            .read(offset, out)
            .unwrap_or_else(bad_offset("DMA read"))
    }

    fn write(&self, offset: usize, data: &[u8]) {
        self.0
            .write(offset, data)
            .unwrap_or_else(bad_offset("DMA write"))
    }

    fn read_u32(&self, offset: usize) -> u32 {
        self.0
            .read_u32(offset)
            .unwrap_or_else(bad_offset("DMA read_u32"))
    }

    fn write_u32(&self, offset: usize, value: u32) {
        self.0
            .write_u32(offset, value)
            .unwrap_or_else(bad_offset("DMA write_u32"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_specs_are_rejected_before_touching_the_machine() {
        for spec in [
            "",
            "vfio",
            "vfio:",
            "vfio:00:02.0",
            "pci:0000:00:02.0",
            "uio:0000:00:02.9",
        ] {
            match HwPlatform::open(spec) {
                Err(PlatformError::BadSpec(s)) => assert_eq!(s, spec),
                other => panic!("{spec:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_device_is_an_error_not_a_panic() {
        let err = HwPlatform::open("uio:00ff:ff:1f.7")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PCI device 00ff:ff:1f.7"), "{err}");
    }
}
