//! Opening a fid for I/O: Tlopen, and Tlcreate (which creates the file and opens it).

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use ninep::Response;
use rustix::fs::Statx;
use rustix::io::Errno;

use super::{Reply, Session};
use crate::attr;
use crate::fid::{DataFile, FidState, OpenFile};
use crate::fs::{Export, FsResult, Node, device, ops};

impl Session {
    pub(super) fn lopen(&self, fid: u32, flags: u32) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        let export = &fid.share.fs;
        let mut inner = fid.lock();
        if !matches!(inner.state, FidState::Path) {
            return Err(Errno::BADF);
        }
        let _as = fid.identity.enter()?;
        let file = ops::open(export, &inner.node, flags)?;
        let st = inner.node.statx()?;
        inner.state = FidState::Open {
            file: open_file(export, &inner.node, &st, file),
            locks: Default::default(),
        };
        Ok(Response::Lopen {
            qid: attr::qid(export.qid_of(&st)),
            iounit: self.iounit(),
        }
        .into())
    }

    /// Tlcreate: the directory fid becomes the new file's fid, opened.
    pub(super) fn lcreate(
        &self,
        fid: u32,
        name: &[u8],
        flags: u32,
        mode: u32,
        gid: u32,
    ) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        let export = &fid.share.fs;
        let mut inner = fid.lock();
        if !matches!(inner.state, FidState::Path) || !inner.node.is_dir() {
            return Err(Errno::BADF);
        }
        let _as = fid.identity.with_gid(gid).enter()?;
        let (node, st, file) = ops::create(export, &inner.node, name, flags, mode)?;
        let file = open_file(export, &node, &st, file);
        let dir = std::mem::replace(&mut inner.node, node);
        inner.origin = Some((dir, name.to_vec()));
        inner.state = FidState::Open {
            file,
            locks: Default::default(),
        };
        Ok(Response::Lcreate {
            qid: attr::qid(export.qid_of(&st)),
            iounit: self.iounit(),
        }
        .into())
    }

    /// The most a client should ask for in one Tread or Twrite. For a large msize it is a
    /// whole number of pages, so that a client reading or writing a file sequentially from
    /// its start (as the kernel's v9fs does, in `iounit` steps) keeps every request
    /// page-aligned: whole pages spliced, no partial page cache pages written.
    fn iounit(&self) -> u32 {
        let most = self.msize() - ninep::P9_IOHDRSZ;
        let page = rustix::param::page_size() as u32;
        if most >= 16 * page {
            most / page * page
        } else {
            most
        }
    }
}

/// What an opened `node` reads and writes: `file` is `None` for a special file, which gets no
/// descriptor.
fn open_file(export: &Export, node: &Node, st: &Statx, file: Option<OwnedFd>) -> OpenFile {
    match file {
        None => OpenFile::Special,
        Some(fd) if node.is_dir() => OpenFile::Dir(Arc::new(Mutex::new(fd)), device(st)),
        Some(fd) => {
            let in_memory = export.in_memory(st, &fd);
            OpenFile::Data(Arc::new(DataFile::new(fd, in_memory)))
        }
    }
}
