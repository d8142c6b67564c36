//! The server: the exports and settings every connection shares.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::exports::{Allow, Exports, Share};
use crate::fs::Export;
use crate::stats::Stats;
use crate::trust::{NOBODY, NOGROUP, Trust};

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
    /// Log each request and reply, decoded, at debug level.
    pub trace_protocol: bool,
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
            trace_protocol: false,
        }
    }
}

/// The shared state of every connection.
#[derive(Debug)]
pub struct Server {
    /// Replaced whole by a reload; each fid keeps the export it was attached to.
    exports: RwLock<Arc<Exports>>,
    max_msize: u32,
    munge_socket: Option<PathBuf>,
    busy_poll: Duration,
    /// Per-operation counts and latencies.
    stats: Stats,
    /// Log each request and reply, decoded (`--trace-protocol`).
    trace_protocol: bool,
    #[cfg(test)]
    pub(crate) fault: crate::fault::Faults,
}

impl Server {
    /// Opens the export `config.root`. `--multi-user` needs root, to switch the filesystem uid.
    pub fn new(config: &Config) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        let export = Export::open(&config.root, config.read_only)
            .with_context(|| format!("cannot open the export {}", config.root.display()))?;
        let share = Share {
            name: None,
            path: config.root.clone(),
            fs: export,
            trust: Trust {
                root: rustix::process::geteuid().is_root(),
                multi_user: config.multi_user,
                root_squash: config.root_squash,
                squash_uid: config.squash_uid,
                squash_gid: config.squash_gid,
            },
            allow: Allow::default(),
        };
        Self::with_exports(config, Exports::single(share))
    }

    /// A server for `exports` (see [`crate::config`]); of `config` only the settings that are
    /// not an export's are used.
    pub fn with_exports(config: &Config, exports: Exports) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        raise_fd_limit();
        let multi_user = exports.shares().iter().any(|s| s.trust.multi_user);
        if multi_user && !rustix::process::geteuid().is_root() {
            anyhow::bail!("--multi-user needs the server to run as root");
        }
        if multi_user {
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
        Ok(Arc::new(Self {
            exports: RwLock::new(Arc::new(exports)),
            max_msize: config.max_msize,
            munge_socket: config.munge_socket.clone(),
            busy_poll: config.busy_poll,
            stats: Stats::default(),
            trace_protocol: config.trace_protocol,
            #[cfg(test)]
            fault: Default::default(),
        }))
    }

    /// The exports new attaches choose from.
    pub fn exports(&self) -> Arc<Exports> {
        self.exports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the exports (a reload): new attaches see `exports`, fids already attached keep
    /// the export they have until they are clunked. Refused (and the old exports kept) when
    /// `exports` needs a supplementary-group change the running server cannot make: a
    /// `multi_user` export where none was.
    pub fn replace_exports(&self, exports: Exports) -> anyhow::Result<()> {
        let mut current = self.exports.write().unwrap_or_else(|e| e.into_inner());
        let had_multi_user = current.shares().iter().any(|s| s.trust.multi_user);
        if !had_multi_user && exports.shares().iter().any(|s| s.trust.multi_user) {
            anyhow::bail!(
                "a multi_user export needs the server to start with one (it drops its \
                 supplementary groups at start): restart the server"
            );
        }
        *current = Arc::new(exports);
        Ok(())
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

    /// Per-operation counts and latencies since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether each request and reply is logged, decoded, at debug level.
    pub fn trace_protocol(&self) -> bool {
        self.trace_protocol
    }

    /// A description of the exports for log lines.
    pub fn export_path_hint(&self) -> String {
        self.exports().describe()
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
