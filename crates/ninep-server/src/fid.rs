//! A fid: the client's handle on a file, and what the server holds for it.
//!
//! Everything a fid owns (its `O_PATH` descriptor, an open descriptor, lock owner
//! descriptions, an xattr buffer) is released by `Drop` when the fid leaves the table, so a
//! clunk, a Tversion and a disconnect all clean up the same way.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::io::Errno;

use crate::exports::Share;
use crate::fs::creds::Identity;
use crate::fs::lock::Owners;
use crate::fs::{Node, Top};

/// An opened regular file.
#[derive(Debug)]
pub struct DataFile {
    fd: OwnedFd,
    in_memory: bool,
    /// One write at a time: Linux serialises buffered writes to a file on its inode lock anyway,
    /// and writers queued on the blocking pool would spin on that lock, burning the CPUs the
    /// writer holding it needs (measured: up to 4x the CPU time per byte with four writes of
    /// 1 MiB in flight). Waiting here costs no thread; a flushed request leaves the queue by
    /// dropping its turn.
    write_turn: tokio::sync::Semaphore,
}

impl DataFile {
    /// `in_memory`: whether the file lives in memory ([`crate::fs::Export::in_memory`]).
    pub fn new(fd: OwnedFd, in_memory: bool) -> DataFile {
        DataFile {
            fd,
            in_memory,
            write_turn: tokio::sync::Semaphore::new(1),
        }
    }

    /// Waits for this file's turn to write (see `write_turn`). The semaphore is never closed,
    /// so this is always `Some`.
    pub async fn write_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.write_turn.acquire().await.ok()
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Whether the file lives in memory (tmpfs, ramfs): reading it never waits for a device,
    /// so reads run inline instead of on the blocking pool.
    pub fn in_memory(&self) -> bool {
        self.in_memory
    }
}

impl AsFd for DataFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What an open fid reads and writes.
#[derive(Debug)]
pub enum OpenFile {
    /// A regular file.
    Data(Arc<DataFile>),
    /// A directory descriptor (its position is the readdir cursor, hence the mutex) and the
    /// directory's device, for the qids of its entries.
    Dir(Arc<Mutex<OwnedFd>>, u64),
    /// A FIFO, socket or device: metadata only, data I/O is refused.
    Special,
}

/// The state of a fid beyond the file it names.
#[derive(Debug)]
pub enum FidState {
    /// Walked or attached, not opened.
    Path,
    /// Opened by Tlopen or Tlcreate.
    Open { file: OpenFile, locks: Owners },
    /// Made by Txattrwalk: the value (or name list) to be read.
    XattrRead(Vec<u8>),
    /// Made by Txattrcreate: the value being written, set on clunk.
    XattrWrite {
        name: Vec<u8>,
        size: u64,
        flags: u32,
        value: Vec<u8>,
    },
}

impl FidState {
    /// The opened regular file (for Tread, Twrite, Tfsync, Tsetattr), or why there is none:
    /// `EISDIR` for an opened directory, `EINVAL` for a special file, `EBADF` for a fid not
    /// opened.
    pub fn data_file(&self) -> Result<&Arc<DataFile>, Errno> {
        match self {
            FidState::Open { file, .. } => match file {
                OpenFile::Data(fd) => Ok(fd),
                OpenFile::Dir(..) => Err(Errno::ISDIR),
                OpenFile::Special => Err(Errno::INVAL),
            },
            _ => Err(Errno::BADF),
        }
    }

    /// An opened regular file's descriptor and its lock owners, for Tlock and Tgetlock.
    pub fn lockable(&mut self) -> Option<(&Arc<DataFile>, &mut Owners)> {
        match self {
            FidState::Open {
                file: OpenFile::Data(fd),
                locks,
            } => Some((fd, locks)),
            _ => None,
        }
    }
}

/// The mutable part of a fid.
#[derive(Debug)]
pub struct FidInner {
    pub node: Node,
    /// The directory and name this fid was last walked through, for Trename and Tremove,
    /// which name no parent.
    pub origin: Option<(Node, Vec<u8>)>,
    pub state: FidState,
}

/// One entry of a connection's fid table.
#[derive(Debug)]
pub struct Fid {
    /// The export the fid was attached to: it stays usable for the fid after a reload removes it.
    pub share: Arc<Share>,
    pub identity: Identity,
    /// Where this fid's tree starts (see [`Top`]).
    pub top: Top,
    inner: Mutex<FidInner>,
}

impl Fid {
    pub fn new(
        share: Arc<Share>,
        identity: Identity,
        top: Top,
        node: Node,
        origin: Option<(Node, Vec<u8>)>,
    ) -> Self {
        Self {
            share,
            identity,
            top,
            inner: Mutex::new(FidInner {
                node,
                origin,
                state: FidState::Path,
            }),
        }
    }

    /// Locks the fid's state. Never held across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, FidInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn node(&self) -> Node {
        self.lock().node.clone()
    }
}
