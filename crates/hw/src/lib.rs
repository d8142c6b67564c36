//! PCI binding (vfio-pci, uio_pci_generic), MMIO and DMA memory: the audited unsafe core.
//!
//! `unsafe_code` is denied crate-wide and allowed in a few small places: `map` (mmap, madvise,
//! mlock, munmap and the volatile and atomic access behind [`Mmio`] and [`DmaBuffer`]),
//! `vfio::sys` (the VFIO ioctls), the one `VFIO_IOMMU_MAP_DMA` call in
//! [`VfioDevice::alloc_dma`], the `atexit` registration of the exit hook, [`SharedWords`]'s
//! `Sync`, and the declarations and implementations of the unsafe API below. A device reaches
//! memory only through a [`DmaBuffer`], which releases its memory in `Drop` alone, after the
//! device has lost access to it (IOMMU unmap under VFIO; under uio the memory stays ours until
//! Bus Master is cleared, see [`uio`]).
//!
//! Two ways to reach a device:
//! - [`VfioDevice`]: `vfio-pci` behind an IOMMU. The device sees only mapped buffers, at IOVAs.
//!   Opening it is safe.
//! - [`UioDevice`]: `uio_pci_generic` without an IOMMU. Buffers come from hugepages and the
//!   device sees their physical addresses, looked up per 4 KiB page in `/proc/self/pagemap`.
//!
//! Either handle owns its function exclusively (a lock per PCI address, held for the handle's
//! life, in any process), resets it before enabling Bus Master, and clears Bus Master and resets
//! it again when dropped; at process exit an `atexit` hook clears Bus Master.
//!
//! # What stays `unsafe`, and the contract of each
//!
//! - [`UioDevice::open`]: without an IOMMU, whatever BAR0's registers and the device's queues
//!   say is DMA into physical memory. The caller promises the device is only ever given bus
//!   addresses of live buffers of this handle, and that buffers it may still use are not
//!   dropped before it is stopped (see the function's `# Safety`).
//! - [`DmaMemory`], an `unsafe trait`: implementors promise truthful bus addresses of memory
//!   they own until dropped, touched only by copies and volatile accesses. Implemented here
//!   for [`DmaBuffer`] and for [`sim::SimDma`] (the simulated bus of device models), so safe
//!   drivers generic over it cannot be fed a lying implementation. Its `read_u32`/`write_u32`
//!   are atomic 32-bit accesses sound from several threads at once, which is what lets
//!   [`SharedWords`] (`unsafe impl Sync`) share DMA memory between threads without a lock.
//! - [`PciDevice::bind`] and [`PciDevice::unbind`]: rebinding a function that some other
//!   user-space driver in this process still rings doorbells of. Both fail while a handle of
//!   this crate holds the function.
//!
//! Config space writes (Bus Master, the Command register) are crate-private.

#![deny(unsafe_code)]

pub mod dma;
#[allow(unsafe_code)]
pub mod dma_memory;
pub mod error;
mod exit;
pub mod irq;
#[allow(unsafe_code)]
mod map;
pub mod mmio;
pub mod pagemap;
pub mod pci;
pub mod ranges;
pub mod shared_words;
pub mod sim;
pub mod uio;
pub mod vfio;

pub use dma::DmaBuffer;
pub use dma_memory::{DMA_PAGE_SIZE, DmaMemory};
pub use error::{Error, Result};
pub use irq::Interrupt;
pub use map::{PAGE_SIZE, round_up_to_page};
pub use mmio::Mmio;
pub use pci::{PciAddress, PciDevice, Sysfs};
pub use shared_words::SharedWords;
pub use uio::UioDevice;
pub use vfio::VfioDevice;
