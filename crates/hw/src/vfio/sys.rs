//! The VFIO ioctls this crate uses, with the kernel's `#[repr(C)]` layouts from
//! `<linux/vfio.h>`. Every call is one small wrapper so each `unsafe` stays auditable.

use std::ffi::{CStr, c_ulong};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `VFIO_TYPE`: the ioctl magic.
const VFIO_TYPE: c_ulong = b';' as c_ulong;
/// `VFIO_BASE`: the first ioctl number.
const VFIO_BASE: c_ulong = 100;

/// `_IO(VFIO_TYPE, VFIO_BASE + nr)`: VFIO ioctls carry no size or direction bits.
const fn vfio_io(nr: c_ulong) -> c_ulong {
    (VFIO_TYPE << 8) | (VFIO_BASE + nr)
}

const GET_API_VERSION: c_ulong = vfio_io(0);
const CHECK_EXTENSION: c_ulong = vfio_io(1);
const SET_IOMMU: c_ulong = vfio_io(2);
const GROUP_GET_STATUS: c_ulong = vfio_io(3);
const GROUP_SET_CONTAINER: c_ulong = vfio_io(4);
const GROUP_GET_DEVICE_FD: c_ulong = vfio_io(6);
const DEVICE_GET_REGION_INFO: c_ulong = vfio_io(8);
const DEVICE_GET_IRQ_INFO: c_ulong = vfio_io(9);
const DEVICE_SET_IRQS: c_ulong = vfio_io(10);
const DEVICE_RESET: c_ulong = vfio_io(11);
const IOMMU_MAP_DMA: c_ulong = vfio_io(13);
const IOMMU_UNMAP_DMA: c_ulong = vfio_io(14);

/// `VFIO_API_VERSION`.
pub const API_VERSION: i32 = 0;
/// `VFIO_TYPE1_IOMMU`.
pub const TYPE1_IOMMU: c_ulong = 1;
/// `VFIO_TYPE1v2_IOMMU`.
pub const TYPE1V2_IOMMU: c_ulong = 3;
/// `VFIO_GROUP_FLAGS_VIABLE`: every device of the group is bound to a VFIO driver.
pub const GROUP_VIABLE: u32 = 1;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_MMAP: u32 = 1 << 2;
/// `VFIO_PCI_BAR0_REGION_INDEX`.
pub const BAR0_REGION: u32 = 0;
/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const CONFIG_REGION: u32 = 7;

/// `VFIO_PCI_MSIX_IRQ_INDEX`.
pub const MSIX_IRQ_INDEX: u32 = 2;
/// `VFIO_IRQ_SET_DATA_NONE`.
const IRQ_SET_DATA_NONE: u32 = 1;
/// `VFIO_IRQ_SET_DATA_EVENTFD`.
const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// `VFIO_IRQ_SET_ACTION_TRIGGER`.
const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IrqInfo {
    argsz: u32,
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    index: u32,
    /// How many vectors the interrupt index has.
    pub count: u32,
}

/// `struct vfio_irq_set` without its data: `count` 32-bit eventfds follow it.
#[repr(C)]
#[derive(Debug)]
struct IrqSet {
    argsz: u32,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
}

/// `struct vfio_group_status`.
#[repr(C)]
#[derive(Debug, Default)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

/// `struct vfio_region_info` (without capabilities).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RegionInfo {
    argsz: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    index: u32,
    cap_offset: u32,
    /// Region size in bytes.
    pub size: u64,
    /// Offset of the region in the device file.
    pub offset: u64,
}

/// `struct vfio_iommu_type1_dma_map`.
#[repr(C)]
#[derive(Debug)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

/// `struct vfio_iommu_type1_dma_unmap` (without the dirty bitmap).
#[repr(C)]
#[derive(Debug)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

const DMA_MAP_READ: u32 = 1;
const DMA_MAP_WRITE: u32 = 1 << 1;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn argsz<T>() -> u32 {
    size_of::<T>() as u32
}

/// `VFIO_GET_API_VERSION` on a container.
pub fn api_version(container: impl AsFd) -> io::Result<i32> {
    // SAFETY: this request takes no argument and only returns an integer.
    check(unsafe { libc::ioctl(container.as_fd().as_raw_fd(), GET_API_VERSION) })
}

