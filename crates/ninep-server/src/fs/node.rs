//! The export root and the `O_PATH` descriptors that fids hold.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Statx, StatxFlags};
use rustix::io::Errno;

use super::name::{self, Component};
use super::qid::{DeviceMap, QidParts};
use super::{FsResult, device, ops};

/// How every client-supplied name is resolved: never above the starting directory, never
/// through a symlink or a `/proc` magic link.
pub const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_SYMLINKS);

/// An open file handle on a file of the export, without any access to its data.
#[derive(Debug, Clone)]
pub struct Node {
    fd: Arc<OwnedFd>,
    kind: FileType,
}

impl Node {
    /// Wraps a descriptor, returning the file's `statx` too (one syscall for both).
    pub fn from_fd_stat(fd: OwnedFd) -> FsResult<(Self, Statx)> {
        let st = statx_fd(fd.as_fd())?;
        let kind = FileType::from_raw_mode(u32::from(st.stx_mode));
        Ok((
            Self {
                fd: Arc::new(fd),
                kind,
            },
            st,
        ))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn kind(&self) -> FileType {
        self.kind
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    /// FIFOs, sockets and devices: their metadata is served, their data never.
    pub fn is_special(&self) -> bool {
        matches!(
            self.kind,
            FileType::Fifo | FileType::Socket | FileType::CharacterDevice | FileType::BlockDevice
        )
    }

    /// Full `statx` of the file itself (never following a symlink).
    pub fn statx(&self) -> FsResult<Statx> {
        statx_fd(self.fd())
    }

    /// Opens one name below this directory as a new `O_PATH` node; symlinks are not followed.
    pub fn lookup(&self, name: &[u8]) -> FsResult<Node> {
        Ok(self.lookup_stat(name)?.0)
    }

    /// [`Node::lookup`], returning the new node's `statx` as well.
    pub fn lookup_stat(&self, name: &[u8]) -> FsResult<(Node, Statx)> {
        let fd = rustix::fs::openat2(
            self.fd(),
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )?;
        Node::from_fd_stat(fd)
    }
}

fn statx_fd(fd: BorrowedFd<'_>) -> FsResult<Statx> {
    rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
}

/// The exported directory tree and the per-server settings every operation needs.
#[derive(Debug)]
pub struct Export {
    root: Node,
    root_id: (u64, u64),
    /// Whether the root's filesystem is kept in memory, asked once instead of on every open.
    root_in_memory: bool,
    devices: DeviceMap,
    read_only: bool,
}

impl Export {
    /// Opens `dir` as the export root.
    pub fn open(dir: &Path, read_only: bool) -> FsResult<Self> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let root_in_memory = ops::is_in_memory(&fd);
        let (root, st) = Node::from_fd_stat(fd)?;
        let dev = device(&st);
        Ok(Self {
            root,
            root_id: (dev, st.stx_ino),
            root_in_memory,
            devices: DeviceMap::new(dev),
            read_only,
        })
    }

    pub fn root(&self) -> &Node {
        &self.root
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Refuses a modifying operation on a read-only export.
    pub fn writable(&self) -> FsResult<()> {
        if self.read_only {
            Err(Errno::ROFS)
        } else {
            Ok(())
        }
    }

    pub fn qid_of(&self, st: &Statx) -> QidParts {
        self.devices.qid(st)
    }

    pub fn qid(&self, node: &Node) -> FsResult<QidParts> {
        Ok(self.qid_of(&node.statx()?))
    }

    /// Whether the file `st` describes, open as `file`, lives in memory (see
    /// [`ops::is_in_memory`]). Only a file on another filesystem than the root's costs a syscall.
    pub fn in_memory(&self, st: &Statx, file: impl AsFd) -> bool {
        if device(st) == self.root_id.0 {
            self.root_in_memory
        } else {
            ops::is_in_memory(file)
        }
    }

    /// The qid path of a directory entry found by readdir.
    pub fn entry_path(&self, dir_dev: u64, ino: u64) -> u64 {
        self.devices.path(dir_dev, ino)
    }

    fn is_root(&self, st: &Statx) -> bool {
        (device(st), st.stx_ino) == self.root_id
    }

    /// Resolves one walk element from `from`, returning the node and its `statx`.
    ///
    /// `..` at the export root stays at the root; elsewhere `..` is the real parent (a client
    /// can only have reached `from` from inside the export, and every rename it can make
    /// stays inside too).
    pub fn walk_one(&self, from: &Node, element: &[u8]) -> FsResult<(Node, Statx)> {
        if !from.is_dir() {
            return Err(Errno::NOTDIR);
        }
        match name::component(element)? {
            Component::Current => Ok((from.clone(), from.statx()?)),
            Component::Parent => {
                let st = from.statx()?;
                if self.is_root(&st) {
                    return Ok((self.root.clone(), st));
                }
                let fd = rustix::fs::openat2(
                    from.fd(),
                    "..",
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS,
                )?;
                Node::from_fd_stat(fd)
            }
            Component::Name(n) => from.lookup_stat(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statx_of(file: &std::fs::File) -> Statx {
        statx_fd(file.as_fd()).unwrap()
    }

    #[test]
    fn in_memory_is_learnt_from_the_root_and_asked_for_other_filesystems() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let export = Export::open(shm.path(), false).unwrap();
        let inside = std::fs::File::create(shm.path().join("f")).unwrap();
        assert!(export.in_memory(&statx_of(&inside), &inside));
        let proc = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!export.in_memory(&statx_of(&proc), &proc));

        let on_proc = Export::open(Path::new("/proc/self"), true).unwrap();
        assert!(!on_proc.in_memory(&statx_of(&proc), &proc));
        assert!(on_proc.in_memory(&statx_of(&inside), &inside));
    }
}
