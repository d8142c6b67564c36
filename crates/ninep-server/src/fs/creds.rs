//! Acting as the attaching user (`--multi-user`).
//!
//! The filesystem uid/gid and the supplementary groups are per-thread on Linux (the raw
//! syscalls, not libc's `setgroups`, which changes every thread), so an operation switches
//! them for the duration of one synchronous block of syscalls and the guard switches back on
//! `Drop`, before the thread can run any other request. No `.await` ever happens while a
//! guard lives (the guard is `!Send`, so the compiler enforces it inside async code).

use std::ffi::CString;
use std::marker::PhantomData;
use std::sync::Arc;

use nix::unistd::{Uid, User, getgrouplist, setfsgid, setfsuid};
use rustix::process::{Gid, getgroups};
use rustix::thread::set_thread_groups;

use super::FsResult;

/// Who a request acts as. Cheap to clone: every fid carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Everything is done as the server's own user.
    Server,
    /// Files are accessed (and created) as this user and group, with these supplementary
    /// groups for permission checks.
    User {
        uid: u32,
        gid: u32,
        groups: Arc<[Gid]>,
        /// Whether a create request may name any group for the new file (a peer trusted to
        /// claim any identity), or only the user's own groups.
        any_gid: bool,
    },
}

impl Identity {
    /// The identity of `uid` as the user database describes it, looked up once per attach:
    /// its primary group and every group listing it as a member (`getgrouplist`, as diod
    /// does). A uid without a passwd entry gets the group of the same number and no
    /// supplementary groups; a failed group lookup gives none either (fewer rights, never
    /// more).
    pub fn of_uid(uid: u32) -> Identity {
        let user = match User::from_uid(Uid::from_raw(uid)) {
            Ok(user) => user,
            Err(e) => {
                tracing::warn!(
                    uid,
                    "cannot look up the user, acting without its groups: {e}"
                );
                None
            }
        };
        let Some(user) = user else {
            return Identity::User {
                uid,
                gid: uid,
                groups: Arc::from([]),
                any_gid: false,
            };
        };
        let groups = CString::new(user.name.as_bytes())
            .map_err(|_| nix::errno::Errno::EINVAL)
            .and_then(|name| getgrouplist(&name, user.gid));
        let groups: Arc<[Gid]> = match groups {
            Ok(groups) => groups.iter().map(|g| Gid::from_raw(g.as_raw())).collect(),
            Err(e) => {
                tracing::warn!(uid, user = user.name, "cannot list the user's groups: {e}");
                Arc::from([])
            }
        };
        Identity::User {
            uid,
            gid: user.gid.as_raw(),
            groups,
            any_gid: false,
        }
    }

    /// The same user, allowed to name any group for the files it creates.
    pub fn with_any_gid(self) -> Identity {
        match self {
            Identity::User {
                uid, gid, groups, ..
            } => Identity::User {
                uid,
                gid,
                groups,
                any_gid: true,
            },
            server => server,
        }
    }

    /// The same user with the group a create request names for the new file. Unless the
    /// identity may name any group, a group the user is not in is ignored (the user's own
    /// group is used): otherwise a user could create a file set-gid for a group it is not
    /// in, such as root's.
    pub fn with_gid(&self, gid: u32) -> Identity {
        match self {
            Identity::Server => Identity::Server,
            Identity::User {
                uid,
                gid: own,
                groups,
                any_gid,
            } => {
                let allowed = *any_gid || gid == *own || groups.contains(&Gid::from_raw(gid));
                if !allowed {
                    tracing::debug!(
                        uid,
                        gid,
                        "not one of the user's groups, creating with its own"
                    );
                }
                Identity::User {
                    uid: *uid,
                    gid: if allowed { gid } else { *own },
                    groups: groups.clone(),
                    any_gid: *any_gid,
                }
            }
        }
    }

    /// Whether this identity may set `security.` and `trusted.` extended attributes. The
    /// kernel checks those against capabilities (`CAP_SETFCAP`, `CAP_SYS_ADMIN`) that a
    /// server running as root keeps while it acts as another user, so the server checks
    /// itself: only root may (file capabilities would otherwise make a user's file as
    /// powerful as a set-uid root one).
    pub fn may_set_privileged_xattrs(&self) -> bool {
        match self {
            Identity::Server => true,
            Identity::User { uid, .. } => *uid == 0,
        }
    }

