//! The filesystem layer: every file operation the server performs, on file descriptors only.
//!
//! A fid's file is an `O_PATH` descriptor ([`Node`]). Walks resolve one validated name at a
//! time with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)`, so no
//! path string is ever built: a client cannot escape the export through `..`, an absolute name,
//! a symlink or a rename race, and paths of any depth work. Operations on an existing file go
//! through its descriptor (or `/proc/self/fd/N` where the kernel has no fd-based call), so
//! they keep working after the file was unlinked.
//!
//! Nothing here knows the wire format; errors are plain errnos.

pub mod creds;
pub mod dir;
pub mod lock;
pub mod name;
pub mod node;
pub mod ops;
pub mod qid;
pub mod setattr;
pub mod xattr;

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::Statx;

pub use node::{Export, Node, Top};

/// The result of a filesystem operation: an errno is what the client receives in Rlerror.
pub type FsResult<T> = Result<T, rustix::io::Errno>;

/// The device a file lives on, from its `statx`.
pub fn device(st: &Statx) -> u64 {
    rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor)
}

/// The `/proc/self/fd/N` path of a descriptor, used to reopen an `O_PATH` fd or reach calls
/// that have no fd-based form. Resolution of this magic link is done by the server itself,
/// never with a client-supplied name.
pub fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}
