//! Walk rules and every escape attempt: nothing outside the export is reachable.

mod common;

use common::*;
use ninep::NOFID;
use std::os::unix::fs::symlink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotdot_at_root_stays_at_root() {
    let h = Harness::start().await;
    let c = h.client().await;
    let root = c.getattr(0, 0x7ff).await.unwrap().qid;
    let qids = c.walk(0, 1, &["..", "..", ".."]).await.unwrap();
    assert_eq!(qids, vec![root; 3]);
    assert_eq!(c.getattr(1, 0x7ff).await.unwrap().qid, root);
    // The sibling directory of the export cannot be named through `..`: the walk stops at the
    // root (a partial walk) and creates no fid.
    assert_eq!(c.walk(0, 2, &["..", "outside"]).await.unwrap(), vec![root]);
    assert_eq!(errno(c.clunk(2).await), libc::EBADF);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotdot_below_root_goes_up_one_level() {
    let h = Harness::start().await;
    std::fs::create_dir_all(h.export().join("a/b")).unwrap();
    let c = h.client().await;
    let a = c.walk(0, 1, &["a"]).await.unwrap()[0];
    let qids = c.walk(0, 2, &["a", "b", ".."]).await.unwrap();
    assert_eq!(qids[2], a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_slashes_absolute_or_empty_are_refused() {
    let h = Harness::start().await;
    std::fs::create_dir_all(h.export().join("a/b")).unwrap();
    let c = h.client().await;
    for bad in ["/etc", "a/b", "", "/", "../outside", "a\0b"] {
        assert_eq!(
            errno(c.walk(0, 1, &[bad]).await),
            libc::EINVAL,
            "name {bad:?}"
        );
    }
    assert_eq!(errno(c.clunk(1).await), libc::EBADF, "no fid was created");
    // Creating such names is refused too.
    let dir = walk_to(&c, "").await.unwrap();
    assert_eq!(
        errno(c.lcreate(dir, b"x/y", O_RDWR, 0o644, 0).await),
        libc::EINVAL
    );
    assert_eq!(errno(c.mkdir(0, b"..", 0o755, 0).await), libc::EINVAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_are_never_followed() {
    let h = Harness::start().await;
    symlink(h.outside(), h.export().join("out")).unwrap();
    symlink(h.outside().join("secret"), h.export().join("secret")).unwrap();
    symlink("/etc", h.export().join("etc")).unwrap();
    let c = h.client().await;
    // Through a symlink to a directory: the walk stops at the link (a partial walk).
    assert_eq!(c.walk(0, 1, &["out", "secret"]).await.unwrap().len(), 1);
    assert_eq!(c.walk(0, 2, &["etc", "passwd"]).await.unwrap().len(), 1);
    assert_eq!(errno(c.clunk(1).await), libc::EBADF);
    assert_eq!(errno(c.clunk(2).await), libc::EBADF);
    // The symlink itself can be walked to, read as a link, but never opened.
    let q = c.walk(0, 3, &["secret"]).await.unwrap();
    assert!(q[0].is_symlink());
    assert_eq!(errno(c.lopen(3, O_RDONLY).await), libc::ELOOP);
    let target = match c.call(&ninep::Request::Readlink { fid: 3 }).await.unwrap() {
        ninep::Response::Readlink { target } => target,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        &target[..],
        h.outside().join("secret").as_os_str().as_encoded_bytes()
    );
    // Creating over a symlink does not write through it.
    let dir = walk_to(&c, "").await.unwrap();
    assert!(
        c.lcreate(dir, b"secret", O_RDWR | 0o1000, 0o644, 0)
            .await
            .is_err()
    );
    assert_eq!(
        std::fs::read(h.outside().join("secret")).unwrap(),
        b"SECRET"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_of_a_directory_to_a_symlink_during_walks_never_escapes() {
    let h = Harness::start().await;
    let export = h.export();
    std::fs::create_dir(export.join("d")).unwrap();
    std::fs::write(export.join("d/secret"), b"inside").unwrap();
    let c = h.client().await;
    let outside = h.outside();
    let swapper = std::thread::spawn(move || {
        for _ in 0..500 {
            std::fs::rename(export.join("d"), export.join("d2")).unwrap();
            symlink(&outside, export.join("d")).unwrap();
            std::fs::remove_file(export.join("d")).unwrap();
            std::fs::rename(export.join("d2"), export.join("d")).unwrap();
        }
    });
    let mut inside_reads = 0;
    while !swapper.is_finished() {
        let fid = c.new_fid() + 10_000;
        if c.walk(0, fid, &["d", "secret"])
            .await
            .is_ok_and(|q| q.len() == 2)
        {
            c.lopen(fid, O_RDONLY).await.unwrap();
            let data = c.read(fid, 0, 100).await.unwrap();
            assert_eq!(&data[..], b"inside", "read through a swapped symlink");
            inside_reads += 1;
            c.clunk(fid).await.unwrap();
        }
    }
    swapper.join().unwrap();
    assert!(inside_reads > 0 || c.walk(0, 99, &["d", "secret"]).await.unwrap().len() == 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_walk_returns_walked_qids_and_creates_no_fid() {
    let h = Harness::start().await;
    std::fs::create_dir_all(h.export().join("a/b")).unwrap();
    let c = h.client().await;
    let qids = c.walk(0, 1, &["a", "b", "missing", "x"]).await.unwrap();
    assert_eq!(qids.len(), 2);
    assert_eq!(errno(c.clunk(1).await), libc::EBADF);
    // A failing first element is an error.
    assert_eq!(errno(c.walk(0, 1, &["missing"]).await), libc::ENOENT);
    // Walking through a file fails after it.
    std::fs::write(h.export().join("f"), b"x").unwrap();
    assert_eq!(c.walk(0, 1, &["f", "x"]).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_use_newfid_is_refused_and_clone_works() {
    let h = Harness::start().await;
    std::fs::create_dir(h.export().join("a")).unwrap();
    let c = h.client().await;
    assert!(c.walk(0, 1, &["a"]).await.is_ok());
    assert_eq!(errno(c.walk(0, 1, &["a"]).await), libc::EBADF);
    // nwname = 0 clones.
    assert!(c.walk(1, 2, &[] as &[&str]).await.unwrap().is_empty());
    assert_eq!(
        c.getattr(2, 0x7ff).await.unwrap().qid,
        c.getattr(1, 0x7ff).await.unwrap().qid
    );
    // newfid == fid moves the fid itself.
    c.walk(2, 2, &[".."]).await.unwrap();
    assert_eq!(
        c.getattr(2, 0x7ff).await.unwrap().qid,
        c.getattr(0, 0x7ff).await.unwrap().qid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_from_an_opened_directory_works() {
    let h = Harness::start().await;
    std::fs::create_dir(h.export().join("a")).unwrap();
    std::fs::write(h.export().join("a/f"), b"hi").unwrap();
    let c = h.client().await;
    c.walk(0, 1, &["a"]).await.unwrap();
    c.lopen(1, O_RDONLY).await.unwrap();
    c.walk(1, 2, &["f"]).await.unwrap();
    c.lopen(2, O_RDONLY).await.unwrap();
    assert_eq!(&c.read(2, 0, 10).await.unwrap()[..], b"hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_paths_work() {
    let h = Harness::start().await;
    let c = h.client().await;
    // Deeper than PATH_MAX once joined: 300 levels of 20-byte names.
    let name = "d".repeat(20);
    let mut fid = walk_to(&c, "").await.unwrap();
    for _ in 0..300 {
        c.mkdir(fid, name.as_bytes(), 0o755, 0).await.unwrap();
        let next = c.new_fid() + 50_000;
        c.walk(fid, next, &[name.as_str()]).await.unwrap();
        c.clunk(fid).await.unwrap();
        fid = next;
    }
    let file = c.new_fid() + 50_000;
    c.walk(fid, file, &[] as &[&str]).await.unwrap();
    c.lcreate(file, b"leaf", O_RDWR, 0o644, 0).await.unwrap();
    c.write(file, 0, b("deep")).await.unwrap();
    assert_eq!(&c.read(file, 0, 10).await.unwrap()[..], b"deep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aname_picks_a_directory_of_the_export_and_dotdot_stays_in_it() {
    let h = Harness::start().await;
    std::fs::create_dir_all(h.export().join("a/b/c")).unwrap();
    let c = h.client().await;
    let root = c.getattr(0, 0x7ff).await.unwrap().qid;
    let a = c.walk(0, 1, &["a"]).await.unwrap()[0];
    let b = c.walk(0, 2, &["a", "b"]).await.unwrap()[1];
    let export = h.export().display().to_string();
    let cases = [
        (String::new(), root),
        (export.clone(), root),
        (format!("{export}/"), root),
        ("/".to_string(), root),
        (format!("{export}//a/"), a),
        (format!("{export}/a/b"), b),
        ("a".to_string(), a),
        ("./a/b/..".to_string(), a),
        // `..` while walking the name stops at the export root, as in Twalk.
        ("../../a".to_string(), a),
        (format!("{export}/a/../.."), root),
    ];
    for (i, (aname, want)) in cases.iter().enumerate() {
        let fid = 10 + i as u32;
        let qid = c.attach(fid, NOFID, b"root", aname.as_bytes(), 0).await;
        assert_eq!(qid.as_ref().ok(), Some(want), "Tattach {aname:?}");
        assert_eq!(c.getattr(fid, 0x7ff).await.unwrap().qid, *want);
    }
    // Attached at `a/b`, `..` stays at `a/b`: the attach names the top of the fid's tree.
    c.attach(30, NOFID, b"root", b"a/b", 0).await.unwrap();
    assert_eq!(c.walk(30, 31, &["..", ".."]).await.unwrap(), vec![b; 2]);
    assert_eq!(c.walk(30, 32, &["..", "a"]).await.unwrap(), vec![b]);
    assert_eq!(errno(c.clunk(32).await), libc::EBADF);
    // A fid walked from it keeps that top: one level down, `..` twice ends at `a/b`.
    let c_qid = c.walk(30, 33, &["c"]).await.unwrap()[0];
    assert_eq!(c.walk(33, 34, &["..", ".."]).await.unwrap(), vec![b, b]);
    assert_eq!(c.walk(33, 35, &[] as &[&str]).await.unwrap(), vec![]);
    assert_eq!(c.getattr(35, 0x7ff).await.unwrap().qid, c_qid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aname_outside_the_export_or_through_a_symlink_is_refused() {
    let h = Harness::start().await;
    std::fs::create_dir(h.export().join("a")).unwrap();
    std::fs::write(h.export().join("f"), b"x").unwrap();
    symlink("a", h.export().join("link")).unwrap();
    symlink(h.outside(), h.export().join("out")).unwrap();
    let c = h.client().await;
    let export = h.export().display().to_string();
    let outside = h.outside().display().to_string();
    let cases = [
        ("/etc".to_string(), libc::ENOENT),
        ("//".to_string(), libc::ENOENT),
        (outside, libc::ENOENT),
        // A sibling whose name starts with the export's.
        (format!("{export}-sibling"), libc::ENOENT),
        (format!("{export}/missing"), libc::ENOENT),
        ("f".to_string(), libc::ENOTDIR),
        // Symlinks are not followed: one is not a directory to attach to or walk through.
        ("link".to_string(), libc::ENOTDIR),
        ("out".to_string(), libc::ENOTDIR),
        (format!("{export}/out/x"), libc::ENOTDIR),
        ("a/\0".to_string(), libc::EINVAL),
        ("a/".repeat(2100), libc::ENAMETOOLONG),
    ];
    for (i, (aname, want)) in cases.iter().enumerate() {
        let fid = 10 + i as u32;
        let got = c.attach(fid, NOFID, b"root", aname.as_bytes(), 0).await;
        assert_eq!(
            errno(got),
            *want,
            "Tattach {:?}",
            &aname[..aname.len().min(40)]
        );
        assert_eq!(errno(c.clunk(fid).await), libc::EBADF, "no fid is made");
    }
}