    /// Switches the calling thread to this identity until the guard drops.
    ///
    /// Fails, with the thread unchanged, if the groups cannot be set (more than the kernel's
    /// `NGROUPS_MAX`, or out of memory): the request must not run with the wrong groups.
    pub fn enter(&self) -> FsResult<CredsGuard> {
        let mut guard = CredsGuard {
            groups: None,
            fsgid: None,
            fsuid: None,
            _not_send: PhantomData,
        };
        let Identity::User {
            uid, gid, groups, ..
        } = self
        else {
            return Ok(guard);
        };
        // Each step records what it replaced as soon as it is done, so an early return
        // restores exactly the steps taken so far.
        let previous = getgroups()?;
        set_thread_groups(groups)?;
        guard.groups = Some(previous);
        guard.fsgid = Some(setfsgid(nix::unistd::Gid::from_raw(*gid)));
        guard.fsuid = Some(setfsuid(Uid::from_raw(*uid)));
        Ok(guard)
    }
}

/// Restores the thread's filesystem identity and groups when dropped, in reverse order.
#[derive(Debug)]
pub struct CredsGuard {
    groups: Option<Vec<Gid>>,
    fsgid: Option<nix::unistd::Gid>,
    fsuid: Option<Uid>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for CredsGuard {
    fn drop(&mut self) {
        // setfsuid/setfsgid cannot fail for root and return the value they replaced.
        if let Some(uid) = self.fsuid {
            setfsuid(uid);
        }
        if let Some(gid) = self.fsgid {
            setfsgid(gid);
        }
        if let Some(groups) = &self.groups
            && let Err(e) = set_thread_groups(groups)
        {
            // Only ENOMEM is possible here (the list was the thread's own). The thread keeps
            // the user's groups, but every request in multi-user mode sets its own list
            // before it checks any permission, so nothing else runs with them.
            tracing::error!("cannot restore the thread's supplementary groups: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's filesystem uid (setfsuid with an invalid id only reads it).
    fn fsuid() -> u32 {
        setfsuid(Uid::from_raw(u32::MAX)).as_raw()
    }

    fn gids(raw: &[u32]) -> Vec<Gid> {
        raw.iter().map(|&g| Gid::from_raw(g)).collect()
    }

    /// Runs `f` on a thread of its own, since it changes per-thread credentials.
    fn on_own_thread(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().unwrap();
    }

    #[test]
    fn enter_sets_the_groups_and_drop_restores_the_previous_ones() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        on_own_thread(|| {
            set_thread_groups(&gids(&[11, 12])).unwrap();
            let user = Identity::User {
                uid: 4321,
                gid: 4321,
                groups: gids(&[20, 21, 22]).into(),
                any_gid: false,
            };
            {
                let _as = user.enter().unwrap();
                assert_eq!(getgroups().unwrap(), gids(&[20, 21, 22]));
                assert_eq!(fsuid(), 4321);
            }
            assert_eq!(getgroups().unwrap(), gids(&[11, 12]));
            assert_eq!(fsuid(), 0);
        });
    }

    #[test]
    fn a_failed_enter_leaves_the_thread_unchanged() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        on_own_thread(|| {
            set_thread_groups(&gids(&[11])).unwrap();
            // More groups than the kernel's NGROUPS_MAX (65536).
            let too_many: Vec<u32> = (1..=70_000).collect();
            let user = Identity::User {
                uid: 4321,
                gid: 4321,
                groups: gids(&too_many).into(),
                any_gid: false,
            };
            assert_eq!(user.enter().err(), Some(rustix::io::Errno::INVAL));
            assert_eq!(getgroups().unwrap(), gids(&[11]));
            assert_eq!(fsuid(), 0);
        });
    }

    #[test]
    fn the_server_identity_changes_nothing() {
        on_own_thread(|| {
            let before = (getgroups().unwrap(), fsuid());
            let _as = Identity::Server.enter().unwrap();
            assert_eq!((getgroups().unwrap(), fsuid()), before);
        });
    }

    #[test]
    fn a_uid_without_a_passwd_entry_gets_its_own_number_as_group_and_no_others() {
        // 4_000_000_000 is far above any uid a system allocates.
        let id = Identity::of_uid(4_000_000_000);
        assert_eq!(
            id,
            Identity::User {
                uid: 4_000_000_000,
                gid: 4_000_000_000,
                groups: Arc::from([]),
                any_gid: false,
            }
        );
    }

    #[test]
    fn a_create_names_only_the_users_own_groups_unless_trusted() {
        let user = Identity::User {
            uid: 4321,
            gid: 4321,
            groups: gids(&[4321, 50]).into(),
            any_gid: false,
        };
        let gid_of = |id: Identity| match id {
            Identity::User { gid, .. } => gid,
            Identity::Server => panic!("a user identity"),
        };
        assert_eq!(gid_of(user.with_gid(50)), 50);
        assert_eq!(gid_of(user.with_gid(0)), 4321);
        assert_eq!(gid_of(user.clone().with_any_gid().with_gid(0)), 0);
    }

    #[test]
    fn root_has_its_primary_group_among_its_groups() {
        let Identity::User { gid, groups, .. } = Identity::of_uid(0) else {
            panic!("a user identity");
        };
        assert_eq!(gid, 0);
        assert!(groups.contains(&Gid::ROOT));
    }
}
