//! A PCI function bound to `vfio-pci` behind an IOMMU (VFIO type1): the safe mode, in which
//! the device can reach only the buffers mapped for it, at IOVAs this module chooses.
//!
//! Opening is therefore safe: whatever the registers say, the device reaches only mapped
//! buffers, which are touched by volatile copies alone and unmapped before they are freed. As
//! under uio, the handle holds the function's exclusive lock, Bus Master is cleared and the
//! function reset (`VFIO_DEVICE_RESET`) before Bus Master is enabled, and again when the handle
//! is dropped; at process exit the `atexit` hook clears Bus Master.

#[allow(unsafe_code)]
mod sys;

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::dma::DmaBuffer;
use crate::error::{Error, Result};
use crate::exit::ExitGuard;
use crate::irq::Interrupt;
use crate::map::{Backing, Mapping, PAGE_SIZE, round_up_to_page};
use crate::mmio::Mmio;
use crate::pci::{self, DeviceLock, PciAddress, PciDevice, Sysfs};
use crate::ranges::RangeAllocator;

/// Where IOVAs start: above 4 GiB, clear of the x86 MSI window at 0xfee00000.
pub const IOVA_BASE: u64 = 1 << 32;
/// How much IOVA space is handed out: 64 GiB, inside a 39-bit guest address width.
pub const IOVA_SIZE: u64 = 1 << 36;

/// A VFIO container with one IOMMU domain and the IOVA space of its mappings.
///
/// Buffers share it, so it outlives the device handle: unmapping still works when the driver drops
/// its last buffers after the device (the group stays attached until then).
#[derive(Debug)]
struct Container {
    /// Declared first so the group detaches before the container closes.
    _group: File,
    file: File,
    iova: Mutex<RangeAllocator>,
}

/// A PCI function driven through `vfio-pci`.
#[derive(Debug)]
pub struct VfioDevice {
    pci: PciDevice,
    bar0: Mmio,
    device: File,
    config_offset: u64,
    container: Arc<Container>,
    /// Set once Bus Master was cleared by [`VfioDevice::stop_dma`].
    stopped: AtomicBool,
    _exit: ExitGuard,
    // Dropped last: nobody else may open the function before it is stopped.
    _lock: DeviceLock,
}

fn open_rw(path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {path}"), e))
}

impl VfioDevice {
    /// Opens `addr`, which must already be bound to `vfio-pci` and sit in an IOMMU group:
    /// attaches its group to a fresh type1 container, maps BAR0 and enables Bus Master.
    pub fn open(sysfs: &Sysfs, addr: PciAddress) -> Result<Self> {
        let pci = sysfs.device(addr)?;
        pci.require_driver("vfio-pci")?;
        let lock = pci.lock()?;
        pci.require_driver("vfio-pci")?;
        let group = pci.iommu_group()?.ok_or_else(|| {
            Error::Unsupported(format!(
                "{addr} has no IOMMU group: enable an IOMMU (intel_iommu=on) or use uio"
            ))
        })?;

        let container = open_rw("/dev/vfio/vfio")?;
        let version =
            sys::api_version(&container).map_err(|e| Error::io("VFIO_GET_API_VERSION", e))?;
        if version != sys::API_VERSION {
            return Err(Error::Unsupported(format!("VFIO API version {version}")));
        }
        let kind = [sys::TYPE1V2_IOMMU, sys::TYPE1_IOMMU]
            .into_iter()
            .find(|&k| sys::check_extension(&container, k).unwrap_or(false))
            .ok_or_else(|| Error::Unsupported("the VFIO type1 IOMMU driver".into()))?;

        let group = open_rw(&format!("/dev/vfio/{group}"))?;
        let flags = sys::group_flags(&group).map_err(|e| Error::io("VFIO_GROUP_GET_STATUS", e))?;
        if flags & sys::GROUP_VIABLE == 0 {
            return Err(Error::WrongState(format!(
                "the IOMMU group of {addr} is not viable: bind every device in it to vfio-pci"
            )));
        }
        sys::group_set_container(&group, &container)
            .map_err(|e| Error::io("VFIO_GROUP_SET_CONTAINER", e))?;
        sys::set_iommu(&container, kind).map_err(|e| {
            Error::io(
                "VFIO_SET_IOMMU (EPERM means no interrupt remapping: intremap=on)",
                e,
            )
        })?;

        let name = CString::new(addr.to_string()).expect("an address has no NUL");
        let device: File = sys::group_device_fd(&group, &name)
            .map_err(|e| Error::io(format!("VFIO_GROUP_GET_DEVICE_FD {addr}"), e))?
            .into();

        let bar = sys::region_info(&device, sys::BAR0_REGION)
            .map_err(|e| Error::io("VFIO_DEVICE_GET_REGION_INFO (BAR0)", e))?;
        if bar.flags & sys::REGION_MMAP == 0 {
            return Err(Error::Unsupported(format!(
                "BAR0 of {addr} cannot be mmapped"
            )));
        }
        let bar0 = Mmio::new(Mapping::of_file(
            &device,
            bar.size as usize,
            bar.offset,
            "BAR0",
        )?);
        let config = sys::region_info(&device, sys::CONFIG_REGION)
            .map_err(|e| Error::io("VFIO_DEVICE_GET_REGION_INFO (config)", e))?;

        let exit = ExitGuard::register(pci.config_path());
        let this = Self {
            pci,
            bar0,
            device,
            config_offset: config.offset,
            container: Arc::new(Container {
                _group: group,
                file: container,
                iova: Mutex::new(RangeAllocator::new(IOVA_BASE, IOVA_SIZE, PAGE_SIZE as u64)),
            }),
            stopped: AtomicBool::new(false),
            _exit: exit,
            _lock: lock,
        };
        // vfio-pci resets the function when the device file is first opened if it can; this
        // makes sure of it (a controller left running by an earlier owner stops here).
        this.update_command(pci::COMMAND_BUS_MASTER, 0)?;
        if let Err(e) = sys::device_reset(&this.device) {
            tracing::warn!("{addr}: VFIO_DEVICE_RESET failed ({e}); continuing behind the IOMMU");
        }
        this.enable_bus_master()?;
        Ok(this)
    }

