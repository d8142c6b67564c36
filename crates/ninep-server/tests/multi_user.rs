//! `--multi-user`: files belong to the attaching user and permissions are checked for them.

mod common;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use ninep::{Client, NOFID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_created_and_checked_as_the_attaching_user() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let h = Harness::with(|c| c.multi_user = true).await;
    let e = h.export();
    std::fs::set_permissions(&e, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(e.join("private"), b"root only").unwrap();
    std::fs::set_permissions(e.join("private"), std::fs::Permissions::from_mode(0o600)).unwrap();

    let user = Client::connect_unix(&h.socket).await.unwrap();
    user.version(MSIZE, "9P2000.L").await.unwrap();
    user.attach(0, NOFID, b"", b"", 4321).await.unwrap();
    // Created as uid 4321 with the gid the request names.
    let d = walk_to(&user, "").await.unwrap();
    user.lcreate(d, b"mine", O_RDWR, 0o640, 777).await.unwrap();
    let m = e.join("mine").metadata().unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 777));
    user.mkdir(0, b"mydir", 0o755, 777).await.unwrap();
    assert_eq!(e.join("mydir").metadata().unwrap().uid(), 4321);
    // Permissions are the user's: a root-only file cannot be opened or changed.
    let p = walk_to(&user, "private").await.unwrap();
    assert_eq!(errno(user.lopen(p, O_RDONLY).await), libc::EACCES);
    let chown = ninep::SetAttr {
        valid: 0x2,
        uid: 4321,
        ..Default::default()
    };
    assert_eq!(errno(user.setattr(p, chown).await), libc::EPERM);

    // An aname is walked as the attaching user: a directory it may not search is closed to it.
    std::fs::create_dir_all(e.join("locked/inner")).unwrap();
    std::fs::set_permissions(e.join("locked"), std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        errno(user.attach(900, NOFID, b"", b"locked/inner", 4321).await),
        libc::EACCES
    );

    // Root attaches keep root's powers, on the same server.
    let root = h.client().await;
    let p = walk_to(&root, "private").await.unwrap();
    root.lopen(p, O_RDONLY).await.unwrap();
    assert_eq!(&root.read(p, 0, 100).await.unwrap()[..], b"root only");
    root.attach(900, NOFID, b"", b"locked/inner", 0)
        .await
        .unwrap();
}

/// A user other than root with a supplementary group that is not its primary group, as
/// (uid, the groups `getgrouplist` gives it, that group), found in this system's group
/// database: Debian's `ssl-cert` lists `postgres`, for instance.
fn user_with_a_secondary_group() -> Option<(u32, Vec<u32>, u32)> {
    use nix::unistd::{User, getgrouplist};
    let database = std::fs::read_to_string("/etc/group").ok()?;
    for line in database.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [_, _, gid, members] = fields[..] else {
            continue;
        };
        let Ok(gid) = gid.parse::<u32>() else {
            continue;
        };
        for member in members.split(',').filter(|m| !m.is_empty()) {
            let Ok(Some(user)) = User::from_name(member) else {
                continue;
            };
            if user.uid.is_root() || user.gid.as_raw() == gid {
                continue;
            }
            let Ok(groups) = getgrouplist(&CString::new(member).ok()?, user.gid) else {
                continue;
            };
            let groups: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
            if groups.contains(&gid) {
                return Some((user.uid.as_raw(), groups, gid));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supplementary_groups_of_the_attaching_user_grant_access() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some((uid, groups, group)) = user_with_a_secondary_group() else {
        eprintln!("skipped: no user in /etc/group has a secondary group");
        return;
    };
    let not_a_member = (54321..).find(|g| !groups.contains(g)).unwrap();
    let h = Harness::with(|c| c.multi_user = true).await;
    let e = h.export();
    // Owned by root, readable by its group only.
    for (name, gid) in [("ours", group), ("theirs", not_a_member)] {
        std::fs::write(e.join(name), b"group only").unwrap();
        std::os::unix::fs::chown(e.join(name), Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(e.join(name), std::fs::Permissions::from_mode(0o040)).unwrap();
    }

    let member = Client::connect_unix(&h.socket).await.unwrap();
    member.version(MSIZE, "9P2000.L").await.unwrap();
    member.attach(0, NOFID, b"", b"", uid).await.unwrap();
    let f = walk_to(&member, "ours").await.unwrap();
    member.lopen(f, O_RDONLY).await.unwrap();
    assert_eq!(&member.read(f, 0, 100).await.unwrap()[..], b"group only");
    // A group the user is not in grants nothing.
    let f = walk_to(&member, "theirs").await.unwrap();
    assert_eq!(errno(member.lopen(f, O_RDONLY).await), libc::EACCES);

    // Another user, without the group, is refused the first file.
    let other = Client::connect_unix(&h.socket).await.unwrap();
    other.version(MSIZE, "9P2000.L").await.unwrap();
    other.attach(0, NOFID, b"", b"", 4321).await.unwrap();
    let f = walk_to(&other, "ours").await.unwrap();
    assert_eq!(errno(other.lopen(f, O_RDONLY).await), libc::EACCES);
}
