//! `--multi-user`: files belong to the attaching user and permissions are checked for them.

mod common;

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

    // Root attaches keep root's powers, on the same server.
    let root = h.client().await;
    let p = walk_to(&root, "private").await.unwrap();
    root.lopen(p, O_RDONLY).await.unwrap();
    assert_eq!(&root.read(p, 0, 100).await.unwrap()[..], b"root only");
}
