//! Who a client may act as.
//!
//! Every connection has a [`Peer`]: what the server knows of the process at the other end,
//! from the transport (`SO_PEERCRED` on a unix socket, nothing on TCP, the parent's word for
//! `--listen fd`) or from authentication. [`Trust::identity`] turns a Tattach's claimed uid
//! into the [`Identity`] the attach acts as:
//!
//! - a server not running as root acts as its own user for everyone (the kernel allows it
//!   nothing else), so who may connect is what decides (hence private sockets by default);
//! - a [`Peer::Trusted`] peer (root on a unix socket, standard input handed over by the
//!   process that started the server) acts as the uid it claims in `--multi-user` mode, and as
//!   root otherwise;
//! - a [`Peer::Uid`] peer (a non-root unix peer, an authenticated user) acts as that uid; in
//!   `--multi-user` mode a claim of any other uid is refused with `EPERM`;
//! - a [`Peer::Anonymous`] peer (unauthenticated TCP) acts as the squash identity, whatever it
//!   claims;
//! - root squash (on by default): uid 0 becomes the squash identity.
//!
//! Every identity but root runs with a non-zero filesystem uid, so the kernel itself refuses
//! what a user may not do (chown to others, set-id bits on files it does not own or for
//! groups it is not in, device nodes); [`Identity`] adds the checks the kernel leaves to
//! capabilities the server still holds (a Tlcreate's group, `security.` and `trusted.`
//! extended attributes).

use std::sync::Arc;

use rustix::io::Errno;

use crate::fs::creds::Identity;

/// The user nobody on Debian, the default squash identity.
pub const NOBODY: u32 = 65534;
/// The group nogroup on Debian.
pub const NOGROUP: u32 = 65534;

/// What the server knows of the process at the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Trusted like the server itself: may act as any user (root on a unix socket, or the
    /// process that handed over standard input and output).
    Trusted,
    /// Known to be this user (a non-root unix peer's `SO_PEERCRED`, or an authenticated uid).
    Uid(u32),
    /// Unknown (unauthenticated TCP): acts as the squash identity.
    Anonymous,
}

impl Peer {
    /// The peer of a connected unix socket, from the credentials the kernel recorded when it
    /// connected. Root is trusted; a socket whose credentials cannot be read is anonymous.
    pub fn of_unix_socket(socket: &impl std::os::fd::AsFd) -> Peer {
        match rustix::net::sockopt::socket_peercred(socket) {
            Ok(cred) if cred.uid.is_root() => Peer::Trusted,
            Ok(cred) => Peer::Uid(cred.uid.as_raw()),
            Err(e) => {
                tracing::warn!("cannot read the peer's credentials, squashing it: {e}");
                Peer::Anonymous
            }
        }
    }
}

/// The server's rules for turning a peer's claim into an identity.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Whether the server runs as root (and so can act as other users at all).
    pub root: bool,
    /// Whether a claimed uid is honoured (`--multi-user`).
    pub multi_user: bool,
    /// Whether uid 0 becomes the squash identity.
    pub root_squash: bool,
    /// The squash identity.
    pub squash_uid: u32,
    pub squash_gid: u32,
}

impl Trust {
    /// The identity an attach by `peer` claiming `n_uname` acts as (`u32::MAX`: no numeric
    /// uid given), or `EPERM` for a claim the peer may not make.
    pub fn identity(&self, peer: Peer, n_uname: u32) -> Result<Identity, Errno> {
        if !self.root {
            return Ok(Identity::Server);
        }
        let uid = match peer {
            Peer::Anonymous => return Ok(self.squashed()),
            Peer::Trusted if self.multi_user => {
                if n_uname == u32::MAX {
                    NOBODY
                } else {
                    n_uname
                }
            }
            Peer::Trusted => 0,
            Peer::Uid(uid) => {
                if self.multi_user && n_uname != u32::MAX && n_uname != uid {
                    tracing::warn!(
                        peer_uid = uid,
                        claimed_uid = n_uname,
                        "Tattach refused: a peer may attach only as its own uid"
                    );
                    return Err(Errno::PERM);
                }
                uid
            }
        };
        if uid == 0 {
            if self.root_squash {
                return Ok(self.squashed());
            }
            if !self.multi_user {
                return Ok(Identity::Server);
            }
        }
        let identity = Identity::of_uid(uid);
        // A trusted peer (the kernel mounting for its users) names the group of each new
        // file as its process has it; any other peer only the groups its user is in.
        Ok(if peer == Peer::Trusted {
            identity.with_any_gid()
        } else {
            identity
        })
    }

    /// The squash identity, with no supplementary groups.
    fn squashed(&self) -> Identity {
        if self.squash_uid == 0 {
            // Squashing to root is an explicit choice to trust every client.
            return Identity::Server;
        }
        Identity::User {
            uid: self.squash_uid,
            gid: self.squash_gid,
            groups: Arc::from([]),
            any_gid: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust(multi_user: bool, root_squash: bool) -> Trust {
        Trust {
            root: true,
            multi_user,
            root_squash,
            squash_uid: NOBODY,
            squash_gid: NOGROUP,
        }
    }

    fn uid(id: &Identity) -> Option<u32> {
        match id {
            Identity::Server => None,
            Identity::User { uid, .. } => Some(*uid),
        }
    }

    #[test]
    fn a_server_that_is_not_root_acts_as_itself_for_everyone() {
        let t = Trust {
            root: false,
            ..trust(false, true)
        };
        for peer in [Peer::Trusted, Peer::Uid(5), Peer::Anonymous] {
            assert_eq!(t.identity(peer, 0), Ok(Identity::Server));
        }
    }

    #[test]
    fn claims_are_bounded_by_the_peer() {
        let t = trust(true, true);
        assert_eq!(t.identity(Peer::Uid(1000), 0).err(), Some(Errno::PERM));
        assert_eq!(t.identity(Peer::Uid(1000), 1001).err(), Some(Errno::PERM));
        assert_eq!(uid(&t.identity(Peer::Uid(1000), 1000).unwrap()), Some(1000));
        assert_eq!(
            uid(&t.identity(Peer::Uid(1000), u32::MAX).unwrap()),
            Some(1000)
        );
        assert_eq!(uid(&t.identity(Peer::Trusted, 1001).unwrap()), Some(1001));
        assert_eq!(
            uid(&t.identity(Peer::Anonymous, 1001).unwrap()),
            Some(NOBODY)
        );
    }

    #[test]
    fn root_is_squashed_unless_told_otherwise() {
        assert_eq!(
            uid(&trust(true, true).identity(Peer::Trusted, 0).unwrap()),
            Some(NOBODY)
        );
        assert_eq!(
            uid(&trust(false, true).identity(Peer::Trusted, 0).unwrap()),
            Some(NOBODY)
        );
        assert_eq!(
            trust(false, false).identity(Peer::Trusted, 0),
            Ok(Identity::Server)
        );
        assert_eq!(
            uid(&trust(true, false).identity(Peer::Trusted, 0).unwrap()),
            Some(0)
        );
        // Anonymous peers never become root, even without root squash.
        assert_eq!(
            uid(&trust(true, false).identity(Peer::Anonymous, 0).unwrap()),
            Some(NOBODY)
        );
    }
}
