//! The qid: the server's unique identity of a file (its `path` becomes the client's inode number).

use crate::consts::qid_type;

/// A file's identity: type bits, a version that changes when the file does, and a unique path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Qid {
    /// Type bits ([`qid_type`]).
    pub ty: u8,
    /// Changes whenever the file changes (clients use it to validate caches).
    pub version: u32,
    /// Unique among all files of the export.
    pub path: u64,
}

impl Qid {
    /// The encoded size of a qid.
    pub const LEN: usize = 13;

    /// Whether the qid names a directory.
    pub fn is_dir(&self) -> bool {
        self.ty & qid_type::DIR != 0
    }

    /// Whether the qid names a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.ty & qid_type::SYMLINK != 0
    }
}
