//! The structured bodies of Rgetattr, Tsetattr, Rstatfs, Tlock and Tgetlock/Rgetlock.

use bytes::Bytes;

use crate::qid::Qid;

/// A timestamp as 9P carries it: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timespec {
    /// Seconds since the Unix epoch.
    pub sec: u64,
    /// Nanoseconds within the second.
    pub nsec: u64,
}

/// The body of Rgetattr: `stat(2)` plus birth time, generation and data version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attr {
    /// Which fields are valid ([`crate::consts::getattr`] bits).
    pub valid: u64,
    /// The file's qid.
    pub qid: Qid,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard link count.
    pub nlink: u64,
    /// Device number for device files.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O block size.
    pub blksize: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
    /// Last access.
    pub atime: Timespec,
    /// Last modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
    /// Creation (birth) time.
    pub btime: Timespec,
    /// Inode generation.
    pub gen_: u64,
    /// Data version.
    pub data_version: u64,
}

/// The body of Tsetattr after the fid: which fields to change and their new values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// Which fields to set ([`crate::consts::setattr`] bits).
    pub valid: u32,
    /// New permission bits.
    pub mode: u32,
    /// New owner.
    pub uid: u32,
    /// New group.
    pub gid: u32,
    /// New size (truncate or extend).
    pub size: u64,
    /// New access time (used with ATIME_SET, otherwise "now").
    pub atime: Timespec,
    /// New modification time (used with MTIME_SET, otherwise "now").
    pub mtime: Timespec,
}

/// The body of Rstatfs: `statfs(2)` of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatFs {
    /// Filesystem type ([`crate::consts::V9FS_MAGIC`] unless passed through).
    pub ty: u32,
    /// Block size.
    pub bsize: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Filesystem id.
    pub fsid: u64,
    /// Longest file name.
    pub namelen: u32,
}

/// The body of Tlock after the fid: a POSIX byte-range lock request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lock {
    /// [`crate::consts::lock_type`].
    pub ty: u8,
    /// [`crate::consts::lock_flags`].
    pub flags: u32,
    /// First byte.
    pub start: u64,
    /// Number of bytes; 0 means "to the end of the file".
    pub length: u64,
    /// The locking process on the client.
    pub proc_id: u32,
    /// The client's identity (its hostname for Linux).
    pub client_id: Bytes,
}

/// The body of Tgetlock after the fid, and of Rgetlock: a lock to test, or the conflicting lock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetLock {
    /// [`crate::consts::lock_type`]; UNLCK in the reply means "no conflict".
    pub ty: u8,
    /// First byte.
    pub start: u64,
    /// Number of bytes; 0 means "to the end of the file".
    pub length: u64,
    /// The (conflicting) process.
    pub proc_id: u32,
    /// The (conflicting) client's identity.
    pub client_id: Bytes,
}
