//! PCI binding (vfio-pci, uio_pci_generic), MMIO and DMA memory: the audited unsafe core.
//!
//! Everything exported is safe. `unsafe_code` is denied crate-wide and allowed in exactly three
//! places: `map` (mmap, madvise, munmap and the volatile access behind [`Mmio`] and
//! [`DmaBuffer`]), `vfio::sys` (the VFIO ioctls) and the one `VFIO_IOMMU_MAP_DMA` call in
//! [`VfioDevice::alloc_dma`]. A device reaches memory only through a [`DmaBuffer`], which
//! releases its memory in `Drop` alone, after the device has lost access to it (IOMMU unmap
//! under VFIO; under uio the memory stays ours until Bus Master is cleared, see [`uio`]).
//!
//! Two ways to reach a device:
//! - [`VfioDevice`]: `vfio-pci` behind an IOMMU. The device sees only mapped buffers, at IOVAs.
//! - [`UioDevice`]: `uio_pci_generic` without an IOMMU. Buffers come from hugepages and the
//!   device sees their physical addresses, looked up per 4 KiB page in `/proc/self/pagemap`.

#![deny(unsafe_code)]

pub mod dma;
pub mod error;
#[allow(unsafe_code)]
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
