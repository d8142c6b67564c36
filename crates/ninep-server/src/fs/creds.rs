//! Acting as the attaching user (`--multi-user`).
//!
//! The filesystem uid/gid are per-thread on Linux, so an operation switches them for the
//! duration of one synchronous block of syscalls and the guard switches back on `Drop`,
//! before the thread can run any other request. No `.await` ever happens while a guard lives
//! (the guard is `!Send`, so the compiler enforces it inside async code).

use std::marker::PhantomData;

use nix::unistd::{Gid, Uid, setfsgid, setfsuid};

/// Who a request acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Everything is done as the server's own user.
    Server,
    /// Files are accessed (and created) as this user and group.
    User { uid: u32, gid: u32 },
}

impl Identity {
    /// The same user with another group for file creation (the gid a create request names).
    pub fn with_gid(self, gid: u32) -> Identity {
        match self {
            Identity::Server => Identity::Server,
            Identity::User { uid, .. } => Identity::User { uid, gid },
        }
    }

    /// Switches the calling thread to this identity until the guard drops.
    pub fn enter(self) -> CredsGuard {
        match self {
            Identity::Server => CredsGuard {
                saved: None,
                _not_send: PhantomData,
            },
            Identity::User { uid, gid } => {
                let old_gid = setfsgid(Gid::from_raw(gid));
                let old_uid = setfsuid(Uid::from_raw(uid));
                CredsGuard {
                    saved: Some((old_uid, old_gid)),
                    _not_send: PhantomData,
                }
            }
        }
    }
}

/// Restores the thread's filesystem identity when dropped.
#[derive(Debug)]
pub struct CredsGuard {
    saved: Option<(Uid, Gid)>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for CredsGuard {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.saved {
            setfsuid(uid);
            setfsgid(gid);
        }
    }
}
