//! A ublk device that outlives its daemon (`--recoverable`), and a new daemon taking it over
//! (`--recover ID`).
//!
//! By default the kernel fails a dead daemon's I/O and removes its device, so a mounted file system
//! on it is lost. A device added with ublk's user recovery instead holds its I/O when the daemon
//! dies, without failing it: the requests the dead daemon had taken are sent again (they are reads,
//! writes, flushes and discards of a disk, which may be repeated), and the same `/dev/ublkbN`
//! resumes once a new daemon has recovered it. Until then its I/O waits, so it is an opt-in, for
//! deployments whose service manager restarts the daemon.
//!
//! A new daemon must serve the very namespace the device was serving, or the file system on it
//! would read another disk's blocks: the first daemon records the controller's serial number and
//! model and the namespace's geometry in the device's libublk file (`/run/ublksrvd/ID.json`), and a
//! daemon that recovers it compares them with its own controller before it asks the kernel for the
//! device. Everything that can fail, but for the queues' own start, comes before that request:
//! on some kernels (6.12 among them) a daemon that fails after it leaves a device that no later
//! daemon can recover, which only `--delete` then ends.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use libublk::ctrl::{UblkCtrl, UblkCtrlBuilder};
use libublk::sys;
use libublk::{UblkError, UblkFlags};
use nvme::ControllerInfo;
use serde::{Deserialize, Serialize};

use crate::geometry::Geometry;

/// The flags of a recoverable device: its I/O waits for a new daemon, and the requests the dead
/// one had taken are sent again.
pub const FLAGS: u64 = (sys::UBLK_F_USER_RECOVERY | sys::UBLK_F_USER_RECOVERY_REISSUE) as u64;

/// What a device serves, recorded when it is added and compared when it is recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The controller's serial number (Identify).
    pub serial: String,
    /// The controller's model (Identify).
    pub model: String,
    /// The namespace and the device's shape.
    pub geometry: Geometry,
}

impl Identity {
    /// The identity of `geometry`'s namespace on the controller described by `info`.
    pub fn new(info: &ControllerInfo, geometry: Geometry) -> Self {
        Identity {
            serial: info.serial.trim().to_string(),
            model: info.model.trim().to_string(),
            geometry,
        }
    }

    /// As kept in the device's libublk file.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Fails unless `recorded` (the device's) is this identity.
    pub fn check_recorded(&self, recorded: Option<&serde_json::Value>) -> Result<()> {
        let recorded = recorded.context(
            "the device's libublk file has no record of what it serves: it was not added by \
             nvme-ublk --recoverable, or its file is gone",
        )?;
        let recorded = Identity::deserialize(recorded)
            .context("the device's libublk file does not describe an nvme-ublk namespace")?;
        ensure!(
            recorded == *self,
            "the device served {recorded:?}, this controller offers {self:?}"
        );
        Ok(())
    }
}

/// A device that a new daemon may take over: one added with [`FLAGS`] whose daemon is gone.
pub struct Orphan {
    /// The device's control handle, for its record.
    probe: UblkCtrl,
    /// Its id.
    id: i32,
}

/// The control handle of existing ublk device `id`, once no daemon serves it or sets it up.
fn unserved(id: u32) -> Result<(UblkCtrl, i32)> {
    let id = existing(id)?;
    let probe = UblkCtrl::new_simple(id)
        .with_context(|| format!("opening ublk device {id} (is ublk_drv loaded?)"))?;
    let info = probe.dev_info();
    // Its daemon's process, from the device's start (libublk records it already when adding); a
    // device waiting for recovery has none.
    let pid = info.ublksrv_pid;
    let waiting = [sys::UBLK_S_DEV_QUIESCED, sys::UBLK_S_DEV_FAIL_IO].contains(&info.state.into());
    if !waiting && pid > 0 && Path::new(&format!("/proc/{pid}")).exists() {
        bail!("ublk device {id} is still served, by process {pid}");
    }
    // A live device whose daemon is gone: the kernel stops or quiesces it within its monitor's
    // period (some seconds).
    for _ in 0..STATE_POLLS {
        if u32::from(probe.dev_info().state) != sys::UBLK_S_DEV_LIVE {
            break;
        }
        std::thread::sleep(POLL);
        probe
            .read_dev_info()
            .with_context(|| format!("reading ublk device {id}"))?;
    }
    Ok((probe, id))
}

