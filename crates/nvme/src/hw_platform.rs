//! The [`Platform`] over real hardware: a PCI function bound to vfio-pci or uio_pci_generic,
//! reached through `crates/hw`.
//!
//! Register and DMA offsets are asserted, as the trait documents: a bad one is a driver bug.
//!
//! Under vfio the IOMMU confines the device, so [`HwPlatform::open`] is safe. Under uio the
//! device can reach all of memory; the caller opens the function with the `unsafe`
//! [`hw::UioDevice::open`], whose contract the [`crate::Controller`] keeps (it only gives the
//! device bus addresses of buffers it holds, and never frees one the device may still reach),
//! and hands the handle over with [`HwPlatform::from_uio`]. The handle is then owned by the
//! platform: no other code can write its registers.

use hw::{DmaBuffer, Mmio, PciAddress, Sysfs, UioDevice, VfioDevice};

use crate::platform::{Platform, PlatformError};

/// A PCI NVMe function bound through vfio-pci or uio_pci_generic.
#[derive(Debug)]
pub struct HwPlatform(Device);

/// Private, so that safe code can neither build a platform around a device it did not open
/// nor reach the device handle (and its registers) through one.
#[derive(Debug)]
enum Device {
    /// vfio-pci behind an IOMMU: the device reaches only our buffers, at IOVAs.
    Vfio(VfioDevice),
    /// uio_pci_generic without an IOMMU: hugepage buffers at physical addresses.
    Uio(UioDevice),
}

/// DMA memory from `crates/hw`: freed only when dropped, after the device lost access.
pub type HwDma = DmaBuffer;

fn platform_error(e: hw::Error) -> PlatformError {
    match e {
        hw::Error::Io { context, source } => PlatformError::Io { context, source },
        hw::Error::BadAddress(spec) => PlatformError::BadSpec(spec),
        hw::Error::AddressSpaceExhausted(requested) => PlatformError::OutOfDmaMemory { requested },
        hw::Error::Unsupported(what) => PlatformError::Unsupported(what),
        other => PlatformError::Unsupported(other.to_string()),
    }
}

/// Splits `vfio:DDDD:BB:DD.F` / `uio:DDDD:BB:DD.F` into the mode and the address.
pub fn parse_spec(spec: &str) -> Result<(&str, PciAddress), PlatformError> {
    let bad = || PlatformError::BadSpec(spec.to_owned());
    let (kind, addr) = spec.split_once(':').ok_or_else(bad)?;
    let addr: PciAddress = addr.parse().map_err(|_| bad())?;
    match kind {
        "vfio" | "uio" => Ok((kind, addr)),
        _ => Err(bad()),
    }
}

impl HwPlatform {
    /// Opens `vfio:DDDD:BB:DD.F`; the function must already be bound to vfio-pci. A
    /// `uio:` device is refused here: open it with [`hw::UioDevice::open`] (unsafe: no IOMMU)
    /// and use [`HwPlatform::from_uio`].
    pub fn open(spec: &str) -> Result<Self, PlatformError> {
        let (kind, addr) = parse_spec(spec)?;
        if kind == "uio" {
            return Err(PlatformError::Unsupported(format!(
                "{spec}: without an IOMMU the device is opened with the unsafe hw::UioDevice::open \
                 and handed over with HwPlatform::from_uio"
            )));
        }
        Self::open_vfio(addr)
    }

    /// Opens the function at `addr`, bound to vfio-pci.
    pub fn open_vfio(addr: PciAddress) -> Result<Self, PlatformError> {
        VfioDevice::open(&Sysfs::default(), addr)
            .map(|d| HwPlatform(Device::Vfio(d)))
            .map_err(platform_error)
    }

    /// A platform over a function opened through uio. Opening it was the unsafe step; the
    /// controller built on this platform keeps that contract.
    pub fn from_uio(device: UioDevice) -> Self {
        HwPlatform(Device::Uio(device))
    }

    /// The function's PCI address.
    pub fn address(&self) -> PciAddress {
        match &self.0 {
            Device::Vfio(d) => d.pci().address(),
            Device::Uio(d) => d.pci().address(),
        }
    }

    fn bar0(&self) -> &Mmio {
        match &self.0 {
            Device::Vfio(d) => d.bar0(),
            Device::Uio(d) => d.bar0(),
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
        match &self.0 {
            Device::Vfio(d) => d.alloc_dma(len),
            Device::Uio(d) => d.alloc_dma(len),
        }
        .map_err(platform_error)
    }

    fn stop_dma(&self) -> Result<(), PlatformError> {
        match &self.0 {
            Device::Vfio(d) => d.stop_dma(),
            Device::Uio(d) => d.stop_dma(),
        }
        .map_err(platform_error)
    }

    fn enable_interrupts(
        &self,
        vectors: u16,
    ) -> Result<Vec<std::sync::Arc<hw::Interrupt>>, PlatformError> {
        match &self.0 {
            Device::Vfio(d) => Ok(d
                .enable_msix(vectors)
                .map_err(platform_error)?
                .into_iter()
                .map(std::sync::Arc::new)
                .collect()),
            Device::Uio(_) => Err(PlatformError::Unsupported(
                "interrupts through uio_pci_generic (it has no MSI-X): poll instead".into(),
            )),
        }
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
    fn an_unsupported_machine_is_named_once() {
        let err = platform_error(hw::Error::Unsupported("no hugepages".into())).to_string();
        assert_eq!(err, "unsupported: no hugepages");
    }

    #[test]
    fn a_missing_device_is_an_error_not_a_panic() {
        let err = HwPlatform::open("vfio:00ff:ff:1f.7")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PCI device 00ff:ff:1f.7"), "{err}");
    }

    #[test]
    fn uio_is_not_opened_by_the_safe_constructor() {
        let err = HwPlatform::open("uio:00ff:ff:1f.7")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsafe hw::UioDevice::open"), "{err}");
    }
}
