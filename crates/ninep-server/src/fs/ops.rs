//! Creating, opening, linking, renaming and removing files, and their data I/O.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, StatFs, Statx};
use rustix::io::Errno;

use super::name;
use super::node::{Export, Node, RESOLVE};
use super::{FsResult, proc_path};

/// Linux open flags a client may pass through (the 9P2000.L values are Linux's x86 ones).
/// Creation, `O_PATH`, `O_TMPFILE`, `O_DIRECT`, `O_NOATIME` and `O_NOCTTY` never pass.
const PASSED_OPEN_FLAGS: u32 = 0o3 // O_ACCMODE
    | 0o1000 // O_TRUNC
    | 0o2000 // O_APPEND
    | 0o4000 // O_NONBLOCK
    | 0o4010000 // O_SYNC (includes O_DSYNC)
    | 0o200000; // O_DIRECTORY
const O_EXCL: u32 = 0o200;

/// `AT_REMOVEDIR` as sent in Tunlinkat.
pub const AT_REMOVEDIR: u32 = 0x200;

/// Translates client open flags into the flags the server opens with.
pub fn open_flags(export: &Export, flags: u32) -> FsResult<OFlags> {
    let passed = flags & PASSED_OPEN_FLAGS;
    let access = passed & 0o3;
    if access == 0o3 {
        return Err(Errno::INVAL);
    }
    if (access != 0 || passed & 0o1000 != 0) && export.read_only() {
        return Err(Errno::ROFS);
    }
    Ok(OFlags::from_bits_retain(passed) | OFlags::CLOEXEC)
}

/// Opens the data of a file for Tlopen. Special files are not opened at all (their I/O is
/// refused, so nothing can block on a FIFO or touch a host device): `None` is returned.
pub fn open(export: &Export, node: &Node, flags: u32) -> FsResult<Option<OwnedFd>> {
    let oflags = open_flags(export, flags)?;
    match node.kind() {
        FileType::Symlink => Err(Errno::LOOP),
        _ if node.is_special() => Ok(None),
        FileType::Directory => {
            if oflags.intersects(OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC) {
                return Err(Errno::ISDIR);
            }
            reopen(node, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC).map(Some)
        }
        _ => reopen(node, oflags).map(Some),
    }
}

/// Opens the inode behind an `O_PATH` descriptor with real access, through its `/proc` link.
pub fn reopen(node: &Node, flags: OFlags) -> FsResult<OwnedFd> {
    rustix::fs::open(proc_path(node.fd()), flags | OFlags::CLOEXEC, Mode::empty())
}

