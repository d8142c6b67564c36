//! The exports a server serves, and which one a Tattach's `aname` names.
//!
//! A server started on one directory has one unnamed export, and an `aname` is a path in it
//! (see [`Export::attach_point`]). A server started from a configuration file (see
//! [`crate::config`]) has named exports: an `aname` names one by its name (`home`, or
//! `home/sub` for a directory beneath it) or by its path (`/srv/home/sub`), and an empty
//! `aname` (or `/`) names the default one.
//!
//! The table is replaced whole on a reload ([`crate::Server::replace_exports`]); a fid keeps
//! the [`Share`] it was attached to, so an export removed by a reload keeps working for the
//! fids that have it until they are clunked, while new attaches no longer find it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::io::Errno;

use crate::fs::Export;
use crate::fs::creds::Identity;
use crate::trust::{Peer, Trust};

/// One export: a directory tree with its own options.
#[derive(Debug)]
pub struct Share {
    /// Its name in the configuration file (`None` for a server started on one directory).
    pub name: Option<String>,
    /// The directory, as configured.
    pub path: PathBuf,
    /// The opened tree.
    pub fs: Export,
    /// Who an attach acts as.
    pub trust: Trust,
    /// Who may attach at all.
    pub allow: Allow,
}

impl Share {
    /// The name and directory of the export for log lines.
    pub fn describe(&self) -> String {
        let mode = if self.fs.read_only() {
            " (read-only)"
        } else {
            ""
        };
        match &self.name {
            Some(name) => format!("{name}={}{mode}", self.path.display()),
            None => format!("{}{mode}", self.path.display()),
        }
    }

    /// The identity an attach by `peer` (from `remote`, for TCP and vsock) claiming `n_uname`
    /// acts as, or `EACCES` for a peer this export does not admit and `EPERM` for a claim the
    /// peer may not make.
    pub fn identity_for(
        &self,
        peer: Peer,
        remote: Option<Remote>,
        n_uname: u32,
    ) -> Result<Identity, Errno> {
        if !self.allow.admits(peer, remote) {
            tracing::warn!(
                ?peer,
                ?remote,
                export = %self.describe(),
                "Tattach refused: the export does not admit this peer"
            );
            return Err(Errno::ACCESS);
        }
        self.trust.identity(peer, n_uname)
    }
}

/// Where a network client connects from, which exports may admit it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// A TCP client's address.
    Ip(IpAddr),
    /// A vsock client's context id: a virtual machine's, 2 for the host, 1 for this machine.
    Vsock(u32),
}

/// The peers an export admits. With no list set every peer is admitted; with any list set,
/// a peer must match one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allow {
    /// Unix socket peers and authenticated users, by uid (a root peer and `--listen fd`
    /// count as uid 0).
    pub uids: Option<Vec<u32>>,
    /// Unix socket peers and authenticated users whose user is in one of these groups
    /// (primary or supplementary, from the user database).
    pub gids: Option<Vec<u32>>,
    /// TCP clients by address (networks such as `192.168.1.0/24`, or single addresses).
    pub hosts: Option<Vec<ipnet::IpNet>>,
    /// vsock clients by context id (which virtual machine they are).
    pub cids: Option<Vec<u32>>,
}

impl Allow {
    /// Whether any list is set.
    pub fn restricts(&self) -> bool {
        self.uids.is_some() || self.gids.is_some() || self.hosts.is_some() || self.cids.is_some()
    }

    /// Whether `peer`, connected from `remote` (TCP or vsock), may attach.
    pub fn admits(&self, peer: Peer, remote: Option<Remote>) -> bool {
        if !self.restricts() {
            return true;
        }
        let uid = match peer {
            Peer::Trusted => Some(0),
            Peer::Uid(uid) => Some(uid),
            Peer::Anonymous => None,
        };
        if let Some(uid) = uid {
            if self.uids.as_ref().is_some_and(|uids| uids.contains(&uid)) {
                return true;
            }
            if let Some(gids) = &self.gids
                && user_groups(uid).iter().any(|g| gids.contains(g))
            {
                return true;
            }
        }
        match remote {
            Some(Remote::Ip(addr)) => self.hosts.as_ref().is_some_and(|hosts| {
                let addr = canonical(addr);
                hosts.iter().any(|net| net.contains(&addr))
            }),
            Some(Remote::Vsock(cid)) => self.cids.as_ref().is_some_and(|cids| cids.contains(&cid)),
            None => false,
        }
    }
}