/// How often [`unserved`] and [`claim`] look at a device's state, and how many times.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);
const STATE_POLLS: u32 = 150;
const REMOVAL_POLLS: u32 = 30;

/// Makes way for ublk device `id`, asked for with `--id`: nothing to do if it does not exist; with
/// `recoverable`, a device added so is taken over (see [`Orphan`]); a device the kernel stopped
/// when its daemon died is removed, so the id can be added again.
pub fn claim(id: u32, recoverable: bool) -> Result<Option<Orphan>> {
    if !exists(id) {
        return Ok(None);
    }
    let (probe, dev) = unserved(id)?;
    let info = probe.dev_info();
    if recoverable && info.flags & FLAGS == FLAGS {
        return Ok(Some(Orphan { probe, id: dev }));
    }
    ensure!(
        u32::from(info.state) == sys::UBLK_S_DEV_DEAD,
        "ublk device {id} waits for a new daemon: take it over with --recover {id}, or give it up \
         with --delete {id}"
    );
    tracing::info!("ublk device {id}: its daemon is gone; removing it to add it again");
    ensure!(
        remove(&probe, id)?,
        "ublk device {id} is still held (a file system mounted from it?): it is removed once let \
         go, then run again"
    );
    Ok(None)
}

/// Removes ublk device `id` (its disk goes and its I/O fails at once) and returns whether its id
/// is free again within [`REMOVAL_POLLS`] polls. Without waiting in the kernel: the id stays taken
/// (and adding a device under it blocks) until the last holder of the disk, such as a file system
/// mounted from it, lets go, and the kernel's synchronous removal waits for that.
fn remove(probe: &UblkCtrl, id: u32) -> Result<bool> {
    probe
        .del_dev_async()
        .with_context(|| format!("removing ublk device {id}"))?;
    // Its character device goes at once; only the kernel's answer tells whether the id is free.
    for _ in 0..REMOVAL_POLLS {
        if probe.read_dev_info().is_err() {
            return Ok(true);
        }
        std::thread::sleep(POLL);
    }
    Ok(false)
}

impl Orphan {
    /// Finds ublk device `id` and checks that it can be recovered.
    pub fn find(id: u32) -> Result<Orphan> {
        let (probe, id) = unserved(id)?;
        ensure!(
            probe.dev_info().flags & FLAGS == FLAGS,
            "ublk device {id} was not added with --recoverable: it cannot be recovered"
        );
        Ok(Orphan { probe, id })
    }

    /// The number of queues and their depth the device was added with.
    pub fn shape(&self) -> (u16, u16) {
        let info = self.probe.dev_info();
        (info.nr_hw_queues, info.queue_depth)
    }

    /// Checks that `identity` is what the device served and opens the device for its recovery,
    /// which [`start`] then asks the kernel for.
    pub fn open(self, identity: &Identity) -> Result<UblkCtrl> {
        let id = self.id;
        identity
            .check_recorded(self.probe.get_target_data_from_json().as_ref())
            .with_context(|| format!("ublk device {id} serves another namespace"))?;
        let (queues, depth) = self.shape();
        ensure!(
            identity.geometry.depth == depth,
            "ublk device {id} has {depth} requests per queue, this controller's queues hold {}",
            identity.geometry.depth
        );
        UblkCtrlBuilder::default()
            .name("nvme-ublk")
            .id(id)
            .nr_queues(queues)
            .depth(depth)
            .io_buf_bytes(identity.geometry.max_io_bytes)
            .ctrl_flags(FLAGS)
            .dev_flags(UblkFlags::UBLK_DEV_F_RECOVER_DEV)
            .build()
            .with_context(|| format!("opening ublk device {id} for its recovery"))
    }
}