/// `VFIO_CHECK_EXTENSION`: whether the container supports IOMMU type `kind`.
pub fn check_extension(container: impl AsFd, kind: c_ulong) -> io::Result<bool> {
    // SAFETY: this request takes its argument by value and only returns an integer.
    let ret = check(unsafe { libc::ioctl(container.as_fd().as_raw_fd(), CHECK_EXTENSION, kind) })?;
    Ok(ret > 0)
}

/// `VFIO_SET_IOMMU`: selects the IOMMU model once a group is attached.
pub fn set_iommu(container: impl AsFd, kind: c_ulong) -> io::Result<()> {
    // SAFETY: this request takes its argument by value.
    check(unsafe { libc::ioctl(container.as_fd().as_raw_fd(), SET_IOMMU, kind) }).map(drop)
}

/// `VFIO_GROUP_GET_STATUS`: the group's flags.
pub fn group_flags(group: impl AsFd) -> io::Result<u32> {
    let mut status = GroupStatus {
        argsz: argsz::<GroupStatus>(),
        flags: 0,
    };
    // SAFETY: the kernel writes at most `argsz` bytes into the live `GroupStatus` it points to.
    check(unsafe { libc::ioctl(group.as_fd().as_raw_fd(), GROUP_GET_STATUS, &mut status) })?;
    Ok(status.flags)
}

/// `VFIO_GROUP_SET_CONTAINER`: attaches the group to the container.
pub fn group_set_container(group: impl AsFd, container: impl AsFd) -> io::Result<()> {
    let fd: libc::c_int = container.as_fd().as_raw_fd();
    // SAFETY: the kernel reads one `int` (the container fd) through the pointer, which is live.
    check(unsafe { libc::ioctl(group.as_fd().as_raw_fd(), GROUP_SET_CONTAINER, &fd) }).map(drop)
}

