//! Reading and changing a file's metadata: Tgetattr, Tsetattr, Treadlink and Tstatfs.

use bytes::Bytes;
use ninep::Response;

use super::{Reply, Session};
use crate::attr;
use crate::fid::DataFile;
use crate::fs::setattr::{self, SetAttr};
use crate::fs::{FsResult, device, ops};

impl Session {
    pub(super) fn getattr(&self, fid: u32) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        let st = fid.node().statx()?;
        Ok(Response::Getattr(attr::attr(&fid.share.fs, &st)).into())
    }

    /// Tsetattr, through the fid's open descriptor when it has one (so that an open file
    /// whose name is gone can still be truncated).
    pub(super) fn setattr(&self, fid: u32, a: &ninep::SetAttr) -> FsResult<Reply> {
        tracing::trace!(fid, ?a, "Tsetattr");
        let fid = self.fid(fid)?;
        let set = SetAttr {
            valid: a.valid,
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            atime: (a.atime.sec, a.atime.nsec),
            mtime: (a.mtime.sec, a.mtime.nsec),
        };
        let inner = fid.lock();
        let open = inner.state.data_file().ok().cloned();
        let _as = fid.identity.enter()?;
        setattr::setattr(
            &fid.share.fs,
            &inner.node,
            open.as_deref().map(DataFile::fd),
            &set,
        )?;
        Ok(Response::Setattr.into())
    }

    pub(super) fn readlink(&self, fid: u32) -> FsResult<Reply> {
        let target = ops::readlink(&self.fid(fid)?.node())?;
        Ok(Response::Readlink {
            target: Bytes::from(target),
        }
        .into())
    }

    pub(super) fn statfs(&self, fid: u32) -> FsResult<Reply> {
        let node = self.fid(fid)?.node();
        let st = node.statx()?;
        Ok(Response::Statfs(attr::statfs(&ops::statfs(&node)?, device(&st))).into())
    }
}
