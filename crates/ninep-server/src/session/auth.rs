//! MUNGE authentication as diod does it: Tauth makes an auth fid, the client writes a MUNGE
//! credential into it with Twrite, and a Tattach naming it as `afid` is allowed once munged
//! says the credential was encoded by the uid the Tauth named. The connection then counts
//! as that user's ([`Peer::Uid`], or [`Peer::Trusted`] for root), across Tversion, so the
//! kernel's own attaches after `mount.diod` hands it the connection act as that user: root
//! may then act as anyone, another user only as itself.

use ninep::Response;
use rustix::io::Errno;

use super::{Reply, Session};
use crate::fs::FsResult;
use crate::munge;
use crate::trust::Peer;

/// An auth fid: who it is for, and the credential written into it so far.
#[derive(Debug)]
pub struct AuthFid {
    n_uname: u32,
    credential: Vec<u8>,
}

impl Session {
    /// Tauth: a new auth fid when the server checks MUNGE credentials. Otherwise `ENOENT`,
    /// which diod's clients take for "no authentication needed".
    pub(super) fn auth(&self, afid: u32, n_uname: u32) -> FsResult<Reply> {
        if self.server.munge_socket().is_none() {
            return Err(Errno::NOENT);
        }
        if afid == ninep::NOFID || self.table().contains_key(&afid) {
            return Err(Errno::BADF);
        }
        let mut afids = self.afids();
        if afids.contains_key(&afid) || afids.len() >= MAX_AUTH_FIDS {
            return Err(Errno::BADF);
        }
        afids.insert(
            afid,
            AuthFid {
                n_uname,
                credential: Vec::new(),
            },
        );
        Ok(Response::Auth {
            aqid: ninep::Qid {
                ty: ninep::consts::qid_type::AUTH,
                version: 0,
                path: 0,
            },
        }
        .into())
    }

    /// Twrite to an auth fid: appends to the credential (`None`: not an auth fid).
    pub(super) fn write_auth(&self, fid: u32, offset: u64, data: &[u8]) -> Option<FsResult<Reply>> {
        let mut afids = self.afids();
        let afid = afids.get_mut(&fid)?;
        if offset != afid.credential.len() as u64
            || afid.credential.len() + data.len() > munge::MAX_CREDENTIAL
        {
            return Some(Err(Errno::INVAL));
        }
        afid.credential.extend_from_slice(data);
        Some(Ok(Response::Write {
            count: data.len() as u32,
        }
        .into()))
    }

    /// Tclunk of an auth fid (`false`: not one).
    pub(super) fn clunk_auth(&self, fid: u32) -> bool {
        self.afids().remove(&fid).is_some()
    }

    /// Checks the credential in auth fid `afid` for an attach claiming `n_uname`; on success
    /// the connection becomes the authenticated user's. Every refusal is `EPERM` with a log
    /// line.
    pub(super) async fn authenticate(&self, afid: u32, n_uname: u32) -> FsResult<()> {
        let Some(socket) = self.server.munge_socket() else {
            tracing::warn!(afid, "Tattach refused: an afid, but authentication is off");
            return Err(Errno::PERM);
        };
        // The auth fid stays until the client clunks it (mount.diod does, after the attach).
        let found = self
            .afids()
            .get(&afid)
            .map(|a| (a.n_uname, a.credential.clone()));
        let Some((for_uid, credential)) = found else {
            tracing::warn!(afid, "Tattach refused: no such auth fid");
            return Err(Errno::PERM);
        };
        let cred = match munge::decode(socket, &credential).await {
            Ok(cred) => cred,
            Err(e) => {
                tracing::warn!(claimed_uid = for_uid, "Tattach refused: {e}");
                return Err(Errno::PERM);
            }
        };
        if cred.uid != for_uid || (n_uname != u32::MAX && n_uname != for_uid) {
            tracing::warn!(
                credential_uid = cred.uid,
                auth_uid = for_uid,
                attach_uid = n_uname,
                "Tattach refused: the credential does not authenticate the uid claimed"
            );
            return Err(Errno::PERM);
        }
        let peer = if cred.uid == 0 {
            Peer::Trusted
        } else {
            Peer::Uid(cred.uid)
        };
        tracing::info!(uid = cred.uid, gid = cred.gid, "authenticated with MUNGE");
        self.set_peer(peer);
        Ok(())
    }
}

/// Auth fids one connection may hold at once.
const MAX_AUTH_FIDS: usize = 16;
