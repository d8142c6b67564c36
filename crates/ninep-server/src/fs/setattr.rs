//! Tsetattr: mode, owner, size and times of a file, through its descriptor.

use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, UTIME_NOW, UTIME_OMIT};
use rustix::io::Errno;

use super::node::{Export, Node};
use super::{FsResult, ops, proc_path};

/// Bits of Tsetattr's `valid` mask.
pub mod valid {
    pub const MODE: u32 = 0x1;
    pub const UID: u32 = 0x2;
    pub const GID: u32 = 0x4;
    pub const SIZE: u32 = 0x8;
    pub const ATIME: u32 = 0x10;
    pub const MTIME: u32 = 0x20;
    pub const CTIME: u32 = 0x40;
    pub const ATIME_SET: u32 = 0x80;
    pub const MTIME_SET: u32 = 0x100;
}

/// The requested changes, as decoded from Tsetattr.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub valid: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: (u64, u64),
    pub mtime: (u64, u64),
}

/// Applies `attr` to `node`. `open` is the fid's open descriptor, if any: truncation uses it
/// so that an open-unlinked file can still be truncated.
pub fn setattr(
    export: &Export,
    node: &Node,
    open: Option<&OwnedFd>,
    attr: &SetAttr,
) -> FsResult<()> {
    export.writable()?;
    let v = attr.valid;
    if v & (valid::UID | valid::GID) != 0 {
        let uid = (v & valid::UID != 0).then(|| rustix::fs::Uid::from_raw(attr.uid));
        let gid = (v & valid::GID != 0).then(|| rustix::fs::Gid::from_raw(attr.gid));
        rustix::fs::chownat(
            node.fd(),
            "",
            uid,
            gid,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    if v & valid::MODE != 0 {
        if node.kind() == FileType::Symlink {
            return Err(Errno::OPNOTSUPP);
        }
        rustix::fs::chmod(
            proc_path(node.fd()),
            Mode::from_raw_mode(attr.mode & 0o7777),
        )?;
    }
    if v & valid::SIZE != 0 {
        truncate(node, open, attr.size)?;
    }
    if v & (valid::ATIME | valid::MTIME) != 0 {
        let times = Timestamps {
            last_access: time(v, valid::ATIME, valid::ATIME_SET, attr.atime),
            last_modification: time(v, valid::MTIME, valid::MTIME_SET, attr.mtime),
        };
        set_times(node, &times)?;
    } else if v & valid::CTIME != 0
        && v & (valid::UID | valid::GID | valid::MODE | valid::SIZE) == 0
    {
        // A ctime-only request just bumps ctime: an ownership change to the same owner does.
        rustix::fs::chownat(
            node.fd(),
            "",
            None,
            None,
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

fn time(v: u32, bit: u32, set_bit: u32, (sec, nsec): (u64, u64)) -> Timespec {
    if v & bit == 0 {
        Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        }
    } else if v & set_bit == 0 {
        Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_NOW,
        }
    } else {
        Timespec {
            tv_sec: sec as i64,
            tv_nsec: (nsec % 1_000_000_000) as _,
        }
    }
}

fn set_times(node: &Node, times: &Timestamps) -> FsResult<()> {
    match rustix::fs::utimensat(
        node.fd(),
        "",
        times,
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Err(Errno::INVAL) | Err(Errno::NOENT) if node.kind() != FileType::Symlink => {
            rustix::fs::utimensat(
                rustix::fs::CWD,
                proc_path(node.fd()),
                times,
                AtFlags::empty(),
            )
        }
        other => other,
    }
}

fn truncate(node: &Node, open: Option<&OwnedFd>, size: u64) -> FsResult<()> {
    if node.is_dir() {
        return Err(Errno::ISDIR);
    }
    if node.kind() != FileType::RegularFile {
        return Err(Errno::INVAL);
    }
    if let Some(fd) = open {
        match rustix::fs::ftruncate(fd.as_fd(), size) {
            // Opened read-only: fall back to a writable reopen (permission-checked as usual).
            Err(Errno::BADF) | Err(Errno::INVAL) => {}
            other => return other,
        }
    }
    let fd = ops::reopen(node, OFlags::WRONLY)?;
    rustix::fs::ftruncate(&fd, size)
}
