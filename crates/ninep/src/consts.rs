//! Numeric constants of 9P2000.L: message numbers, special tags and fids, masks and flags,
//! exactly as the Linux client (`include/net/9p/9p.h`) and diod (`protocol.h`) define them.

/// The tag of Tversion, which is sent before any tag is in use.
pub const NOTAG: u16 = 0xffff;
/// "No fid", used as the afid of a Tattach without authentication.
pub const NOFID: u32 = 0xffff_ffff;
/// The header of Tread/Rread/Twrite frames: a reply carries at most `msize - P9_IOHDRSZ` data bytes.
pub const P9_IOHDRSZ: u32 = 24;
/// The most names a single Twalk may carry (and the most qids an Rwalk may return).
pub const P9_MAXWELEM: usize = 16;
/// The size of the frame header `size[4] type[1] tag[2]`.
pub const HEADER_LEN: usize = 7;
/// The protocol version string this crate speaks.
pub const VERSION_9P2000_L: &str = "9P2000.L";
/// The version string a server replies with for a version it does not speak.
pub const VERSION_UNKNOWN: &str = "unknown";
/// The `f_type` Linux reports for a v9fs mount (Rstatfs `type`).
pub const V9FS_MAGIC: u32 = 0x0102_1997;

/// Message type numbers (T-messages; the reply is always T + 1).
pub mod msg {
    #![allow(missing_docs)]
    pub const RLERROR: u8 = 7;
    pub const TSTATFS: u8 = 8;
    pub const RSTATFS: u8 = 9;
    pub const TLOPEN: u8 = 12;
    pub const RLOPEN: u8 = 13;
    pub const TLCREATE: u8 = 14;
    pub const RLCREATE: u8 = 15;
    pub const TSYMLINK: u8 = 16;
    pub const RSYMLINK: u8 = 17;
    pub const TMKNOD: u8 = 18;
    pub const RMKNOD: u8 = 19;
    pub const TRENAME: u8 = 20;
    pub const RRENAME: u8 = 21;
    pub const TREADLINK: u8 = 22;
    pub const RREADLINK: u8 = 23;
    pub const TGETATTR: u8 = 24;
    pub const RGETATTR: u8 = 25;
    pub const TSETATTR: u8 = 26;
    pub const RSETATTR: u8 = 27;
    pub const TXATTRWALK: u8 = 30;
    pub const RXATTRWALK: u8 = 31;
    pub const TXATTRCREATE: u8 = 32;
    pub const RXATTRCREATE: u8 = 33;
    pub const TREADDIR: u8 = 40;
    pub const RREADDIR: u8 = 41;
    pub const TFSYNC: u8 = 50;
    pub const RFSYNC: u8 = 51;
    pub const TLOCK: u8 = 52;
    pub const RLOCK: u8 = 53;
    pub const TGETLOCK: u8 = 54;
    pub const RGETLOCK: u8 = 55;
    pub const TLINK: u8 = 70;
    pub const RLINK: u8 = 71;
    pub const TMKDIR: u8 = 72;
    pub const RMKDIR: u8 = 73;
    pub const TRENAMEAT: u8 = 74;
    pub const RRENAMEAT: u8 = 75;
    pub const TUNLINKAT: u8 = 76;
    pub const RUNLINKAT: u8 = 77;
    pub const TVERSION: u8 = 100;
    pub const RVERSION: u8 = 101;
    pub const TAUTH: u8 = 102;
    pub const RAUTH: u8 = 103;
    pub const TATTACH: u8 = 104;
    pub const RATTACH: u8 = 105;
    pub const TFLUSH: u8 = 108;
    pub const RFLUSH: u8 = 109;
    pub const TWALK: u8 = 110;
    pub const RWALK: u8 = 111;
    pub const TREAD: u8 = 116;
    pub const RREAD: u8 = 117;
    pub const TWRITE: u8 = 118;
    pub const RWRITE: u8 = 119;
    pub const TCLUNK: u8 = 120;
    pub const RCLUNK: u8 = 121;
    pub const TREMOVE: u8 = 122;
    pub const RREMOVE: u8 = 123;
}

/// Bits of `Qid::ty`.
pub mod qid_type {
    /// A directory.
    pub const DIR: u8 = 0x80;
    /// An append-only file.
    pub const APPEND: u8 = 0x40;
    /// An exclusive-use file.
    pub const EXCL: u8 = 0x20;
    /// A mounted channel.
    pub const MOUNT: u8 = 0x10;
    /// An authentication file.
    pub const AUTH: u8 = 0x08;
    /// A non-backed-up file.
    pub const TMP: u8 = 0x04;
    /// A symbolic link.
    pub const SYMLINK: u8 = 0x02;
    /// A hard link.
    pub const LINK: u8 = 0x01;
    /// A plain file.
    pub const FILE: u8 = 0x00;
}

/// Bits of Tgetattr `request_mask` and Rgetattr `valid`.
pub mod getattr {
    #![allow(missing_docs)]
    pub const MODE: u64 = 0x0000_0001;
    pub const NLINK: u64 = 0x0000_0002;
    pub const UID: u64 = 0x0000_0004;
    pub const GID: u64 = 0x0000_0008;
    pub const RDEV: u64 = 0x0000_0010;
    pub const ATIME: u64 = 0x0000_0020;
    pub const MTIME: u64 = 0x0000_0040;
    pub const CTIME: u64 = 0x0000_0080;
    pub const INO: u64 = 0x0000_0100;
    pub const SIZE: u64 = 0x0000_0200;
    pub const BLOCKS: u64 = 0x0000_0400;
    pub const BTIME: u64 = 0x0000_0800;
    pub const GEN: u64 = 0x0000_1000;
    pub const DATA_VERSION: u64 = 0x0000_2000;
    /// Everything `stat(2)` reports: MODE through BLOCKS.
    pub const BASIC: u64 = 0x0000_07ff;
    /// Every field.
    pub const ALL: u64 = 0x0000_3fff;
}

