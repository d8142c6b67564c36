//! The server: one export shared by every connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::fs::Export;
use crate::fs::creds::Identity;
use crate::trust::{NOBODY, NOGROUP, Peer, Trust};

/// The default and largest msize: 1 MiB, the Linux TCP transport's maximum.
pub const DEFAULT_MAX_MSIZE: u32 = 1 << 20;
/// The smallest msize the server accepts in Tversion.
pub const MIN_MSIZE: u32 = 4096;

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The exported directory.
    pub root: PathBuf,
    /// Refuse every modification with EROFS.
    pub read_only: bool,
    /// The largest msize offered to clients.
    pub max_msize: u32,
    /// Act as each attaching user (the server must run as root).
    pub multi_user: bool,
    /// When the server runs as root: a client's uid 0 acts as the squash identity.
    pub root_squash: bool,
    /// Who clients the server does not trust act as, when it runs as root (see
    /// [`crate::trust`]): `nobody`/`nogroup` by default.
    pub squash_uid: u32,
    pub squash_gid: u32,
    /// Check MUNGE credentials (Tauth, as diod does) with the munged on this socket.
    pub munge_socket: Option<PathBuf>,
    /// How long a socket connection's reader spins on non-blocking reads after each request
    /// before it sleeps (zero: never); see [`crate::busy_poll`].
    pub busy_poll: Duration,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            read_only: false,
            max_msize: DEFAULT_MAX_MSIZE,
            multi_user: false,
            root_squash: true,
            squash_uid: NOBODY,
            squash_gid: NOGROUP,
            munge_socket: None,
            busy_poll: Duration::ZERO,
        }
    }
}

/// The shared state of every connection.
#[derive(Debug)]
pub struct Server {
    export: Export,
    root: PathBuf,
    max_msize: u32,
    trust: Trust,
    munge_socket: Option<PathBuf>,
    busy_poll: Duration,
    #[cfg(test)]
    pub(crate) fault: crate::fault::Faults,
}

impl Server {
    /// Opens the export. `--multi-user` needs root, to switch the filesystem uid.
    pub fn new(config: &Config) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        raise_fd_limit();
        if config.multi_user && !rustix::process::geteuid().is_root() {
            anyhow::bail!("--multi-user needs the server to run as root");
        }
        if config.multi_user {
            // Group permission checks use the thread's supplementary groups too: keep none,
            // so a user never gains the server's groups (root's group 0 in particular). Each
            // request sets the attaching user's own groups on its thread while it runs.
            nix::unistd::setgroups(&[]).context("cannot drop supplementary groups")?;
        }
        if config.max_msize < MIN_MSIZE {
            anyhow::bail!(
                "msize {} is below the minimum {MIN_MSIZE}",
                config.max_msize
            );
        }
        let export = Export::open(&config.root, config.read_only)
            .with_context(|| format!("cannot open the export {}", config.root.display()))?;
        Ok(Arc::new(Self {
            export,
            root: config.root.clone(),
            max_msize: config.max_msize,
            trust: Trust {
                root: rustix::process::geteuid().is_root(),
                multi_user: config.multi_user,
                root_squash: config.root_squash,
                squash_uid: config.squash_uid,
                squash_gid: config.squash_gid,
            },
            munge_socket: config.munge_socket.clone(),
            busy_poll: config.busy_poll,
            #[cfg(test)]
            fault: Default::default(),
        }))
    }

    pub fn export(&self) -> &Export {
        &self.export
    }

    pub fn max_msize(&self) -> u32 {
        self.max_msize
    }

    /// The spin budget of a socket connection's reader (zero: it never spins).
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// The munged socket credentials are checked with, when authentication is on.
    pub fn munge_socket(&self) -> Option<&std::path::Path> {
        self.munge_socket.as_deref()
    }

    /// Who an attach by `peer` claiming `n_uname` acts as (see [`crate::trust`]), or
    /// `EPERM` for a claim the peer may not make.
    pub fn identity_for(&self, peer: Peer, n_uname: u32) -> Result<Identity, rustix::io::Errno> {
        self.trust.identity(peer, n_uname)
    }
}

impl Server {
    /// A description of the export for log lines.
    pub fn export_path_hint(&self) -> String {
        let mode = if self.export.read_only() {
            " (read-only)"
        } else {
            ""
        };
        format!("{}{mode}", self.root.display())
    }
}

/// Every fid is a descriptor: raise the soft descriptor limit to the hard one.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
