//! Extended attributes (and so POSIX ACLs) through 9P2000.L's two phases: Txattrwalk reads a
//! value into a new fid that Tread then returns; Txattrcreate turns a fid into a buffer that
//! Twrite fills and Tclunk applies.

use std::sync::Arc;

use ninep::Response;
use rustix::io::Errno;

use super::{Reply, Session};
use crate::fid::{Fid, FidState};
use crate::fs::{FsResult, xattr};

impl Session {
    /// Txattrwalk: `newfid` holds the value of `name` (or the list of names when `name` is
    /// empty). Unlike Twalk, `newfid` may be `fid` itself.
    pub(super) fn xattrwalk(&self, fid_number: u32, newfid: u32, name: &[u8]) -> FsResult<Reply> {
        let fid = self.fid(fid_number)?;
        let node = fid.node();
        let value = {
            let _as = fid.identity.enter()?;
            xattr::get(&node, name)?
        };
        let size = value.len() as u64;
        let new = Fid::new(fid.share.clone(), fid.identity.clone(), fid.top, node, None);
        new.lock().state = FidState::XattrRead(value);
        if newfid == fid_number {
            self.table().insert(newfid, Arc::new(new));
        } else {
            self.insert_new(newfid, new)?;
        }
        Ok(Response::Xattrwalk { size }.into())
    }

    /// Txattrcreate: the fid waits for exactly `attr_size` bytes of Twrite, applied by Tclunk.
    pub(super) fn xattrcreate(
        &self,
        fid: u32,
        name: &[u8],
        attr_size: u64,
        flags: u32,
    ) -> FsResult<Reply> {
        let fid = self.fid(fid)?;
        if attr_size > xattr::MAX_SIZE as u64 {
            return Err(Errno::TOOBIG);
        }
        if flags & !(xattr::XATTR_CREATE | xattr::XATTR_REPLACE) != 0 || name.is_empty() {
            return Err(Errno::INVAL);
        }
        fid.share.fs.writable()?;
        if xattr::is_privileged(name) && !fid.identity.may_set_privileged_xattrs() {
            tracing::info!(
                name = %name.escape_ascii(),
                "Txattrcreate refused: only root may set this namespace"
            );
            return Err(Errno::PERM);
        }
        let mut inner = fid.lock();
        if !matches!(inner.state, FidState::Path) {
            return Err(Errno::BADF);
        }
        inner.state = FidState::XattrWrite {
            name: name.to_vec(),
            size: attr_size,
            flags,
            value: Vec::new(),
        };
        Ok(Response::Xattrcreate.into())
    }
}