/// `VFIO_GROUP_GET_DEVICE_FD`: a file for the device named `name` (its PCI address).
pub fn group_device_fd(group: impl AsFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: the kernel reads a NUL-terminated string through the pointer, which is live.
    let fd = check(unsafe {
        libc::ioctl(
            group.as_fd().as_raw_fd(),
            GROUP_GET_DEVICE_FD,
            name.as_ptr(),
        )
    })?;
    // SAFETY: on success the ioctl returns a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `VFIO_DEVICE_GET_REGION_INFO` for region `index`.
pub fn region_info(device: impl AsFd, index: u32) -> io::Result<RegionInfo> {
    let mut info = RegionInfo {
        argsz: argsz::<RegionInfo>(),
        index,
        ..RegionInfo::default()
    };
    // SAFETY: the kernel writes at most `argsz` bytes into the live `RegionInfo` it points to.
    check(unsafe {
        libc::ioctl(
            device.as_fd().as_raw_fd(),
            DEVICE_GET_REGION_INFO,
            &mut info,
        )
    })?;
    Ok(info)
}

/// `VFIO_DEVICE_GET_IRQ_INFO` for interrupt index `index`.
pub fn irq_info(device: impl AsFd, index: u32) -> io::Result<IrqInfo> {
    let mut info = IrqInfo {
        argsz: argsz::<IrqInfo>(),
        index,
        ..IrqInfo::default()
    };
    // SAFETY: the kernel writes at most `argsz` bytes into the live `IrqInfo` it points to.
    check(unsafe { libc::ioctl(device.as_fd().as_raw_fd(), DEVICE_GET_IRQ_INFO, &mut info) })?;
    Ok(info)
}

/// `VFIO_DEVICE_SET_IRQS`: vectors `0..eventfds.len()` of interrupt `index` signal the eventfds,
/// in order (the kernel keeps its own references to them). An empty list disables the index.
pub fn set_irq_eventfds(
    device: impl AsFd,
    index: u32,
    eventfds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let header = size_of::<IrqSet>();
    let fds: Vec<i32> = eventfds.iter().map(|fd| fd.as_raw_fd()).collect();
    let count =
        u32::try_from(fds.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let set = IrqSet {
        argsz: (header + size_of_val(fds.as_slice())) as u32,
        flags: IRQ_SET_ACTION_TRIGGER
            | if fds.is_empty() {
                IRQ_SET_DATA_NONE
            } else {
                IRQ_SET_DATA_EVENTFD
            },
        index,
        start: 0,
        count,
    };
    // The header and the fds, contiguous, in u32 words (the structure's alignment).
    let mut words = vec![0u32; set.argsz.div_ceil(4) as usize];
    words[..5].copy_from_slice(&[set.argsz, set.flags, set.index, set.start, set.count]);
    for (word, fd) in words[header / 4..].iter_mut().zip(&fds) {
        *word = *fd as u32;
    }
    // SAFETY: the kernel reads `argsz` bytes of the live, u32-aligned buffer: the `vfio_irq_set`
    // header and `count` eventfds, each an open file descriptor borrowed for the call.
    check(unsafe { libc::ioctl(device.as_fd().as_raw_fd(), DEVICE_SET_IRQS, words.as_ptr()) })
        .map(drop)
}

/// `VFIO_DEVICE_RESET`: a function-level reset.
pub fn device_reset(device: impl AsFd) -> io::Result<()> {
    // SAFETY: this request takes no argument.
    check(unsafe { libc::ioctl(device.as_fd().as_raw_fd(), DEVICE_RESET) }).map(drop)
}

/// `VFIO_IOMMU_MAP_DMA`: lets the device read and write `[vaddr, vaddr + size)` at `iova`.
///
/// # Safety
///
/// `[vaddr, vaddr + size)` must be memory the caller owns for as long as the mapping exists
/// (until [`unmap_dma`] succeeds), and no Rust reference may assume it is unchanging, since
/// the device can write it at any time.
pub unsafe fn map_dma(container: impl AsFd, vaddr: usize, iova: u64, size: u64) -> io::Result<()> {
    let map = DmaMap {
        argsz: argsz::<DmaMap>(),
        flags: DMA_MAP_READ | DMA_MAP_WRITE,
        vaddr: vaddr as u64,
        iova,
        size,
    };
    // SAFETY: the kernel reads the live `DmaMap`; the caller vouches for the memory it names.
    check(unsafe { libc::ioctl(container.as_fd().as_raw_fd(), IOMMU_MAP_DMA, &map) }).map(drop)
}

/// `VFIO_IOMMU_UNMAP_DMA`: revokes the device's access to `[iova, iova + size)`.
pub fn unmap_dma(container: impl AsFd, iova: u64, size: u64) -> io::Result<()> {
    let mut unmap = DmaUnmap {
        argsz: argsz::<DmaUnmap>(),
        flags: 0,
        iova,
        size,
    };
    // SAFETY: the kernel reads and updates (`size`) the live `DmaUnmap` it points to.
    check(unsafe { libc::ioctl(container.as_fd().as_raw_fd(), IOMMU_UNMAP_DMA, &mut unmap) })?;
    if unmap.size != size {
        return Err(io::Error::other(format!(
            "unmapped {:#x} of {size:#x} bytes at iova {iova:#x}",
            unmap.size
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_header() {
        // Values from <linux/vfio.h> as compiled for x86_64.
        assert_eq!(GET_API_VERSION, 0x3b64);
        assert_eq!(CHECK_EXTENSION, 0x3b65);
        assert_eq!(SET_IOMMU, 0x3b66);
        assert_eq!(GROUP_GET_STATUS, 0x3b67);
        assert_eq!(GROUP_SET_CONTAINER, 0x3b68);
        assert_eq!(GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(DEVICE_GET_IRQ_INFO, 0x3b6d);
        assert_eq!(DEVICE_SET_IRQS, 0x3b6e);
        assert_eq!(DEVICE_RESET, 0x3b6f);
        assert_eq!(IOMMU_MAP_DMA, 0x3b71);
        assert_eq!(IOMMU_UNMAP_DMA, 0x3b72);
    }

    #[test]
    fn struct_layouts_match_the_kernel_header() {
        assert_eq!(size_of::<GroupStatus>(), 8);
        assert_eq!(size_of::<RegionInfo>(), 32);
        assert_eq!(size_of::<DmaMap>(), 32);
        assert_eq!(size_of::<DmaUnmap>(), 24);
        assert_eq!(size_of::<IrqInfo>(), 16);
        assert_eq!(size_of::<IrqSet>(), 20);
        assert_eq!(std::mem::offset_of!(RegionInfo, size), 16);
        assert_eq!(std::mem::offset_of!(DmaMap, vaddr), 8);
        assert_eq!(std::mem::offset_of!(DmaUnmap, iova), 8);
    }
}
