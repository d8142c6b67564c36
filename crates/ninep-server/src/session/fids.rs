//! Making and dropping fids: Tattach, Twalk and Tclunk.

use std::sync::Arc;

use bytes::Bytes;
use ninep::Response;
use rustix::io::Errno;

use super::{MAX_FIDS, Reply, Session};
use crate::attr;
use crate::fid::{Fid, FidState};
use crate::fs::{FsResult, Top};
use crate::trust::Peer;

impl Session {
    /// Tattach: a fid on the directory `aname` names (the export's root when it is empty),
    /// acting for the attaching user as far as the connection's peer may claim it.
    pub(super) fn attach(&self, fid: u32, aname: &[u8], n_uname: u32) -> FsResult<Reply> {
        let peer = self.peer();
        if peer == Peer::Anonymous && self.server.munge_socket().is_some() {
            tracing::warn!(
                claimed_uid = n_uname,
                "Tattach refused: authentication is required and the client has not authenticated"
            );
            return Err(Errno::PERM);
        }
        let exports = self.server.exports();
        let Some((share, beneath)) = exports.select(aname) else {
            tracing::info!(
                aname = %aname.escape_ascii(),
                exports = %exports.describe(),
                "Tattach refused: no export has this name or path"
            );
            return Err(Errno::NOENT);
        };
        let identity = share.identity_for(peer, self.addr, n_uname)?;
        let export = &share.fs;
        let (node, st) = {
            let _as = identity.enter()?;
            export.attach_beneath(beneath).inspect_err(|e| {
                tracing::info!(
                    aname = %aname.escape_ascii(),
                    export = %share.describe(),
                    "Tattach refused: {e}"
                );
            })?
        };
        let qid = attr::qid(export.qid_of(&st));
        self.insert_new(
            fid,
            Fid::new(share.clone(), identity, Top::of(&st), node, None),
        )?;
        Ok(Response::Attach { qid }.into())
    }

    /// Twalk: one validated name at a time. A walk that stops part-way answers the qids it
    /// walked and makes no `newfid`; one that fails at its first name is an error.
    pub(super) fn walk(&self, fid: u32, newfid: u32, wnames: &[Bytes]) -> FsResult<Reply> {
        let from = self.fid(fid)?;
        let export = &from.share.fs;
        if newfid != fid && self.table().contains_key(&newfid) {
            return Err(Errno::BADF);
        }
        if wnames.len() > ninep::P9_MAXWELEM {
            return Err(Errno::INVAL);
        }
        let (mut node, mut origin) = {
            let inner = from.lock();
            if matches!(
                inner.state,
                FidState::XattrRead(_) | FidState::XattrWrite { .. }
            ) {
                return Err(Errno::BADF);
            }
            (inner.node.clone(), inner.origin.clone())
        };
        let mut qids = Vec::with_capacity(wnames.len());
        {
            let _as = from.identity.enter()?;
            for (i, name) in wnames.iter().enumerate() {
                match export.walk_one(from.top, &node, name) {
                    Ok((next, st)) => {
                        qids.push(attr::qid(export.qid_of(&st)));
                        origin = match &name[..] {
                            b"." | b".." => None,
                            _ => Some((node, name.to_vec())),
                        };
                        node = next;
                    }
                    Err(e) if i == 0 => return Err(e),
                    Err(_) => break,
                }
            }
        }
        if qids.len() == wnames.len() {
            let new = Arc::new(Fid::new(
                from.share.clone(),
                from.identity.clone(),
                from.top,
                node,
                origin,
            ));
            let mut table = self.table();
            if newfid != fid && table.contains_key(&newfid) {
                return Err(Errno::BADF);
            }
            if table.len() >= MAX_FIDS && newfid != fid {
                return Err(Errno::MFILE);
            }
            table.insert(newfid, new);
        }
        Ok(Response::Walk { wqids: qids }.into())
    }

    /// Tclunk: the fid leaves the table, and dropping it releases what it held. A pending
    /// xattr write is applied first.
    pub(super) fn clunk(&self, fid: u32) -> FsResult<Reply> {
        let fid = self.table().remove(&fid).ok_or(Errno::BADF)?;
        let mut inner = fid.lock();
        let state = std::mem::replace(&mut inner.state, FidState::Path);
        if let FidState::XattrWrite {
            name,
            size,
            flags,
            value,
        } = state
        {
            if value.len() as u64 != size {
                return Err(Errno::INVAL);
            }
            let _as = fid.identity.enter()?;
            crate::fs::xattr::set(&inner.node, &name, &value, flags)?;
        }
        Ok(Response::Clunk.into())
    }
}