/// Tlcreate: creates and opens a regular file; without `O_EXCL`, a name already in use is
/// opened as Tlopen opens it. Returns the node, its `statx` and its open descriptor (`None` for
/// a special file that was already there).
///
/// The name is only ever opened with `O_CREAT | O_EXCL`, which cannot open an existing file:
/// `O_CREAT` alone would wait for a writer on a FIFO, holding a worker, and would open a
/// device's data, which Tlopen never does.
pub fn create(
    export: &Export,
    dir: &Node,
    name: &[u8],
    flags: u32,
    mode: u32,
) -> FsResult<(Node, Statx, Option<OwnedFd>)> {
    export.writable()?;
    let name = name::entry(name)?;
    let mut oflags = open_flags(export, flags)? | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
    oflags.remove(OFlags::DIRECTORY);
    let mode = Mode::from_raw_mode(mode & 0o7777);
    // A name that disappears between the create and the lookup is created again, a few times.
    for _ in 0..3 {
        match rustix::fs::openat2(dir.fd(), name, oflags, mode, RESOLVE) {
            Ok(fd) => {
                let (node, st) = Node::from_fd_stat(rustix::io::dup(&fd)?)?;
                return Ok((node, st, Some(fd)));
            }
            Err(Errno::EXIST) if flags & O_EXCL == 0 => match dir.lookup_stat(name) {
                Ok((node, _)) if node.is_dir() => return Err(Errno::ISDIR),
                Ok((node, st)) => {
                    let fd = open(export, &node, flags)?;
                    return Ok((node, st, fd));
                }
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Err(Errno::AGAIN)
}

pub fn mkdir(export: &Export, dir: &Node, name: &[u8], mode: u32) -> FsResult<Node> {
    export.writable()?;
    let name = name::entry(name)?;
    rustix::fs::mkdirat(dir.fd(), name, Mode::from_raw_mode(mode & 0o7777))?;
    dir.lookup(name)
}

pub fn symlink(export: &Export, dir: &Node, name: &[u8], target: &[u8]) -> FsResult<Node> {
    export.writable()?;
    let name = name::entry(name)?;
    if target.contains(&0) {
        return Err(Errno::INVAL);
    }
    rustix::fs::symlinkat(target, dir.fd(), name)?;
    dir.lookup(name)
}

pub fn mknod(
    export: &Export,
    dir: &Node,
    name: &[u8],
    mode: u32,
    major: u32,
    minor: u32,
) -> FsResult<Node> {
    export.writable()?;
    let name = name::entry(name)?;
    let kind = FileType::from_raw_mode(mode);
    if matches!(
        kind,
        FileType::Directory | FileType::Symlink | FileType::Unknown
    ) {
        return Err(Errno::INVAL);
    }
    let dev = rustix::fs::makedev(major, minor);
    rustix::fs::mknodat(
        dir.fd(),
        name,
        kind,
        Mode::from_raw_mode(mode & 0o7777),
        dev,
    )?;
    dir.lookup(name)
}

/// Tlink: a new name in `dir` for the file `target`.
pub fn link(export: &Export, dir: &Node, target: &Node, name: &[u8]) -> FsResult<()> {
    export.writable()?;
    let name = name::entry(name)?;
    if target.is_dir() {
        return Err(Errno::PERM);
    }
    match rustix::fs::linkat(target.fd(), "", dir.fd(), name, AtFlags::EMPTY_PATH) {
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link works for everyone.
        Err(Errno::NOENT) | Err(Errno::PERM) if target.kind() != FileType::Symlink => {
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc_path(target.fd()),
                dir.fd(),
                name,
                AtFlags::SYMLINK_FOLLOW,
            )
        }
        other => other,
    }
}

pub fn renameat(
    export: &Export,
    old_dir: &Node,
    old: &[u8],
    new_dir: &Node,
    new: &[u8],
) -> FsResult<()> {
    export.writable()?;
    let old = name::entry(old)?;
    let new = name::entry(new)?;
    rustix::fs::renameat_with(old_dir.fd(), old, new_dir.fd(), new, RenameFlags::empty())
}

pub fn unlinkat(export: &Export, dir: &Node, name: &[u8], flags: u32) -> FsResult<()> {
    export.writable()?;
    let name = name::entry(name)?;
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::INVAL);
    }
    let at = if flags & AT_REMOVEDIR != 0 {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    rustix::fs::unlinkat(dir.fd(), name, at)
}

/// Checks that `name` in `dir` is still the file `node` holds, before Tremove or Trename
/// act on that name. Those two name no parent, so the server uses the directory and name the
/// fid was walked through, and meanwhile another client (or a host process) may have renamed
/// the file away or put another file under the name: acting on the name then would remove or
/// move a file the client never meant.
///
/// A mismatch answers `ENOENT` rather than `ESTALE`: the fid's file still exists and the fid
/// keeps working for everything else (getattr, I/O, locks), so the handle is not stale; what
/// is gone is that file's entry under this name, which is what `ENOENT` says and what the
/// same call would report locally once the name had gone. `ESTALE` would also make the Linux
/// VFS retry the whole system call with revalidation, which cannot help here.
///
/// Compares device and inode of the entry (not following a symlink) with the fid's own
/// `fstat`. Linux has no unlink or rename conditional on the inode, so a change between this
/// check and the call that follows is still possible; the check closes every wider window.
pub fn still_named(dir: &Node, name: &[u8], node: &Node) -> FsResult<()> {
    let name = name::entry(name)?;
    let entry = rustix::fs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW)?;
    let ours = rustix::fs::fstat(node.fd())?;
    if (entry.st_dev, entry.st_ino) == (ours.st_dev, ours.st_ino) {
        Ok(())
    } else {
        Err(Errno::NOENT)
    }
}

