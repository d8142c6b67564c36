//! PCI functions through sysfs: addresses, config space, Bus Master, driver binding, and the
//! per-function lock that makes a device handle exclusive.
//!
//! Everything here that could point a device at memory (config writes, Bus Master, binding a
//! driver) is crate-private or `unsafe`: the device handles ([`crate::UioDevice`],
//! [`crate::VfioDevice`]) own those steps.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use std::str::FromStr;

use crate::error::{Error, Result};

/// The PCI Command register's offset in config space.
pub const COMMAND: u64 = 0x04;
/// Command bit: respond to memory-space accesses (BARs).
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command bit: the function may master the bus (issue DMA).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command bit: legacy INTx interrupts are masked (we poll).
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// A PCI function's address, `domain:bus:device.function`, e.g. `0000:00:02.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciAddress {
    /// PCI segment.
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BadAddress(s.to_owned());
        let hex = |part: &str, digits: usize| {
            if part.len() != digits || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u16::from_str_radix(part, 16).map_err(|_| bad())
        };
        let mut parts = s.split(':');
        let (Some(domain), Some(bus), Some(rest), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (device, function) = rest.split_once('.').ok_or_else(bad)?;
        let (device, function) = (hex(device, 2)?, hex(function, 1)?);
        if device >= 32 || function >= 8 {
            return Err(bad());
        }
        Ok(Self {
            domain: hex(domain, 4)?,
            bus: hex(bus, 2)? as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// Where sysfs is mounted (`/sys`, or a fake tree in tests), and the device nodes (`/dev`).
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
    dev: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::new("/sys")
    }
}

impl Sysfs {
    /// Sysfs mounted at `root`, device nodes in `/dev`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            dev: PathBuf::from("/dev"),
        }
    }

    /// The same, with device nodes (`uioN`) looked up in `dev` instead of `/dev`.
    pub fn with_dev_dir(mut self, dev: impl Into<PathBuf>) -> Self {
        self.dev = dev.into();
        self
    }

    /// Where device nodes live.
    pub(crate) fn dev_dir(&self) -> &Path {
        &self.dev
    }

    fn bus(&self) -> PathBuf {
        self.root.join("bus/pci")
    }

    /// The PCI function at `addr`, which must exist.
    pub fn device(&self, addr: PciAddress) -> Result<PciDevice> {
        let dir = self.bus().join("devices").join(addr.to_string());
        if !dir.is_dir() {
            return Err(Error::WrongState(format!(
                "no PCI device {addr} (no {})",
                dir.display()
            )));
        }
        Ok(PciDevice {
            addr,
            dir,
            bus: self.bus(),
        })
    }
}

/// One PCI function as sysfs shows it.
#[derive(Debug, Clone)]
pub struct PciDevice {
    addr: PciAddress,
    dir: PathBuf,
    bus: PathBuf,
}

fn read_trimmed(path: &Path) -> Result<String> {
    let text =
        fs::read_to_string(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(text.trim().to_owned())
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(format!("write {text:?} to {}", path.display()), e))
}

/// Clears Bus Master in the config space file `config` (for the exit hook, which has no
/// [`PciDevice`]).
pub(crate) fn clear_bus_master_at(config: &Path) -> std::io::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(config)?;
    let mut raw = [0; 2];
    file.read_exact_at(&mut raw, COMMAND)?;
    let command = u16::from_le_bytes(raw);
    if command & COMMAND_BUS_MASTER != 0 {
        file.write_all_at(&(command & !COMMAND_BUS_MASTER).to_le_bytes(), COMMAND)?;
    }
    Ok(())
}

/// Parses sysfs's `0x1b36`-style hexadecimal attributes.
pub fn parse_hex_attr(text: &str) -> Option<u64> {
    u64::from_str_radix(text.trim().strip_prefix("0x")?, 16).ok()
}

impl PciDevice {
    /// Its address.
    pub fn address(&self) -> PciAddress {
        self.addr
    }

    /// Its sysfs directory.
    pub fn sysfs_dir(&self) -> &Path {
        &self.dir
    }

    fn hex_attr(&self, name: &str) -> Result<u64> {
        let path = self.dir.join(name);
        let text = read_trimmed(&path)?;
        parse_hex_attr(&text).ok_or_else(|| {
            Error::WrongState(format!("{} holds {text:?}, not 0x<hex>", path.display()))
        })
    }

