//! File operations through the protocol: data, metadata, directories, xattrs, locks.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use bytes::Bytes;
use common::*;
use ninep::{DirentIter, GetLock, Lock, Request, Response, SetAttr};

async fn list(c: &ninep::Client, path: &str, count: u32) -> Vec<(String, u64)> {
    let fid = walk_to(c, path).await.unwrap();
    c.lopen(fid, O_RDONLY).await.unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let data = c.readdir(fid, offset, count).await.unwrap();
        assert!(data.len() <= count as usize);
        if data.is_empty() {
            break;
        }
        for e in DirentIter::new(data) {
            let e = e.expect("whole entries only");
            offset = e.offset;
            out.push((String::from_utf8_lossy(&e.name).into_owned(), e.qid.path));
        }
    }
    c.clunk(fid).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_write_read_and_attributes() {
    let h = Harness::start().await;
    let c = h.client().await;
    let f = create_file(&c, "hello", b"hello world").await;
    assert_eq!(
        std::fs::read(h.export().join("hello")).unwrap(),
        b"hello world"
    );
    assert_eq!(&c.read(f, 6, 100).await.unwrap()[..], b"world");
    assert!(c.read(f, 100, 10).await.unwrap().is_empty());
    let a = c.getattr(f, 0x3fff).await.unwrap();
    assert_eq!(a.size, 11);
    assert_eq!(a.mode & 0o7777, 0o644);
    assert_eq!(
        a.qid.path,
        h.export().join("hello").metadata().unwrap().ino()
    );
    c.fsync(f, false).await.unwrap();
    // chmod, truncate, times.
    let set = SetAttr {
        valid: 0x1 | 0x8 | 0x20 | 0x100,
        mode: 0o600,
        size: 5,
        mtime: ninep::Timespec { sec: 1000, nsec: 5 },
        ..Default::default()
    };
    c.setattr(f, set).await.unwrap();
    let m = h.export().join("hello").metadata().unwrap();
    assert_eq!(
        (
            m.permissions().mode() & 0o7777,
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ),
        (0o600, 5, 1000, 5)
    );
    // Directory reads and writes are refused, and so is data I/O on a fid not opened.
    let d = walk_to(&c, "").await.unwrap();
    c.lopen(d, O_RDONLY).await.unwrap();
    assert_eq!(errno(c.read(d, 0, 10).await), libc::EISDIR);
    assert_eq!(errno(c.write(d, 0, b("x")).await), libc::EISDIR);
    let unopened = walk_to(&c, "hello").await.unwrap();
    assert_eq!(errno(c.read(unopened, 0, 10).await), libc::EBADF);
    assert_eq!(errno(c.write(unopened, 0, b("x")).await), libc::EBADF);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qid_version_changes_when_the_file_changes() {
    let h = Harness::start().await;
    let c = h.client().await;
    let f = create_file(&c, "v", b"one").await;
    let before = c.getattr(f, 0x7ff).await.unwrap().qid;
    c.write(f, 3, b("two")).await.unwrap();
    let after = c.getattr(f, 0x7ff).await.unwrap().qid;
    assert_eq!(before.path, after.path);
    assert_ne!(before.version, after.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_unlinked_file_keeps_working() {
    let h = Harness::start().await;
    let c = h.client().await;
    let f = create_file(&c, "gone", b"0123456789").await;
    c.unlinkat(0, b"gone", 0).await.unwrap();
    assert!(!h.export().join("gone").exists());
    let a = c.getattr(f, 0x7ff).await.unwrap();
    assert_eq!((a.nlink, a.size), (0, 10));
    c.setattr(
        f,
        SetAttr {
            valid: 0x8,
            size: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(c.getattr(f, 0x7ff).await.unwrap().size, 4);
    assert_eq!(&c.read(f, 0, 100).await.unwrap()[..], b"0123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_operations() {
    let h = Harness::start().await;
    let c = h.client().await;
    let e = h.export();
    c.mkdir(0, b"dir", 0o750, 0).await.unwrap();
    assert_eq!(
        e.join("dir").metadata().unwrap().permissions().mode() & 0o7777,
        0o750
    );
    let f = create_file(&c, "file", b"abc").await;
    c.clunk(f).await.unwrap();
    // link
    let file = walk_to(&c, "file").await.unwrap();
    let dir = walk_to(&c, "dir").await.unwrap();
    c.call(&Request::Link {
        dfid: dir,
        fid: file,
        name: b("hard"),
    })
    .await
    .unwrap();
    assert_eq!(e.join("dir/hard").metadata().unwrap().nlink(), 2);
    // symlink + readlink
    let r = c
        .call(&Request::Symlink {
            fid: 0,
            name: b("sl"),
            symtgt: b("dir/hard"),
            gid: 0,
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Symlink { qid } if qid.is_symlink()));
    assert_eq!(
        std::fs::read_link(e.join("sl")).unwrap().to_str().unwrap(),
        "dir/hard"
    );
    // mknod: a FIFO
    let r = c
        .call(&Request::Mknod {
            dfid: 0,
            name: b("fifo"),
            mode: libc::S_IFIFO | 0o644,
            major: 0,
            minor: 0,
            gid: 0,
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Mknod { .. }));
    assert!(e.join("fifo").metadata().unwrap().file_type().is_fifo());
    // renameat
    c.call(&Request::Renameat {
        olddirfid: 0,
        oldname: b("file"),
        newdirfid: dir,
        newname: b("moved"),
    })
    .await
    .unwrap();
    assert!(e.join("dir/moved").exists() && !e.join("file").exists());
    // Trename (the fallback) on a walked fid
    let moved = walk_to(&c, "dir/moved").await.unwrap();
    c.call(&Request::Rename {
        fid: moved,
        dfid: 0,
        name: b("back"),
    })
    .await
    .unwrap();
    assert!(e.join("back").exists());
    // unlinkat of a directory needs AT_REMOVEDIR
    c.mkdir(0, b"empty", 0o755, 0).await.unwrap();
    assert_eq!(errno(c.unlinkat(0, b"empty", 0).await), libc::EISDIR);
    c.unlinkat(0, b"empty", 0x200).await.unwrap();
    // Tremove removes and clunks
    let back = walk_to(&c, "back").await.unwrap();
    c.remove(back).await.unwrap();
    assert!(!e.join("back").exists());
    assert_eq!(errno(c.clunk(back).await), libc::EBADF);
    // statfs
    let st = c.statfs(0).await.unwrap();
    assert!(st.bsize > 0 && st.namelen > 0);
}

/// Tremove and Trename act on the name the fid was walked through, and only while that name
/// still is the fid's file: after another client renamed the file away and created a new
/// one under the old name, they must leave the new file alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_and_rename_through_a_replaced_name_leave_the_new_file_alone() {
    let h = Harness::start().await;
    let c = h.client().await;
    let other = h.client().await;
    let e = h.export();
    std::fs::write(e.join("f"), b"old").unwrap();
    std::fs::write(e.join("r"), b"old").unwrap();
    let to_remove = walk_to(&c, "f").await.unwrap();
    let to_rename = walk_to(&c, "r").await.unwrap();
    for name in ["f", "r"] {
        let moved = format!("{name}-moved");
        other
            .renameat(0, name.as_bytes(), 0, moved.as_bytes())
            .await
            .unwrap();
        let fid = create_file(&other, name, b"new").await;
        other.clunk(fid).await.unwrap();
    }

    assert_eq!(errno(c.remove(to_remove).await), libc::ENOENT);
    assert_eq!(std::fs::read(e.join("f")).unwrap(), b"new");
    assert_eq!(std::fs::read(e.join("f-moved")).unwrap(), b"old");
    // Tremove clunks the fid even when the removal fails.
    assert_eq!(errno(c.clunk(to_remove).await), libc::EBADF);

    let rename = Request::Rename {
        fid: to_rename,
        dfid: 0,
        name: b("elsewhere"),
    };
    assert_eq!(
        c.call(&rename).await.unwrap(),
        Response::Lerror {
            ecode: libc::ENOENT as u32
        }
    );
    assert_eq!(std::fs::read(e.join("r")).unwrap(), b"new");
    assert_eq!(std::fs::read(e.join("r-moved")).unwrap(), b"old");
    assert!(!e.join("elsewhere").exists());
    // The fid still holds its own file.
    c.lopen(to_rename, O_RDONLY).await.unwrap();
    assert_eq!(&c.read(to_rename, 0, 10).await.unwrap()[..], b"old");

    // A name that is gone altogether: ENOENT too, and nothing is removed.
    let gone = walk_to(&c, "f-moved").await.unwrap();
    std::fs::rename(e.join("f-moved"), e.join("f-gone")).unwrap();
    assert_eq!(errno(c.remove(gone).await), libc::ENOENT);
    assert!(e.join("f-gone").exists());

    // Fids walked to the new files act on them.
    let f = walk_to(&c, "f").await.unwrap();
    c.remove(f).await.unwrap();
    assert!(!e.join("f").exists());
    let r = walk_to(&c, "r").await.unwrap();
    let rename = Request::Rename {
        fid: r,
        dfid: 0,
        name: b("renamed"),
    };
    assert_eq!(c.call(&rename).await.unwrap(), Response::Rename);
    assert_eq!(std::fs::read(e.join("renamed")).unwrap(), b"new");
    assert!(!e.join("r").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_files_serve_metadata_but_never_block_on_data() {
    let h = Harness::start().await;
    nix::unistd::mkfifo(
        &h.export().join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let c = h.client().await;
    let f = walk_to(&c, "fifo").await.unwrap();
    let a = c.getattr(f, 0x7ff).await.unwrap();
    assert_eq!(a.mode & libc::S_IFMT, libc::S_IFIFO);
    // Opening does not wait for a writer, and data I/O is refused rather than blocking.
    c.lopen(f, O_RDONLY).await.unwrap();
    assert_eq!(errno(c.read(f, 0, 10).await), libc::EINVAL);
    assert_eq!(errno(c.write(f, 0, b("x")).await), libc::EINVAL);
    c.setattr(
        f,
        SetAttr {
            valid: 0x1,
            mode: 0o600,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        h.export()
            .join("fifo")
            .metadata()
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlcreate_of_a_name_in_use_opens_it_as_tlopen_does() {
    let h = Harness::start().await;
    let export = h.export();
    nix::unistd::mkfifo(
        &export.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::fs::write(export.join("file"), b"contents").unwrap();
    std::fs::create_dir(export.join("dir")).unwrap();
    let c = h.client().await;
    let at_root = || async { walk_to(&c, "").await.unwrap() };
    let o_excl = libc::O_EXCL as u32;

    // A FIFO is not opened for data: no wait for the other end, and its I/O is refused.
    for access in [O_RDONLY, O_WRONLY, O_RDWR] {
        let f = at_root().await;
        let created = c.lcreate(f, b"fifo", access, 0o644, 0);
        tokio::time::timeout(std::time::Duration::from_secs(10), created)
            .await
            .expect("Tlcreate of a FIFO answered without waiting for the other end")
            .unwrap();
        assert_eq!(errno(c.read(f, 0, 10).await), libc::EINVAL);
        assert_eq!(errno(c.write(f, 0, b("x")).await), libc::EINVAL);
    }

    // A regular file is opened, truncated only when asked.
    let f = at_root().await;
    c.lcreate(f, b"file", O_RDWR, 0o644, 0).await.unwrap();
    assert_eq!(&c.read(f, 0, 100).await.unwrap()[..], b"contents");
    let f = at_root().await;
    c.lcreate(f, b"file", O_WRONLY | libc::O_TRUNC as u32, 0o644, 0)
        .await
        .unwrap();
    assert_eq!(std::fs::read(export.join("file")).unwrap(), b"");

    // A directory is not a file to create, and O_EXCL refuses any name in use.
    let f = at_root().await;
    assert_eq!(
        errno(c.lcreate(f, b"dir", O_RDONLY, 0o644, 0).await),
        libc::EISDIR
    );
    for name in [&b"fifo"[..], b"file", b"dir"] {
        let f = at_root().await;
        let got = c.lcreate(f, name, O_RDWR | o_excl, 0o644, 0).await;
        assert_eq!(errno(got), libc::EEXIST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlcreate_never_opens_a_device_node() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: creating a device node needs root");
        return;
    }
    let h = Harness::start().await;
    // A copy of /dev/null's node: opened by mistake, writes to it would succeed.
    nix::sys::stat::mknod(
        &h.export().join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let c = h.client().await;
    let f = walk_to(&c, "").await.unwrap();
    c.lcreate(f, b"null", O_RDWR, 0o644, 0).await.unwrap();
    assert_eq!(errno(c.write(f, 0, b("x")).await), libc::EINVAL);
    assert_eq!(errno(c.read(f, 0, 10).await), libc::EINVAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdir_returns_every_entry_once_with_whole_entries() {
    let h = Harness::start().await;
    std::fs::create_dir(h.export().join("big")).unwrap();
    for i in 0..3000 {
        std::fs::write(h.export().join(format!("big/entry-{i:05}")), b"").unwrap();
    }
    let c = h.client().await;
    // A small count forces many calls, each ending on an entry boundary.
    let names: Vec<String> = list(&c, "big", 300)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let unique: HashSet<_> = names.iter().cloned().collect();
    assert_eq!(names.len(), unique.len(), "no duplicates");
    assert_eq!(unique.len(), 3002);
    assert!(unique.contains(".") && unique.contains("..") && unique.contains("entry-02999"));
    // A count smaller than any entry gives an empty reply, never a partial entry.
    let d = walk_to(&c, "big").await.unwrap();
    c.lopen(d, O_RDONLY).await.unwrap();
    assert!(c.readdir(d, 0, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdir_cookies_stay_valid_while_entries_change() {
    let h = Harness::start().await;
    std::fs::create_dir(h.export().join("d")).unwrap();
    for i in 0..500 {
        std::fs::write(h.export().join(format!("d/keep-{i:04}")), b"").unwrap();
    }
    let c = h.client().await;
    let fid = walk_to(&c, "d").await.unwrap();
    c.lopen(fid, O_RDONLY).await.unwrap();
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut round = 0;
    loop {
        let data = c.readdir(fid, offset, 512).await.unwrap();
        if data.is_empty() {
            break;
        }
        for e in DirentIter::new(data) {
            let e = e.unwrap();
            offset = e.offset;
            seen.push(String::from_utf8_lossy(&e.name).into_owned());
        }
        // Between calls, add and remove other entries.
        std::fs::write(h.export().join(format!("d/new-{round}")), b"").unwrap();
        let _ = std::fs::remove_file(h.export().join(format!("d/new-{}", round.max(1) - 1)));
        round += 1;
    }
    let keep: Vec<_> = seen.iter().filter(|n| n.starts_with("keep-")).collect();
    let unique: HashSet<_> = keep.iter().collect();
    assert_eq!(keep.len(), 500, "every untouched entry exactly once");
    assert_eq!(unique.len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xattrs_two_phase_set_get_list_remove() {
    let h = Harness::start().await;
    let c = h.client().await;
    let f = create_file(&c, "x", b"").await;
    c.clunk(f).await.unwrap();
    // Set: Txattrcreate, Twrite, commit at Tclunk.
    let set = |fid: u32, name: &'static str, value: &'static [u8], flags: u32| {
        let c = c.clone();
        async move {
            c.walk(0, fid, &["x"]).await.unwrap();
            let r = c
                .call(&Request::Xattrcreate {
                    fid,
                    name: b(name),
                    attr_size: value.len() as u64,
                    flags,
                })
                .await
                .unwrap();
            assert!(matches!(r, Response::Xattrcreate), "{r:?}");
            if !value.is_empty() {
                c.write(fid, 0, Bytes::from_static(value)).await.unwrap();
            }
            c.clunk(fid).await
        }
    };
    if let Err(e) = set(10, "user.colour", b"blue", 0).await {
        // Some filesystems refuse user xattrs: then the error must be a clean errno.
        assert_eq!(errno::<()>(Err(e)), libc::EOPNOTSUPP);
        return;
    }
    assert_eq!(
        xattr_get(&c, 11, "user.colour").await,
        Some(b"blue".to_vec())
    );
    let list = xattr_get(&c, 12, "").await.unwrap();
    assert!(list.split(|b| *b == 0).any(|n| n == b"user.colour"));
    // A size mismatch fails at clunk and sets nothing.
    c.walk(0, 13, &["x"]).await.unwrap();
    c.call(&Request::Xattrcreate {
        fid: 13,
        name: b("user.short"),
        attr_size: 10,
        flags: 0,
    })
    .await
    .unwrap();
    c.write(13, 0, b("abc")).await.unwrap();
    assert_eq!(errno(c.clunk(13).await), libc::EINVAL);
    assert_eq!(
        errno(c.clunk(13).await),
        libc::EBADF,
        "the fid is gone anyway"
    );
    assert_eq!(xattr_get(&c, 14, "user.short").await, None);
    // XATTR_CREATE on an existing name fails; a zero-size replace removes.
    assert_eq!(errno(set(15, "user.colour", b"red", 1).await), libc::EEXIST);
    set(16, "user.colour", b"", 2).await.unwrap();
    assert_eq!(xattr_get(&c, 17, "user.colour").await, None);
}

async fn xattr_get(c: &ninep::Client, fid: u32, name: &str) -> Option<Vec<u8>> {
    c.walk(0, fid + 100, &["x"]).await.unwrap();
    let walk = Request::Xattrwalk {
        fid: fid + 100,
        newfid: fid,
        name: b(name),
    };
    let reply = c.call(&walk).await.unwrap();
    c.clunk(fid + 100).await.unwrap();
    let size = match reply {
        Response::Xattrwalk { size } => size,
        Response::Lerror { ecode } => {
            assert_eq!(ecode as i32, libc::ENODATA);
            return None;
        }
        other => panic!("{other:?}"),
    };
    let data = c.read(fid, 0, size as u32 + 10).await.unwrap();
    assert_eq!(data.len() as u64, size);
    c.clunk(fid).await.unwrap();
    Some(data.to_vec())
}

fn lock(ty: u8, proc_id: u32) -> Lock {
    Lock {
        ty,
        flags: 0,
        start: 0,
        length: 0,
        proc_id,
        client_id: b("host"),
    }
}

async fn tlock(c: &ninep::Client, fid: u32, l: Lock) -> u8 {
    match c.call(&Request::Lock { fid, lock: l }).await.unwrap() {
        Response::Lock { status } => status,
        other => panic!("{other:?}"),
    }
}

/// Tfsync, Tlock and Tgetlock need a fid opened on a regular file; fsync of an opened
/// directory has nothing to do and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_and_locks_need_an_opened_file() {
    let h = Harness::start().await;
    let c = h.client().await;
    std::fs::write(h.export().join("f"), b"data").unwrap();
    let getlock = GetLock {
        ty: 1,
        start: 0,
        length: 0,
        proc_id: 1,
        client_id: b("host"),
    };
    let not_opened = walk_to(&c, "f").await.unwrap();
    let dir = walk_to(&c, "").await.unwrap();
    c.lopen(dir, O_RDONLY).await.unwrap();
    for fid in [not_opened, dir] {
        assert_eq!(errno(c.lock(fid, lock(1, 1)).await), libc::EBADF);
        assert_eq!(errno(c.getlock(fid, getlock.clone()).await), libc::EBADF);
    }
    assert_eq!(errno(c.fsync(not_opened, false).await), libc::EBADF);
    c.fsync(dir, false).await.unwrap();

    c.lopen(not_opened, O_RDWR).await.unwrap();
    c.fsync(not_opened, true).await.unwrap();
    assert_eq!(c.lock(not_opened, lock(1, 1)).await.unwrap(), 0);
    // The owner's own lock does not conflict with itself: reported unlocked (ty 2).
    assert_eq!(c.getlock(not_opened, getlock).await.unwrap().ty, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_exclude_other_owners_and_go_away_on_clunk() {
    let h = Harness::start().await;
    let c = h.client().await;
    let f = create_file(&c, "l", b"data").await;
    c.clunk(f).await.unwrap();
    let ino = locked_file(&h.export().join("l"));
    for fid in [1, 2] {
        c.walk(0, fid, &["l"]).await.unwrap();
        c.lopen(fid, O_RDWR).await.unwrap();
    }
    assert_eq!(tlock(&c, 1, lock(1, 10)).await, 0, "SUCCESS");
    assert_eq!(count_ofd_locks_on(ino), 1);
    assert_eq!(
        tlock(&c, 2, lock(1, 20)).await,
        1,
        "BLOCKED for another owner"
    );
    assert_eq!(
        tlock(&c, 2, lock(0, 20)).await,
        1,
        "a read lock conflicts with a write lock"
    );
    // The same owner on another fid is another open file: still its own lock, so re-locking
    // through fid 1 succeeds.
    assert_eq!(tlock(&c, 1, lock(1, 10)).await, 0);
    match c
        .call(&Request::Getlock {
            fid: 2,
            lock: GetLock {
                ty: 1,
                start: 0,
                length: 0,
                proc_id: 20,
                client_id: b("host"),
            },
        })
        .await
        .unwrap()
    {
        Response::Getlock(g) => assert_eq!(g.ty, 1, "reports the write lock"),
        other => panic!("{other:?}"),
    }
    // A host process's OFD lock conflicts too.
    c.clunk(1).await.unwrap();
    assert_eq!(ofd_locks_after_close(ino), 0, "clunk released the lock");
    assert_eq!(tlock(&c, 2, lock(1, 20)).await, 0);
    assert_eq!(tlock(&c, 2, lock(2, 20)).await, 0, "unlock");
    assert_eq!(count_ofd_locks_on(ino), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_export_refuses_changes() {
    let h = Harness::with(|c| c.read_only = true).await;
    std::fs::write(h.export().join("f"), b"ro").unwrap();
    let c = h.client().await;
    let d = walk_to(&c, "").await.unwrap();
    assert_eq!(
        errno(c.lcreate(d, b"new", O_RDWR, 0o644, 0).await),
        libc::EROFS
    );
    assert_eq!(errno(c.mkdir(0, b"new", 0o755, 0).await), libc::EROFS);
    assert_eq!(errno(c.unlinkat(0, b"f", 0).await), libc::EROFS);
    let f = walk_to(&c, "f").await.unwrap();
    assert_eq!(errno(c.lopen(f, O_WRONLY).await), libc::EROFS);
    assert_eq!(
        errno(
            c.setattr(
                f,
                SetAttr {
                    valid: 0x1,
                    mode: 0o777,
                    ..Default::default()
                }
            )
            .await
        ),
        libc::EROFS
    );
    c.lopen(f, O_RDONLY).await.unwrap();
    assert_eq!(&c.read(f, 0, 10).await.unwrap()[..], b"ro");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setattr_sets_subsecond_times() {
    let h = Harness::start().await;
    let c = h.client().await;
    let f = create_file(&c, "t", b"").await;
    let set = SetAttr {
        valid: 0x10 | 0x20 | 0x80 | 0x100,
        atime: ninep::Timespec {
            sec: 100_000_000,
            nsec: 100_000_000,
        },
        mtime: ninep::Timespec {
            sec: 200_000_000,
            nsec: 200_000_000,
        },
        ..Default::default()
    };
    c.setattr(f, set).await.unwrap();
    let a = c.getattr(f, 0x7ff).await.unwrap();
    assert_eq!((a.atime.sec, a.atime.nsec), (100_000_000, 100_000_000));
    assert_eq!((a.mtime.sec, a.mtime.nsec), (200_000_000, 200_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qid_paths_stay_unique_across_devices() {
    let h = Harness::start().await;
    let e = h.export();
    std::fs::create_dir(e.join("mnt")).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(e.join("mnt"))
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    // Files with the same inode number on two devices.
    std::fs::write(e.join("mnt/inner"), b"").unwrap();
    let inner_ino = inode(&e.join("mnt/inner"));
    let c = h.client().await;
    let inner = c.walk(0, 1, &["mnt", "inner"]).await.unwrap()[1];
    let mut outer_paths = HashSet::new();
    for entry in list(&c, "", 8192).await {
        outer_paths.insert(entry.1);
    }
    let _ = std::process::Command::new("umount")
        .arg(e.join("mnt"))
        .status();
    assert_eq!(inner.path & ((1 << 48) - 1), inner_ino);
    assert_ne!(
        inner.path, inner_ino,
        "the other device's inode is moved out of the export's range"
    );
    assert!(!outer_paths.contains(&inner.path));
}