    /// The PCI function.
    pub fn pci(&self) -> &PciDevice {
        &self.pci
    }

    /// BAR0's registers.
    pub fn bar0(&self) -> &Mmio {
        &self.bar0
    }

    /// Clears `clear` and then sets `set` in the Command register, through VFIO's config region.
    fn update_command(&self, clear: u16, set: u16) -> Result<()> {
        let at = self.config_offset + pci::COMMAND;
        let mut raw = [0; 2];
        self.device
            .read_exact_at(&mut raw, at)
            .map_err(|e| Error::io("read the Command register", e))?;
        let command = (u16::from_le_bytes(raw) & !clear) | set;
        self.device
            .write_all_at(&command.to_le_bytes(), at)
            .map_err(|e| Error::io("write the Command register", e))
    }

    fn enable_bus_master(&self) -> Result<()> {
        self.update_command(
            0,
            pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER | pci::COMMAND_INTX_DISABLE,
        )
    }

    /// Resets the function (`VFIO_DEVICE_RESET`); Bus Master is enabled again afterwards.
    /// Refused after [`VfioDevice::stop_dma`].
    pub fn reset(&self) -> Result<()> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(Error::WrongState(format!(
                "{}: DMA was stopped for good",
                self.pci.address()
            )));
        }
        self.update_command(pci::COMMAND_BUS_MASTER, 0)?;
        sys::device_reset(&self.device).map_err(|e| Error::io("VFIO_DEVICE_RESET", e))?;
        self.enable_bus_master()
    }

    /// Stops the device from reaching memory for good: clears Bus Master, then resets the
    /// function. `Ok` once Bus Master is clear (a failed reset is only logged).
    pub fn stop_dma(&self) -> Result<()> {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Err(e) = self.update_command(pci::COMMAND_BUS_MASTER, 0) {
            self.stopped.store(false, Ordering::Release);
            return Err(e);
        }
        if let Err(e) = sys::device_reset(&self.device) {
            tracing::warn!(
                "{}: Bus Master cleared, but VFIO_DEVICE_RESET failed: {e}",
                self.pci.address()
            );
        }
        Ok(())
    }

    /// Turns on MSI-X with `vectors` vectors (fewer if the function has fewer), each signalling
    /// its own [`Interrupt`]: vector `i` is element `i`. Calling it again replaces the set.
    /// The vectors stay on until the handle is dropped (closing the device turns them off).
    pub fn enable_msix(&self, vectors: u16) -> Result<Vec<Interrupt>> {
        let addr = self.pci.address();
        let info = sys::irq_info(&self.device, sys::MSIX_IRQ_INDEX)
            .map_err(|e| Error::io("VFIO_DEVICE_GET_IRQ_INFO (MSI-X)", e))?;
        if info.count == 0 {
            return Err(Error::Unsupported(format!("{addr} has no MSI-X vectors")));
        }
        let count = u32::from(vectors).min(info.count) as usize;
        let irqs = (0..count)
            .map(|_| Interrupt::new())
            .collect::<Result<Vec<_>>>()?;
        let fds: Vec<_> = irqs.iter().map(|irq| irq.as_fd()).collect();
        if count > 0 {
            // A live set is replaced by disabling it first, as the kernel requires.
            let _ = sys::set_irq_eventfds(&self.device, sys::MSIX_IRQ_INDEX, &[]);
        }
        sys::set_irq_eventfds(&self.device, sys::MSIX_IRQ_INDEX, &fds)
            .map_err(|e| Error::io(format!("VFIO_DEVICE_SET_IRQS ({count} MSI-X vectors)"), e))?;
        Ok(irqs)
    }

    /// Zeroed DMA memory of `len` bytes rounded up to 4 KiB pages, mapped for the device at a
    /// fresh IOVA range; unmapped from the IOMMU before it is freed.
    #[allow(unsafe_code)]
    pub fn alloc_dma(&self, len: usize) -> Result<DmaBuffer> {
        let len = round_up_to_page(len.max(1)).ok_or(Error::AddressSpaceExhausted(len))?;
        let mem = Arc::new(Mapping::anonymous(len, Backing::Normal)?);
        let iova = self
            .container
            .iova
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .alloc(len as u64)
            .ok_or(Error::AddressSpaceExhausted(len))?;
        // SAFETY: `mem` is a live anonymous mapping of exactly `len` bytes that nothing else uses,
        // never borrowed as a Rust reference (all access is volatile, so device writes break no
        // assumption). The lease below keeps a reference to it and is dropped before the
        // buffer's own, so the memory outlives the IOMMU mapping; if the unmap ever fails, the
        // lease leaks the memory instead. (The kernel also pins the pages while mapped.)
        let mapped = unsafe { sys::map_dma(&self.container.file, mem.addr(), iova, len as u64) };
        if let Err(e) = mapped {
            self.container.release_iova(iova, len as u64);
            return Err(Error::io(
                format!("VFIO_IOMMU_MAP_DMA of {len:#x} bytes"),
                e,
            ));
        }
        let pages = (0..len / PAGE_SIZE)
            .map(|i| iova + (i * PAGE_SIZE) as u64)
            .collect();
        let lease = IommuLease {
            container: self.container.clone(),
            mem: Some(mem.clone()),
            iova,
            len: len as u64,
        };
        Ok(DmaBuffer::new(mem, 0, len, pages, Some(Box::new(lease))))
    }
}

