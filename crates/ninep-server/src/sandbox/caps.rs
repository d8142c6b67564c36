//! Capabilities: the process keeps only those its file operations need.

use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities a root server keeps to act on files for clients: own any file, read and
/// write regardless of mode bits, keep set-id bits, make device nodes and set file
/// capabilities, as virtiofsd does. With `switches_identity` (acting as each attaching user)
/// also those that `setfsuid`, `setfsgid` and `setgroups` need. Nothing else: no mounts, no
/// raw I/O, no ptrace, no module loading, no binding of privileged ports once serving.
pub fn needed(switches_identity: bool) -> CapsHashSet {
    let mut keep: CapsHashSet = [
        Capability::CAP_CHOWN,
        Capability::CAP_DAC_OVERRIDE,
        Capability::CAP_FOWNER,
        Capability::CAP_FSETID,
        Capability::CAP_MKNOD,
        Capability::CAP_SETFCAP,
    ]
    .into_iter()
    .collect();
    if switches_identity {
        keep.insert(Capability::CAP_SETUID);
        keep.insert(Capability::CAP_SETGID);
    }
    keep
}

/// Drops every capability outside `keep` from the calling thread's effective, permitted,
/// inheritable and ambient sets, and from the bounding set when the thread may change it.
/// Returns the capabilities kept (those of `keep` the thread had).
pub fn drop_all_but(keep: &CapsHashSet) -> Result<CapsHashSet, caps::errors::CapsError> {
    let permitted = caps::read(None, CapSet::Permitted)?;
    let kept: CapsHashSet = permitted.intersection(keep).copied().collect();
    // The bounding set caps what any later execve could gain; changing it needs CAP_SETPCAP,
    // which is dropped with the rest below.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)? {
        for cap in caps::read(None, CapSet::Bounding)? {
            if !keep.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap)?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::set(None, CapSet::Effective, &kept)?;
    caps::set(None, CapSet::Permitted, &kept)?;
    Ok(kept)
}
