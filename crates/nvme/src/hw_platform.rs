//! Platform over crates/hw.

/// A PCI NVMe function bound through vfio-pci or uio_pci_generic.
#[derive(Debug)]
pub enum HwPlatform {}