    /// Vendor and device IDs.
    pub fn ids(&self) -> Result<(u16, u16)> {
        Ok((
            self.hex_attr("vendor")? as u16,
            self.hex_attr("device")? as u16,
        ))
    }

    /// The 24-bit class code (0x010802 for NVMe).
    pub fn class(&self) -> Result<u32> {
        Ok(self.hex_attr("class")? as u32)
    }

    fn link_name(&self, name: &str) -> Result<Option<String>> {
        match fs::read_link(self.dir.join(name)) {
            Ok(target) => Ok(target.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(
                format!("readlink {}/{name}", self.dir.display()),
                e,
            )),
        }
    }

    /// The name of the bound driver, if any.
    pub fn driver(&self) -> Result<Option<String>> {
        self.link_name("driver")
    }

    /// Its IOMMU group number, if an IOMMU is active.
    pub fn iommu_group(&self) -> Result<Option<u32>> {
        let Some(name) = self.link_name("iommu_group")? else {
            return Ok(None);
        };
        name.parse().map(Some).map_err(|_| {
            Error::WrongState(format!(
                "iommu_group link of {} ends in {name:?}",
                self.addr
            ))
        })
    }

    /// Fails unless the bound driver is `expected`.
    pub fn require_driver(&self, expected: &str) -> Result<()> {
        match self.driver()? {
            Some(d) if d == expected => Ok(()),
            other => Err(Error::WrongState(format!(
                "{} is bound to {}, not {expected}; bind it first",
                self.addr,
                other.as_deref().unwrap_or("no driver")
            ))),
        }
    }

    /// The sysfs file of BAR `index` (`resource0` ...), mappable once no kernel driver owns it.
    pub fn resource_path(&self, index: u8) -> PathBuf {
        self.dir.join(format!("resource{index}"))
    }

    /// Its config space file.
    pub(crate) fn config_path(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Reads config space bytes at `offset`.
    pub fn read_config(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        let path = self.dir.join("config");
        let file =
            fs::File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        file.read_exact_at(out, offset)
            .map_err(|e| Error::io(format!("read {} at {offset:#x}", path.display()), e))
    }

    /// Writes config space bytes at `offset`.
    pub(crate) fn write_config(&self, offset: u64, data: &[u8]) -> Result<()> {
        let path = self.dir.join("config");
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("open {} for writing", path.display()), e))?;
        file.write_all_at(data, offset)
            .map_err(|e| Error::io(format!("write {} at {offset:#x}", path.display()), e))
    }

    /// The Command register.
    pub fn command(&self) -> Result<u16> {
        let mut raw = [0; 2];
        self.read_config(COMMAND, &mut raw)?;
        Ok(u16::from_le_bytes(raw))
    }

    /// Sets `bits` in the Command register (memory space, bus master, INTx disable, ...).
    pub(crate) fn set_command_bits(&self, bits: u16) -> Result<()> {
        let command = self.command()?;
        if command & bits != bits {
            self.write_config(COMMAND, &(command | bits).to_le_bytes())?;
        }
        Ok(())
    }

    /// Enables memory space and Bus Master (uio does not), and masks INTx since we poll.
    pub(crate) fn enable_bus_master(&self) -> Result<()> {
        self.set_command_bits(COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE)
    }

    /// Clears `bits` in the Command register.
    pub(crate) fn clear_command_bits(&self, bits: u16) -> Result<()> {
        let command = self.command()?;
        if command & bits != 0 {
            self.write_config(COMMAND, &(command & !bits).to_le_bytes())?;
        }
        Ok(())
    }

    /// Resets the function through sysfs `reset` (FLR, or whatever reset the kernel has for
    /// it). The kernel saves config space before and restores it after, so clear Bus Master
    /// first to have it stay clear.
    pub(crate) fn reset_function(&self) -> Result<()> {
        let path = self.dir.join("reset");
        if !path.exists() {
            return Err(Error::Unsupported(format!(
                "{} has no function reset ({} is missing), so a controller left running by an \
                 earlier owner could not be stopped before Bus Master is enabled",
                self.addr,
                path.display()
            )));
        }
        write_text(&path, "1")
    }

    /// Takes the exclusive lock of this function (an `flock` on its config space file, so it
    /// holds across processes and ends with the process), or fails at once if a handle of
    /// this crate anywhere holds it.
    pub(crate) fn lock(&self) -> Result<DeviceLock> {
        let path = self.dir.join("config");
        let file =
            fs::File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
            if e == rustix::io::Errno::WOULDBLOCK {
                Error::WrongState(format!(
                    "{} is already open (by this or another process): one handle at a time",
                    self.addr
                ))
            } else {
                Error::io(format!("flock {}", path.display()), e)
            }
        })?;
        Ok(DeviceLock { _file: file })
    }

    /// Detaches the bound driver, if any.
    ///
    /// # Safety
    ///
    /// As for [`PciDevice::bind`].
    #[allow(unsafe_code)]
    pub unsafe fn unbind(&self) -> Result<()> {
        let _lock = self.lock()?;
        self.unbind_locked()
    }

    fn unbind_locked(&self) -> Result<()> {
        if self.driver()?.is_some() {
            write_text(&self.dir.join("driver/unbind"), &self.addr.to_string())?;
        }
        Ok(())
    }

    /// Binds `driver` (e.g. `vfio-pci`, `uio_pci_generic`, `nvme`) through `driver_override`
    /// and `drivers_probe`, unbinding the current driver first. The driver module must be loaded.
    /// Fails while a [`crate::UioDevice`] or [`crate::VfioDevice`] of any process holds the
    /// function (it takes the same lock).
    ///
    /// # Safety
    ///
    /// No code in this process may be driving the function other than through this crate's
    /// handles (which the lock excludes): a user-space driver of some other library that keeps
    /// ringing doorbells after the kernel's driver took over would have the device work on
    /// memory neither side owns any more.
    #[allow(unsafe_code)]
    pub unsafe fn bind(&self, driver: &str) -> Result<()> {
        let _lock = self.lock()?;
        if self.driver()?.as_deref() == Some(driver) {
            return Ok(());
        }
        self.unbind_locked()?;
        write_text(&self.dir.join("driver_override"), driver)?;
        write_text(&self.bus.join("drivers_probe"), &self.addr.to_string())?;
        self.require_driver(driver)
    }
}

