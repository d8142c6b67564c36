//! The export root and the `O_PATH` descriptors that fids hold.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
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

/// The directory a fid's tree starts at, by device and inode: the export root, or the
/// directory its Tattach named. `..` there stays there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Top {
    dev: u64,
    ino: u64,
}

impl Top {
    pub fn of(st: &Statx) -> Self {
        Self {
            dev: device(st),
            ino: st.stx_ino,
        }
    }
}

/// The longest `aname` taken (the kernel's `PATH_MAX`).
const MAX_ANAME: usize = 4096;

/// The exported directory tree and the per-server settings every operation needs.
#[derive(Debug)]
pub struct Export {
    root: Node,
    root_id: Top,
    /// The absolute paths that name the root in an `aname`: as given, and with symlinks
    /// resolved.
    root_paths: Vec<PathBuf>,
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
        let mut root_paths = Vec::new();
        // An absolute path needs no working directory (nor the getcwd a sandboxed server
        // reloading its exports may not make).
        if dir.is_absolute() {
            root_paths.push(dir.components().collect());
        } else if let Ok(cwd) = std::env::current_dir() {
            root_paths.push(cwd.join(dir).components().collect());
        }
        if let Ok(real) = std::fs::canonicalize(dir) {
            root_paths.push(real);
        }
        root_paths.dedup();
        Ok(Self {
            root,
            root_id: Top::of(&st),
            root_paths,
            root_in_memory,
            devices: DeviceMap::new(device(&st)),
            read_only,
        })
    }

    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The directory a Tattach's `aname` names: the root for an empty name, `/` (the default
    /// of some clients) or the export's own path (as diod's clients send it), a directory
    /// beneath it for a longer absolute path or a relative one. Each element is walked like a
    /// Twalk element (no symlinks, `..` stops at the root). A path outside the export is
    /// `ENOENT`.
    pub fn attach_point(&self, aname: &[u8]) -> FsResult<(Node, Statx)> {
        if aname.len() > MAX_ANAME {
            return Err(Errno::NAMETOOLONG);
        }
        let beneath = self.beneath_root(aname).ok_or(Errno::NOENT)?;
        self.attach_beneath(beneath)
    }

    /// The directory at `path` beneath the root (`/`-separated, empty elements skipped),
    /// walked element by element like a Twalk.
    pub fn attach_beneath(&self, path: &[u8]) -> FsResult<(Node, Statx)> {
        if path.len() > MAX_ANAME {
            return Err(Errno::NAMETOOLONG);
        }
        let beneath = path;
        let mut at = (self.root.clone(), self.root.statx()?);
        for element in beneath.split(|&b| b == b'/').filter(|e| !e.is_empty()) {
            at = self.walk_one(self.root_id, &at.0, element)?;
        }
        if !at.0.is_dir() {
            return Err(Errno::NOTDIR);
        }
        Ok(at)
    }

    /// What is left of `aname` below the export root, if it names the root or a path under it.
    pub(crate) fn beneath_root<'a>(&self, aname: &'a [u8]) -> Option<&'a [u8]> {
        if aname.first() != Some(&b'/') {
            return Some(aname);
        }
        if aname == b"/" {
            return Some(b"");
        }
        self.beneath_path(aname)
    }

    /// What is left of the absolute path `aname` below the export's own path (as given or
    /// with symlinks resolved), if it is that path or one under it.
    pub(crate) fn beneath_path<'a>(&self, aname: &'a [u8]) -> Option<&'a [u8]> {
        if aname.first() != Some(&b'/') {
            return None;
        }
        self.root_paths.iter().find_map(|root| {
            let root = root.as_os_str().as_bytes();
            let rest = aname.strip_prefix(root.strip_suffix(b"/").unwrap_or(root))?;
            (rest.is_empty() || rest[0] == b'/').then_some(rest)
        })
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
        if device(st) == self.root_id.dev {
            self.root_in_memory
        } else {
            ops::is_in_memory(file)
        }
    }

    /// The qid path of a directory entry found by readdir.
    pub fn entry_path(&self, dir_dev: u64, ino: u64) -> u64 {
        self.devices.path(dir_dev, ino)
    }

    /// Resolves one walk element from `from`, in the tree that starts at `top`, returning
    /// the node and its `statx`.
    ///
    /// `..` at `top` or at the export root stays there; elsewhere `..` is the real parent (a
    /// client can only have reached `from` from inside the export, and every rename it can
    /// make stays inside too).
    pub fn walk_one(&self, top: Top, from: &Node, element: &[u8]) -> FsResult<(Node, Statx)> {
        if !from.is_dir() {
            return Err(Errno::NOTDIR);
        }
        match name::component(element)? {
            Component::Current => Ok((from.clone(), from.statx()?)),
            Component::Parent => {
                let st = from.statx()?;
                let here = Top::of(&st);
                if here == top || here == self.root_id {
                    return Ok((from.clone(), st));
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

    #[test]
    fn an_absolute_aname_names_the_export_as_given_or_resolved() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let alias = tmp.path().join("alias");
        std::os::unix::fs::symlink(&real, &alias).unwrap();
        let export = Export::open(&alias.join("."), true).unwrap();
        for root in [&alias, &real] {
            let root = root.display();
            let beneath = |aname: String| export.beneath_root(aname.as_bytes()).map(<[u8]>::to_vec);
            assert_eq!(beneath(format!("{root}")), Some(b"".to_vec()));
            assert_eq!(beneath(format!("{root}/x/y")), Some(b"/x/y".to_vec()));
            assert_eq!(beneath(format!("{root}x")), None);
        }
        assert_eq!(export.beneath_root(b"/"), Some(&b""[..]));
        assert_eq!(export.beneath_root(b"/x"), None);
        assert_eq!(export.beneath_root(b"rel/x"), Some(&b"rel/x"[..]));

        // A relative export is named by its absolute path.
        let here = std::env::current_dir().unwrap();
        let relative = Export::open(Path::new("src"), true).unwrap();
        let aname = format!("{}/src/fs", here.display());
        assert_eq!(relative.beneath_root(aname.as_bytes()), Some(&b"/fs"[..]));
    }
}