/// Descriptors the device's start takes: its character device, and per queue its ring and a spare.
fn descriptors_to_start(queues: u16) -> usize {
    1 + 2 * usize::from(queues)
}

/// Asks the kernel for the device `ctrl` opened for its recovery: the last step before its queues
/// start, since some kernels let a device be recovered only once this has been asked. The
/// descriptors the start needs are held until then, so that a shortage fails before.
pub fn start(ctrl: &UblkCtrl) -> Result<()> {
    let info = ctrl.dev_info();
    let id = info.dev_id;
    let reserve = (0..descriptors_to_start(info.nr_hw_queues))
        .map(|_| File::open("/dev/null"))
        .collect::<std::io::Result<Vec<File>>>()
        .context("too few file descriptors left to start the device")?;
    // libublk waits (up to 30 s) while the kernel still counts the dead daemon's device open.
    let started = ctrl.start_user_recover();
    drop(reserve);
    match started {
        // libublk gives the kernel's "busy" back once it has waited long enough.
        Ok(code) if code < 0 => bail!(
            "ublk device {id} is still held by its dead daemon after 30 s (error {code}): try again"
        ),
        Ok(_) => Ok(()),
        Err(UblkError::UringIOError(code)) if code == -libc::EINVAL => bail!(
            "the kernel refuses to recover ublk device {id} (some kernels, 6.12 among them, \
             refuse once an attempt has failed part-way): `nvme-ublk --delete {id}` fails its \
             waiting I/O and removes it"
        ),
        Err(err) => Err(err).with_context(|| format!("starting the recovery of ublk device {id}")),
    }
}

/// Deletes ublk device `id`, failing the I/O that waits on it: for a recoverable device that will
/// not be recovered. Does not wait for a file system mounted from the disk to let go: the device
/// is gone then, only its id stays taken, which is said.
pub fn delete(id: u32) -> Result<()> {
    let probe =
        UblkCtrl::new_simple(existing(id)?).with_context(|| format!("opening ublk device {id}"))?;
    if !remove(&probe, id)? {
        tracing::warn!(
            "ublk device {id} is deleted, but its id stays taken until its disk is let go (a file \
             system mounted from it is unmounted)"
        );
    }
    Ok(())
}

/// Whether ublk device `id` exists.
pub fn exists(id: u32) -> bool {
    Path::new(&format!("/dev/ublkc{id}")).exists()
}

/// `id` as libublk takes it, once the device is found.
fn existing(id: u32) -> Result<i32> {
    ensure!(exists(id), "there is no ublk device {id} (/dev/ublkc{id})");
    i32::try_from(id).context("ublk device id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry {
            nsid: 1,
            block_shift: 9,
            blocks: 131_072,
            depth: 64,
            max_io_bytes: 512 << 10,
            write_cache: true,
            discard: true,
            write_zeroes: true,
        }
    }

    fn identity() -> Identity {
        Identity {
            serial: "deadbeef".into(),
            model: "QEMU NVMe Ctrl".into(),
            geometry: geometry(),
        }
    }

    #[test]
    fn the_recorded_identity_is_accepted() {
        let id = identity();
        id.check_recorded(Some(&id.to_json())).unwrap();
    }

    #[test]
    fn another_controller_or_namespace_is_refused() {
        let recorded = identity().to_json();
        let mut other = identity();
        other.serial = "cafef00d".into();
        assert!(other.check_recorded(Some(&recorded)).is_err());
        let mut other = identity();
        other.geometry.blocks += 1;
        assert!(other.check_recorded(Some(&recorded)).is_err());
        let mut other = identity();
        other.geometry.nsid = 2;
        assert!(other.check_recorded(Some(&recorded)).is_err());
    }

    #[test]
    fn a_device_without_a_record_is_refused() {
        let err = identity().check_recorded(None).unwrap_err();
        assert!(err.to_string().contains("no record"), "{err:#}");
        let err = identity()
            .check_recorded(Some(&serde_json::json!({"null": "test_data"})))
            .unwrap_err();
        assert!(err.to_string().contains("does not describe"), "{err:#}");
    }
}
