//! Mapping host inodes to 9P qids.
//!
//! `qid.path` is the client's inode number, so it must be unique across every device the
//! export spans (bind mounts, btrfs subvolumes). The export's own device keeps plain inode
//! numbers; every other device gets a small index placed in the top 16 bits.

use std::collections::HashMap;
use std::sync::Mutex;

use rustix::fs::{FileType, Statx};

/// `QTDIR`, `QTSYMLINK` and `QTFILE` of the qid type byte.
pub const QT_DIR: u8 = 0x80;
pub const QT_SYMLINK: u8 = 0x02;
pub const QT_FILE: u8 = 0x00;

/// The parts of a qid, independent of the wire representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QidParts {
    pub ty: u8,
    pub version: u32,
    pub path: u64,
}

const INODE_BITS: u32 = 48;
const INODE_MASK: u64 = (1 << INODE_BITS) - 1;

/// Assigns each device seen inside the export a stable index.
#[derive(Debug)]
pub struct DeviceMap {
    root_dev: u64,
    others: Mutex<HashMap<u64, u64>>,
}

impl DeviceMap {
    pub fn new(root_dev: u64) -> Self {
        Self {
            root_dev,
            others: Mutex::new(HashMap::new()),
        }
    }

    /// The qid path of inode `ino` on device `dev`.
    pub fn path(&self, dev: u64, ino: u64) -> u64 {
        if dev == self.root_dev {
            return ino;
        }
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        let next = others.len() as u64 + 1;
        let index = *others.entry(dev).or_insert(next);
        (index << INODE_BITS) | (ino & INODE_MASK)
    }

    /// The full qid of a file from its `statx`.
    pub fn qid(&self, st: &Statx) -> QidParts {
        let dev = super::device(st);
        QidParts {
            ty: qid_type(FileType::from_raw_mode(u32::from(st.stx_mode))),
            version: version(st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec, st.stx_size),
            path: self.path(dev, st.stx_ino),
        }
    }
}

/// The qid type byte of a file type.
pub fn qid_type(ft: FileType) -> u8 {
    match ft {
        FileType::Directory => QT_DIR,
        FileType::Symlink => QT_SYMLINK,
        _ => QT_FILE,
    }
}

/// A version that changes whenever the file's data changes (mtime and size move on writes).
pub fn version(mtime_sec: i64, mtime_nsec: u32, size: u64) -> u32 {
    let mixed = (mtime_sec as u64).wrapping_mul(1_000_000_007)
        ^ u64::from(mtime_nsec)
        ^ size.rotate_left(17);
    (mixed ^ (mixed >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_do_not_collide() {
        let map = DeviceMap::new(10);
        assert_eq!(map.path(10, 5), 5);
        let a = map.path(11, 5);
        let b = map.path(12, 5);
        assert_ne!(a, 5);
        assert_ne!(a, b);
        assert_eq!(map.path(11, 5), a, "the index of a device is stable");
    }

    #[test]
    fn version_moves_with_mtime_and_size() {
        let v = version(100, 5, 10);
        assert_ne!(v, version(100, 6, 10));
        assert_ne!(v, version(101, 5, 10));
        assert_ne!(v, version(100, 5, 11));
    }
}