/// An IPv4 client of an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

/// The groups of user `uid` (primary and supplementary), from the user database.
fn user_groups(uid: u32) -> Vec<u32> {
    match Identity::of_uid(uid) {
        Identity::User { gid, groups, .. } => std::iter::once(gid)
            .chain(groups.iter().map(|g| g.as_raw()))
            .collect(),
        Identity::Server => Vec::new(),
    }
}

/// Every export of a server, and the rule that picks one for an `aname`.
#[derive(Debug)]
pub struct Exports {
    shares: Vec<Arc<Share>>,
    /// The export an empty `aname` (or `/`) names.
    default: Option<usize>,
    /// Whether exports are named (a configuration file) rather than one directory.
    named: bool,
}

impl Exports {
    /// The one export of a server started on a directory: every `aname` is a path in it.
    pub fn single(share: Share) -> Exports {
        Exports {
            shares: vec![Arc::new(share)],
            default: Some(0),
            named: false,
        }
    }

    /// Named exports; `default` (an index into `shares`) answers an empty `aname`.
    pub fn named(shares: Vec<Share>, default: Option<usize>) -> Exports {
        Exports {
            shares: shares.into_iter().map(Arc::new).collect(),
            default,
            named: true,
        }
    }

    pub fn shares(&self) -> &[Arc<Share>] {
        &self.shares
    }

    /// The export `aname` names, and the rest of `aname`, a path relative to its root.
    pub fn select<'a>(&self, aname: &'a [u8]) -> Option<(&Arc<Share>, &'a [u8])> {
        if !self.named {
            let share = &self.shares[0];
            return share.fs.beneath_root(aname).map(|rest| (share, rest));
        }
        let trimmed = aname.strip_prefix(b"/").unwrap_or(aname);
        if trimmed.is_empty() {
            return self.default.map(|i| (&self.shares[i], &b""[..]));
        }
        if aname.first() == Some(&b'/') {
            // By path: the export whose root is the longest prefix.
            return self
                .shares
                .iter()
                .filter_map(|share| share.fs.beneath_path(aname).map(|rest| (share, rest)))
                .min_by_key(|(_, rest)| rest.len());
        }
        let (name, rest) = match trimmed.iter().position(|&b| b == b'/') {
            Some(slash) => (&trimmed[..slash], &trimmed[slash + 1..]),
            None => (trimmed, &b""[..]),
        };
        self.shares
            .iter()
            .find(|share| share.name.as_deref().map(str::as_bytes) == Some(name))
            .map(|share| (share, rest))
    }

    /// The exports for the start-up log line.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self.shares.iter().map(|s| s.describe()).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_clients_are_admitted_by_their_own_kind_of_address() {
        let allow = Allow {
            hosts: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            cids: Some(vec![3]),
            ..Allow::default()
        };
        let ip = |s: &str| Some(Remote::Ip(s.parse().unwrap()));
        assert!(allow.admits(Peer::Anonymous, ip("10.1.2.3")));
        assert!(allow.admits(Peer::Anonymous, ip("::ffff:10.1.2.3")));
        assert!(!allow.admits(Peer::Anonymous, ip("192.168.1.1")));
        assert!(allow.admits(Peer::Anonymous, Some(Remote::Vsock(3))));
        assert!(!allow.admits(Peer::Anonymous, Some(Remote::Vsock(4))));
        assert!(!allow.admits(Peer::Anonymous, None));
        // A list of one kind admits none of the other.
        let hosts_only = Allow {
            cids: None,
            ..allow.clone()
        };
        assert!(!hosts_only.admits(Peer::Anonymous, Some(Remote::Vsock(3))));
        let cids_only = Allow {
            hosts: None,
            ..allow
        };
        assert!(!cids_only.admits(Peer::Anonymous, ip("10.1.2.3")));
        assert!(Allow::default().admits(Peer::Anonymous, Some(Remote::Vsock(4))));
    }
}
