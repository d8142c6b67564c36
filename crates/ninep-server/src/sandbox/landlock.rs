//! Landlock: after start the process reaches only the export (and what the listener and the
//! user database need), whatever a bug makes it try.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus,
    PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

/// What the ruleset lets the process reach.
#[derive(Debug, Clone)]
pub struct Reach {
    /// The exports (or the directories holding them, see [`crate::config`]): everything but
    /// executing files.
    pub exports: Vec<PathBuf>,
    /// The unix socket's directory: only removing the socket's file when the server stops.
    pub socket_dir: Option<PathBuf>,
    /// Files read after start (the user database, for `--multi-user` lookups; the
    /// configuration file, for reloads).
    pub read_files: Vec<PathBuf>,
}

/// Why no ruleset was enforced.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// The kernel has no Landlock: not built in, or not enabled at boot.
    #[error(
        "the kernel offers no Landlock (not built in, or not enabled at boot: \
         /sys/kernel/security/lsm lists the enabled modules)"
    )]
    NotOffered,
    /// The kernel's Landlock is ABI 1, which refuses every rename and link between
    /// directories and so cannot confine a file server.
    #[error(
        "the kernel offers only Landlock ABI 1, under which no file could be renamed between \
         directories; ABI 2 (Linux 5.19) or later is needed"
    )]
    TooOld,
    /// Landlock is there but the ruleset could not be built or enforced.
    #[error("cannot enforce Landlock: {0}")]
    Failed(String),
}

impl LandlockError {
    /// Whether the kernel lacks a usable Landlock (rather than refusing this ruleset).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, LandlockError::NotOffered | LandlockError::TooOld)
    }
}

/// Whether the kernel has Landlock at all, once it is known to lack ABI 2.
fn unavailable() -> LandlockError {
    let abi1 = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1));
    match abi1 {
        Ok(_) => LandlockError::TooOld,
        Err(_) => LandlockError::NotOffered,
    }
}

/// Enforces the ruleset on the calling thread and the threads it creates from now on, and
/// returns the kernel's Landlock ABI.
pub fn restrict(reach: &Reach) -> Result<u32, LandlockError> {
    // ABI 2 is the floor: without the Refer right the kernel refuses every rename and link
    // between directories. Newer rights (truncate, device ioctls, TCP, scopes) are taken
    // where the kernel has them.
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V2))
        .map_err(|_| unavailable())?;
    let failed = |e: landlock::RulesetError| LandlockError::Failed(e.to_string());
    let ruleset = ruleset
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI::V5))
        .map_err(failed)?
        // No rule names a port: once serving, the process can neither bind nor connect TCP.
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .map_err(failed)?
        // Nor signal other processes or reach abstract unix sockets outside its domain.
        .scope(Scope::from_all(ABI::V6))
        .map_err(failed)?
        .create()
        .map_err(failed)?;

    let everything_but_exec = AccessFs::from_all(ABI::V5) & !BitFlags::from(AccessFs::Execute);
    let mut ruleset = ruleset;
    for export in &reach.exports {
        ruleset = ruleset
            .add_rule(PathBeneath::new(open(export)?, everything_but_exec))
            .map_err(failed)?;
    }
    if let Some(dir) = &reach.socket_dir {
        ruleset = ruleset
            .add_rule(PathBeneath::new(open(dir)?, AccessFs::RemoveFile))
            .map_err(failed)?;
    }
    for file in &reach.read_files {
        ruleset = ruleset
            .add_rule(PathBeneath::new(open(file)?, AccessFs::ReadFile))
            .map_err(failed)?;
    }
    let status = ruleset.restrict_self().map_err(failed)?;
    let abi = match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => kernel_abi.map_or(effective_abi as u32, |v| v as u32),
        _ => 0,
    };
    if status.ruleset == RulesetStatus::NotEnforced {
        return Err(LandlockError::Failed("the kernel enforced no rule".into()));
    }
    Ok(abi)
}

fn open(path: &Path) -> Result<PathFd, LandlockError> {
    PathFd::new(path).map_err(|e| LandlockError::Failed(format!("{}: {e}", path.display())))
}
