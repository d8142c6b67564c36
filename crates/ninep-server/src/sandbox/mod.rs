//! The sandbox `ninepd` closes around itself once its listener is bound and before it serves
//! anyone: what a bug (or a client exploiting one) could still do is bounded by the kernel,
//! not by the server's own checks.
//!
//! - [`caps`]: as root, only the capabilities the file operations need.
//! - [`landlock`]: the export (no execution), the unix socket's directory (removing the
//!   socket's file) and, for user lookups, the user database; no TCP binds or connects.
//! - [`seccomp`]: an allow-list of system calls, with `PR_SET_NO_NEW_PRIVS`.
//!
//! Each applies to the calling thread and the threads it starts afterwards, so [`enter`] must
//! run while the process has one thread: before the async runtime is built.

pub mod caps;
pub mod landlock;
pub mod seccomp;

use std::path::PathBuf;

use self::landlock::{LandlockError, Reach};
pub use self::seccomp::SeccompMode;

/// Whether a protection must be there, or is used where the kernel offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Asked for explicitly: the server refuses to start without it.
    Required,
    /// The default: enforced where available, with a warning where not.
    IfAvailable,
    Off,
}

/// What to enforce.
#[derive(Debug, Clone)]
pub struct Policy {
    pub reach: Reach,
    pub landlock: Want,
    pub seccomp: SeccompMode,
    /// Whether `seccomp` was asked for explicitly (then a kernel without it is an error).
    pub seccomp_required: bool,
    /// Drop capabilities to those the file operations need.
    pub drop_caps: bool,
    /// Set `PR_SET_NO_NEW_PRIVS`: no execve could ever gain privileges (set-id files, file
    /// capabilities). Landlock and seccomp set it too.
    pub no_new_privs: bool,
    /// The server switches the filesystem identity per request (keeps setfsuid's capabilities).
    pub switches_identity: bool,
}

/// What was enforced, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The kernel's Landlock ABI, when a ruleset is enforced.
    pub landlock_abi: Option<u32>,
    /// The seccomp mode in force and the number of system calls allowed.
    pub seccomp: (SeccompMode, usize),
    /// The capabilities kept, when they were dropped (sorted names).
    pub caps_kept: Option<Vec<String>>,
    /// Protections asked for by default that the kernel does not offer.
    pub missing: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.landlock_abi {
            Some(abi) => write!(f, "landlock ABI {abi}")?,
            None => write!(f, "landlock off")?,
        }
        write!(f, ", seccomp {}", self.seccomp.0)?;
        if self.seccomp.0 != SeccompMode::Off {
            write!(f, " ({} system calls allowed)", self.seccomp.1)?;
        }
        match &self.caps_kept {
            Some(kept) if kept.is_empty() => write!(f, ", no capabilities"),
            Some(kept) => write!(f, ", capabilities kept: {}", kept.join(" ")),
            None => write!(f, ", capabilities not dropped"),
        }
    }
}

/// Why the server must not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("--landlock on, but {0}: refusing to start")]
    LandlockRequired(LandlockError),
    #[error(transparent)]
    Landlock(LandlockError),
    #[error("--seccomp {0}, but {1}: refusing to start")]
    Seccomp(SeccompMode, seccomp::SeccompError),
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(rustix::io::Errno),
    #[error("cannot drop capabilities: {0}")]
    Caps(::caps::errors::CapsError),
}

/// Closes the sandbox around the calling process. Call it while the process has one thread.
pub fn enter(policy: &Policy) -> Result<Report, SandboxError> {
    let mut report = Report {
        landlock_abi: None,
        seccomp: (SeccompMode::Off, 0),
        caps_kept: None,
        missing: Vec::new(),
    };
    if policy.drop_caps {
        let keep = if rustix::process::geteuid().is_root() {
            caps::needed(policy.switches_identity)
        } else {
            Default::default()
        };
        let kept = caps::drop_all_but(&keep).map_err(SandboxError::Caps)?;
        let mut names: Vec<String> = kept.iter().map(|c| c.to_string()).collect();
        names.sort();
        report.caps_kept = Some(names);
    }
    if policy.no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(SandboxError::NoNewPrivs)?;
    }
    if policy.landlock != Want::Off {
        match landlock::restrict(&policy.reach) {
            Ok(abi) => report.landlock_abi = Some(abi),
            Err(e) if policy.landlock == Want::Required => {
                return Err(SandboxError::LandlockRequired(e));
            }
            Err(e) if e.is_unavailable() => report.missing.push(e.to_string()),
            Err(e) => return Err(SandboxError::Landlock(e)),
        }
    }
    match seccomp::install(policy.seccomp) {
        Ok(allowed) => report.seccomp = (policy.seccomp, allowed),
        Err(e) if policy.seccomp_required => {
            return Err(SandboxError::Seccomp(policy.seccomp, e));
        }
        Err(e) => report.missing.push(e.to_string()),
    }
    Ok(report)
}

/// The files the C library reads to look a user up (`--multi-user`), those that exist.
pub fn user_database() -> Vec<PathBuf> {
    ["/etc/passwd", "/etc/group", "/etc/nsswitch.conf"]
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect()
}