pub fn readlink(node: &Node) -> FsResult<Vec<u8>> {
    if node.kind() != FileType::Symlink {
        return Err(Errno::INVAL);
    }
    Ok(rustix::fs::readlinkat(node.fd(), "", Vec::new())?.into_bytes())
}

pub fn statfs(node: &Node) -> FsResult<StatFs> {
    rustix::fs::fstatfs(node.fd())
}

pub fn fsync(file: BorrowedFd<'_>, datasync: bool) -> FsResult<()> {
    if datasync {
        rustix::fs::fdatasync(file)
    } else {
        rustix::fs::fsync(file)
    }
}

/// Reads up to `count` bytes at `offset`, appending them to `out` (which already holds the
/// reply header, so the data is copied once, from the kernel into the reply frame).
///
/// When `out` has exactly `count` bytes of spare capacity the kernel writes straight into it;
/// otherwise the bytes are zeroed first.
pub fn read_into(file: impl AsFd, offset: u64, count: usize, out: &mut Vec<u8>) -> FsResult<usize> {
    let start = out.len();
    if count == 0 {
        return Ok(0);
    }
    if out.capacity() - start == count {
        let n = retry(|| {
            rustix::io::pread(
                file.as_fd(),
                rustix::buffer::spare_capacity(&mut *out),
                offset,
            )
        })?;
        debug_assert_eq!(out.len(), start + n);
        return Ok(n);
    }
    out.resize(start + count, 0);
    match retry(|| rustix::io::pread(file.as_fd(), &mut out[start..], offset)) {
        Ok(n) => {
            out.truncate(start + n);
            Ok(n)
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Repeats a syscall interrupted by a signal.
fn retry<T>(mut f: impl FnMut() -> FsResult<T>) -> FsResult<T> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

pub fn write(file: impl AsFd, offset: u64, data: &[u8]) -> FsResult<usize> {
    retry(|| rustix::io::pwrite(file.as_fd(), data, offset))
}

/// Whether `file` lives on a filesystem kept in memory (tmpfs, ramfs), whose reads never wait
/// for a device.
pub fn is_in_memory(file: impl AsFd) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    rustix::fs::fstatfs(file).is_ok_and(|st| {
        #[allow(
            clippy::unnecessary_cast,
            reason = "f_type is narrower on some targets"
        )]
        let kind = st.f_type as i64;
        kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
    })
}

/// Whether `len` bytes at `offset` lie inside `file`'s current size: writing them replaces
/// pages the file already has instead of allocating new ones.
pub fn overwrites(file: impl AsFd, offset: u64, len: usize) -> bool {
    rustix::fs::fstat(file).is_ok_and(|st| {
        offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= st.st_size as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_is_in_memory_and_procfs_is_not() {
        let shm = tempfile::tempfile_in("/dev/shm").unwrap();
        assert!(is_in_memory(&shm));
        let proc = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!is_in_memory(&proc));
    }

    #[test]
    fn only_bytes_inside_the_file_are_an_overwrite() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(10).unwrap();
        assert!(overwrites(&file, 0, 10));
        assert!(overwrites(&file, 9, 1));
        assert!(!overwrites(&file, 1, 10), "one byte past the end");
        assert!(!overwrites(&file, 10, 1));
        assert!(!overwrites(&file, u64::MAX, 2), "an end that overflows");
    }
}
