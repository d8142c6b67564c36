//! Changing directory entries: Tsymlink, Tmknod, Tmkdir, Tlink, Trename, Trenameat,
//! Tunlinkat and Tremove. (Tlcreate, which also opens the new file, is in `open`.)

use std::sync::Arc;

use ninep::Response;
use rustix::io::Errno;

use super::{Reply, Session};
use crate::attr;
use crate::fid::Fid;
use crate::fs::{Export, FsResult, Node, ops};

impl Session {
    pub(super) fn symlink(
        &self,
        dfid: u32,
        name: &[u8],
        target: &[u8],
        gid: u32,
    ) -> FsResult<Reply> {
        let qid = self.make_entry(dfid, gid, |export, dir| {
            ops::symlink(export, dir, name, target)
        })?;
        Ok(Response::Symlink { qid }.into())
    }

    pub(super) fn mknod(
        &self,
        dfid: u32,
        name: &[u8],
        mode: u32,
        (major, minor): (u32, u32),
        gid: u32,
    ) -> FsResult<Reply> {
        let qid = self.make_entry(dfid, gid, |export, dir| {
            ops::mknod(export, dir, name, mode, major, minor)
        })?;
        Ok(Response::Mknod { qid }.into())
    }

    pub(super) fn mkdir(&self, dfid: u32, name: &[u8], mode: u32, gid: u32) -> FsResult<Reply> {
        let qid = self.make_entry(dfid, gid, |export, dir| ops::mkdir(export, dir, name, mode))?;
        Ok(Response::Mkdir { qid }.into())
    }

    pub(super) fn link(&self, dfid: u32, fid: u32, name: &[u8]) -> FsResult<Reply> {
        let dir = self.fid(dfid)?;
        let target = self.fid(fid)?;
        same_export(&dir, &target)?;
        let (dir_node, target_node) = (dir.node(), target.node());
        let _as = dir.identity.enter()?;
        ops::link(&dir.share.fs, &dir_node, &target_node, name)?;
        Ok(Response::Link.into())
    }

    pub(super) fn renameat(
        &self,
        olddirfid: u32,
        oldname: &[u8],
        newdirfid: u32,
        newname: &[u8],
    ) -> FsResult<Reply> {
        let old = self.fid(olddirfid)?;
        let new = self.fid(newdirfid)?;
        same_export(&old, &new)?;
        let (old_dir, new_dir) = (old.node(), new.node());
        let _as = old.identity.enter()?;
        ops::renameat(&old.share.fs, &old_dir, oldname, &new_dir, newname)?;
        Ok(Response::Renameat.into())
    }

    /// Trename: renames the entry the fid was walked through (or created as), if that entry
    /// still names the fid's file.
    pub(super) fn rename(&self, fid: u32, dfid: u32, name: &[u8]) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        let new_dir = self.fid(dfid)?;
        same_export(&fid, &new_dir)?;
        let new_dir = new_dir.node();
        let mut inner = fid.lock();
        let (old_dir, old_name) = inner.origin.clone().ok_or(Errno::BUSY)?;
        let _as = fid.identity.enter()?;
        ops::still_named(&old_dir, &old_name, &inner.node)?;
        ops::renameat(&fid.share.fs, &old_dir, &old_name, &new_dir, name)?;
        inner.origin = Some((new_dir, name.to_vec()));
        Ok(Response::Rename.into())
    }

    pub(super) fn unlinkat(&self, dirfid: u32, name: &[u8], flags: u32) -> FsResult<Reply> {
        let fid = self.fid(dirfid)?;
        let dir = fid.node();
        let _as = fid.identity.enter()?;
        ops::unlinkat(&fid.share.fs, &dir, name, flags)?;
        Ok(Response::Unlinkat.into())
    }

    /// Tremove: removes the entry the fid was walked through, if it still names the fid's
    /// file. The fid is clunked whether or not the removal succeeds.
    pub(super) fn remove(&self, fid: u32) -> FsResult<Reply> {
        let fid = self.table().remove(&fid).ok_or(Errno::BADF)?;
        let inner = fid.lock();
        let (dir, name) = inner.origin.clone().ok_or(Errno::BUSY)?;
        let _as = fid.identity.enter()?;
        ops::still_named(&dir, &name, &inner.node)?;
        let flags = if inner.node.is_dir() {
            ops::AT_REMOVEDIR
        } else {
            0
        };
        ops::unlinkat(&fid.share.fs, &dir, &name, flags)?;
        Ok(Response::Remove.into())
    }

    /// Runs `make` in the directory of `dfid`, as the fid's user with the group `gid`, and
    /// answers the new entry's qid.
    fn make_entry(
        &self,
        dfid: u32,
        gid: u32,
        make: impl FnOnce(&Export, &Node) -> FsResult<Node>,
    ) -> FsResult<ninep::Qid> {
        let fid = self.fid(dfid)?;
        let dir = fid.node();
        let _as = fid.identity.with_gid(gid).enter()?;
        let node = make(&fid.share.fs, &dir)?;
        Ok(attr::qid(fid.share.fs.qid(&node)?))
    }
}

/// Refuses an operation on two fids of different exports (`EXDEV`, as for a rename across
/// mounts): each export has its own options, such as being read-only.
fn same_export(a: &Fid, b: &Fid) -> FsResult<()> {
    if Arc::ptr_eq(&a.share, &b.share) {
        Ok(())
    } else {
        Err(Errno::XDEV)
    }
}