/// Bits of Tsetattr `valid`.
pub mod setattr {
    #![allow(missing_docs)]
    pub const MODE: u32 = 0x0000_0001;
    pub const UID: u32 = 0x0000_0002;
    pub const GID: u32 = 0x0000_0004;
    pub const SIZE: u32 = 0x0000_0008;
    /// Set atime; to the given value only with ATIME_SET, otherwise to "now".
    pub const ATIME: u32 = 0x0000_0010;
    /// Set mtime; to the given value only with MTIME_SET, otherwise to "now".
    pub const MTIME: u32 = 0x0000_0020;
    pub const CTIME: u32 = 0x0000_0040;
    pub const ATIME_SET: u32 = 0x0000_0080;
    pub const MTIME_SET: u32 = 0x0000_0100;
}

/// Open flags of Tlopen/Tlcreate: Linux `O_*` values as 9P defines them (`P9_DOTL_*`).
pub mod open_flags {
    #![allow(missing_docs)]
    pub const RDONLY: u32 = 0o0;
    pub const WRONLY: u32 = 0o1;
    pub const RDWR: u32 = 0o2;
    pub const NOACCESS: u32 = 0o3;
    /// Mask of the access mode bits (RDONLY/WRONLY/RDWR/NOACCESS).
    pub const ACCMODE: u32 = 0o3;
    pub const CREATE: u32 = 0o100;
    pub const EXCL: u32 = 0o200;
    pub const NOCTTY: u32 = 0o400;
    pub const TRUNC: u32 = 0o1000;
    pub const APPEND: u32 = 0o2000;
    pub const NONBLOCK: u32 = 0o4000;
    pub const DSYNC: u32 = 0o10000;
    pub const FASYNC: u32 = 0o20000;
    pub const DIRECT: u32 = 0o40000;
    pub const LARGEFILE: u32 = 0o100000;
    pub const DIRECTORY: u32 = 0o200000;
    pub const NOFOLLOW: u32 = 0o400000;
    pub const NOATIME: u32 = 0o1000000;
    pub const CLOEXEC: u32 = 0o2000000;
    pub const SYNC: u32 = 0o4000000;
}

/// Lock types of Tlock/Tgetlock.
pub mod lock_type {
    #![allow(missing_docs)]
    pub const RDLCK: u8 = 0;
    pub const WRLCK: u8 = 1;
    pub const UNLCK: u8 = 2;
}

/// Flags of Tlock.
pub mod lock_flags {
    /// The client would block (it retries while the reply is BLOCKED).
    pub const BLOCK: u32 = 1;
    /// Reclaiming a lock after a server restart.
    pub const RECLAIM: u32 = 2;
}

/// Status values of Rlock.
pub mod lock_status {
    #![allow(missing_docs)]
    pub const SUCCESS: u8 = 0;
    pub const BLOCKED: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const GRACE: u8 = 3;
}

/// The Tunlinkat flag that removes a directory.
pub const AT_REMOVEDIR: u32 = 0x200;

/// Directory entry types (`d_type`) as carried in Rreaddir entries.
pub mod dirent_type {
    #![allow(missing_docs)]
    pub const UNKNOWN: u8 = 0;
    pub const FIFO: u8 = 1;
    pub const CHR: u8 = 2;
    pub const DIR: u8 = 4;
    pub const BLK: u8 = 6;
    pub const REG: u8 = 8;
    pub const LNK: u8 = 10;
    pub const SOCK: u8 = 12;
}

/// Linux errno values, as carried by Rlerror.
pub mod errno {
    #![allow(missing_docs)]
    pub const EPERM: u32 = 1;
    pub const ENOENT: u32 = 2;
    pub const EINTR: u32 = 4;
    pub const EIO: u32 = 5;
    pub const ENXIO: u32 = 6;
    pub const E2BIG: u32 = 7;
    pub const EBADF: u32 = 9;
    pub const EAGAIN: u32 = 11;
    pub const ENOMEM: u32 = 12;
    pub const EACCES: u32 = 13;
    pub const EFAULT: u32 = 14;
    pub const EBUSY: u32 = 16;
    pub const EEXIST: u32 = 17;
    pub const EXDEV: u32 = 18;
    pub const ENODEV: u32 = 19;
    pub const ENOTDIR: u32 = 20;
    pub const EISDIR: u32 = 21;
    pub const EINVAL: u32 = 22;
    pub const ENFILE: u32 = 23;
    pub const EMFILE: u32 = 24;
    pub const ETXTBSY: u32 = 26;
    pub const EFBIG: u32 = 27;
    pub const ENOSPC: u32 = 28;
    pub const ESPIPE: u32 = 29;
    pub const EROFS: u32 = 30;
    pub const EMLINK: u32 = 31;
    pub const ERANGE: u32 = 34;
    pub const EDEADLK: u32 = 35;
    pub const ENAMETOOLONG: u32 = 36;
    pub const ENOLCK: u32 = 37;
    pub const ENOSYS: u32 = 38;
    pub const ENOTEMPTY: u32 = 39;
    pub const ELOOP: u32 = 40;
    pub const ENODATA: u32 = 61;
    pub const EPROTO: u32 = 71;
    pub const EBADMSG: u32 = 74;
    pub const EOVERFLOW: u32 = 75;
    pub const EMSGSIZE: u32 = 90;
    pub const EOPNOTSUPP: u32 = 95;
    pub const ENOTSUP: u32 = 95;
    pub const ESTALE: u32 = 116;
    pub const EDQUOT: u32 = 122;
}