/// Exclusive ownership of one PCI function, released when dropped (or when the process ends).
#[derive(Debug)]
pub(crate) struct DeviceLock {
    _file: fs::File,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Points the fake device's `driver` link at `driver`.
    pub(crate) fn rebind_fake(tmp: &tempfile::TempDir, driver: &str) {
        let root = tmp.path();
        let link = root.join("devices/pci0000:00/0000:00:02.0/driver");
        fs::create_dir_all(root.join("bus/pci/drivers").join(driver)).unwrap();
        fs::remove_file(&link).unwrap();
        symlink(root.join("bus/pci/drivers").join(driver), link).unwrap();
    }

    #[test]
    fn parses_and_prints_addresses() {
        let a: PciAddress = "0000:00:02.0".parse().unwrap();
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 0,
                device: 2,
                function: 0
            }
        );
        assert_eq!(a.to_string(), "0000:00:02.0");
        let b: PciAddress = "10ab:ff:1f.7".parse().unwrap();
        assert_eq!(b.to_string(), "10ab:ff:1f.7");
        for bad in [
            "",
            "00:02.0",
            "0000:00:02",
            "0000:00:20.0",
            "0000:00:02.8",
            "0000:0g:02.0",
            "0000:00:02.0:1",
            "+000:00:02.0",
            "0000:00:02.00",
        ] {
            assert!(
                matches!(bad.parse::<PciAddress>(), Err(Error::BadAddress(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn parses_hex_attributes() {
        assert_eq!(parse_hex_attr("0x1b36\n"), Some(0x1b36));
        assert_eq!(parse_hex_attr("1b36"), None);
        assert_eq!(parse_hex_attr("0xzz"), None);
    }

    /// A fake sysfs with one NVMe function bound to `nvme` in IOMMU group 2.
    pub(crate) fn fake_tree() -> (tempfile::TempDir, Sysfs) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let dev = root.join("devices/pci0000:00/0000:00:02.0");
        fs::create_dir_all(&dev).unwrap();
        fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        fs::create_dir_all(root.join("bus/pci/drivers/nvme")).unwrap();
        fs::create_dir_all(root.join("kernel/iommu_groups/2")).unwrap();
        symlink(&dev, root.join("bus/pci/devices/0000:00:02.0")).unwrap();
        symlink(root.join("bus/pci/drivers/nvme"), dev.join("driver")).unwrap();
        symlink(root.join("kernel/iommu_groups/2"), dev.join("iommu_group")).unwrap();
        fs::write(dev.join("vendor"), "0x1b36\n").unwrap();
        fs::write(dev.join("device"), "0x0010\n").unwrap();
        fs::write(dev.join("class"), "0x010802\n").unwrap();
        let mut config = vec![0u8; 256];
        config[4] = 0x03; // memory + I/O space, no bus master
        fs::write(dev.join("config"), config).unwrap();
        fs::write(dev.join("driver_override"), "").unwrap();
        fs::write(root.join("bus/pci/drivers/nvme/unbind"), "").unwrap();
        fs::write(root.join("bus/pci/drivers_probe"), "").unwrap();
        let sysfs = Sysfs::new(root);
        (tmp, sysfs)
    }

    #[test]
    fn reads_identity_driver_and_group() {
        let (_tmp, sysfs) = fake_tree();
        let dev = sysfs.device("0000:00:02.0".parse().unwrap()).unwrap();
        assert_eq!(dev.ids().unwrap(), (0x1b36, 0x0010));
        assert_eq!(dev.class().unwrap(), 0x010802);
        assert_eq!(dev.driver().unwrap().as_deref(), Some("nvme"));
        assert_eq!(dev.iommu_group().unwrap(), Some(2));
        assert!(dev.require_driver("nvme").is_ok());
        let err = dev.require_driver("vfio-pci").unwrap_err().to_string();
        assert!(err.contains("bound to nvme, not vfio-pci"), "{err}");
        assert!(sysfs.device("0000:00:03.0".parse().unwrap()).is_err());
    }

    #[test]
    fn bus_master_is_set_through_config_space() {
        let (_tmp, sysfs) = fake_tree();
        let dev = sysfs.device("0000:00:02.0".parse().unwrap()).unwrap();
        assert_eq!(dev.command().unwrap(), 0x0003);
        dev.enable_bus_master().unwrap();
        assert_eq!(dev.command().unwrap(), 0x0407);
        dev.clear_command_bits(COMMAND_BUS_MASTER).unwrap();
        assert_eq!(dev.command().unwrap(), 0x0403);
        let mut rest = [0u8; 4];
        dev.read_config(0, &mut rest).unwrap();
        assert_eq!(rest, [0; 4], "neighbouring bytes are untouched");
    }

    #[test]
    fn bind_writes_the_override_sequence_and_checks_the_result() {
        let (tmp, sysfs) = fake_tree();
        let dev = sysfs.device("0000:00:02.0".parse().unwrap()).unwrap();
        // The fake tree has no kernel behind it, so the driver link never changes.
        // SAFETY: a fake tree: no device behind it.
        #[allow(unsafe_code)]
        let err = unsafe { dev.bind("uio_pci_generic") }
            .unwrap_err()
            .to_string();
        assert!(err.contains("not uio_pci_generic"), "{err}");
        let root = tmp.path();
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("bus/pci/drivers/nvme/unbind"), "0000:00:02.0");
        assert_eq!(
            read("devices/pci0000:00/0000:00:02.0/driver_override"),
            "uio_pci_generic"
        );
        assert_eq!(read("bus/pci/drivers_probe"), "0000:00:02.0");
        // SAFETY: as above.
        #[allow(unsafe_code)]
        let again = unsafe { dev.bind("nvme") };
        assert!(again.is_ok(), "already bound: nothing to do");
        let held = dev.lock().unwrap();
        // SAFETY: as above.
        #[allow(unsafe_code)]
        let err = unsafe { dev.bind("uio_pci_generic") }.unwrap_err();
        assert!(err.to_string().contains("already open"), "{err}");
        drop(held);
    }

    #[test]
    fn malformed_attributes_give_clear_errors() {
        let (tmp, sysfs) = fake_tree();
        fs::write(
            tmp.path().join("devices/pci0000:00/0000:00:02.0/vendor"),
            "garbage",
        )
        .unwrap();
        let dev = sysfs.device("0000:00:02.0".parse().unwrap()).unwrap();
        let err = dev.ids().unwrap_err().to_string();
        assert!(err.contains("not 0x<hex>"), "{err}");
    }
}