impl Drop for VfioDevice {
    /// Stops the device before its buffers can be unmapped and freed. Under the IOMMU a failure
    /// costs nothing worse than IOMMU faults: buffers are unmapped before they are freed.
    fn drop(&mut self) {
        if let Err(e) = self.stop_dma() {
            tracing::warn!("{}: cannot clear Bus Master: {e}", self.pci.address());
        }
    }
}

impl Container {
    fn release_iova(&self, iova: u64, len: u64) {
        let freed = self
            .iova
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .free(iova, len);
        debug_assert!(freed, "IOVA range released twice");
    }
}

/// The device's access to one buffer: revoked (IOMMU unmap) when dropped.
struct IommuLease {
    container: Arc<Container>,
    /// Kept so a failed unmap can leak the memory rather than free what the device can reach.
    mem: Option<Arc<Mapping>>,
    iova: u64,
    len: u64,
}

impl Drop for IommuLease {
    fn drop(&mut self) {
        match sys::unmap_dma(&self.container.file, self.iova, self.len) {
            Ok(()) => self.container.release_iova(self.iova, self.len),
            Err(_) => std::mem::forget(self.mem.take()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::tests::{fake_tree, rebind_fake};

    #[test]
    fn open_refuses_other_drivers_and_devices_without_an_iommu() {
        let (tmp, sysfs) = fake_tree();
        let addr = "0000:00:02.0".parse().unwrap();
        let err = VfioDevice::open(&sysfs, addr).unwrap_err().to_string();
        assert!(err.contains("bound to nvme, not vfio-pci"), "{err}");
        rebind_fake(&tmp, "vfio-pci");
        std::fs::remove_file(
            tmp.path()
                .join("devices/pci0000:00/0000:00:02.0/iommu_group"),
        )
        .unwrap();
        let err = VfioDevice::open(&sysfs, addr).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
        assert!(err.to_string().contains("no IOMMU group"), "{err}");
    }
}
