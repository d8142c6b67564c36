//! PCI binding (vfio-pci, uio_pci_generic), MMIO and DMA memory: the audited unsafe core.
//!
//! Everything exported is safe. The `unsafe` lives in two places: [`map`](crate::map) (mmap,
//! munmap and the volatile/copy access behind [`Mmio`] and [`DmaBuffer`]) and `vfio::sys` (the
//! VFIO ioctls). A device reaches memory only through a [`DmaBuffer`], which releases its
//! memory in `Drop` alone, after the device has lost access to it.
//!
//! Two ways to reach a device:
//! - [`VfioDevice`]: `vfio-pci` behind an IOMMU. The device sees only mapped buffers, at IOVAs.
//! - [`UioDevice`]: `uio_pci_generic` without an IOMMU. Buffers come from hugepages and the
//!   device sees their physical addresses, looked up per 4 KiB page in `/proc/self/pagemap`.

pub mod dma;
pub mod error;
mod map;
pub mod mmio;
pub mod pagemap;
pub mod pci;
pub mod ranges;
pub mod uio;
pub mod vfio;

pub use dma::DmaBuffer;
pub use error::{Error, Result};
pub use map::{PAGE_SIZE, round_up_to_page};
pub use mmio::Mmio;
pub use pci::{PciAddress, PciDevice, Sysfs};
pub use uio::UioDevice;
pub use vfio::VfioDevice;
