//! Treaddir over `getdents64`, with the kernel's `d_off` as the resumable cookie.
//!
//! Each call seeks the directory descriptor to the client's offset (a previous `d_off`, or 0)
//! and returns whole entries only, so a listing is O(n) overall and stays correct while
//! entries are added or removed.

use std::mem::MaybeUninit;
use std::os::fd::AsFd;

use rustix::fs::{FileType, RawDir, SeekFrom};

use super::FsResult;
use super::node::Export;
use super::qid::{QidParts, qid_type};

/// One directory entry as Rreaddir carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub qid: QidParts,
    /// The cookie that resumes the listing after this entry.
    pub offset: u64,
    /// The `DT_*` type.
    pub kind: u8,
    pub name: Vec<u8>,
}

/// Size of an entry in an Rreaddir payload: `qid[13] offset[8] type[1] name[s]`.
pub fn wire_size(name_len: usize) -> usize {
    13 + 8 + 1 + 2 + name_len
}

/// Reads the entries from cookie `offset` whose encoded size fits in `count` bytes.
pub fn read(
    export: &Export,
    dir: impl AsFd,
    dir_dev: u64,
    offset: u64,
    count: usize,
) -> FsResult<Vec<DirEntry>> {
    rustix::fs::seek(dir.as_fd(), SeekFrom::Start(offset))?;
    // getdents64 records are never larger than our encoded entries plus a few bytes.
    let mut buf = vec![MaybeUninit::<u8>::uninit(); count.clamp(1024, 1 << 20)];
    let mut raw = RawDir::new(dir.as_fd(), &mut buf);
    let mut used = 0;
    let mut entries = Vec::new();
    while let Some(entry) = raw.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        let size = wire_size(name.len());
        if used + size > count {
            break;
        }
        used += size;
        let kind = entry.file_type();
        entries.push(DirEntry {
            qid: QidParts {
                ty: qid_type(kind),
                version: 0,
                path: export.entry_path(dir_dev, entry.ino()),
            },
            offset: entry.next_entry_cookie(),
            kind: dirent_type(kind),
            name: name.to_vec(),
        });
    }
    Ok(entries)
}

fn dirent_type(kind: FileType) -> u8 {
    match kind {
        FileType::Fifo => 1,
        FileType::CharacterDevice => 2,
        FileType::Directory => 4,
        FileType::BlockDevice => 6,
        FileType::RegularFile => 8,
        FileType::Symlink => 10,
        FileType::Socket => 12,
        FileType::Unknown => 0,
    }
}
