//! Abrupt disconnects with requests in flight release every descriptor and lock, also in the
//! middle of a Twrite payload being spliced from a TCP socket.
//!
//! Alone in its test binary, so that the process's open descriptors are the server's.

mod common;

use bytes::Bytes;
use common::*;
use ninep::{Lock, NOFID, Request};
use tokio::io::AsyncWriteExt;

fn frame(tag: u16, req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    req.encode(tag, &mut out).unwrap();
    out
}

/// The descriptor count once the warm-up connection's server side has closed too.
async fn settled_fd_count() -> usize {
    let mut last = count_fds();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let now = count_fds();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_abrupt_disconnects_leak_nothing() {
    let h = Harness::start().await;
    std::fs::write(h.export().join("f"), vec![1u8; 256 * 1024]).unwrap();
    std::fs::create_dir(h.export().join("d")).unwrap();
    for i in 0..50 {
        std::fs::write(h.export().join(format!("d/{i}")), b"").unwrap();
    }
    let ino = locked_file(&h.export().join("f"));
    // Warm up (the runtime's own descriptors, the blocking pool) before counting.
    drop(h.client().await);
    let fds_before = settled_fd_count().await;
    let locks_before = count_ofd_locks_on(ino);

    for i in 0..1000u32 {
        let mut s = tokio::net::UnixStream::connect(&h.socket).await.unwrap();
        let mut batch = frame(
            0xffff,
            &Request::Version {
                msize: MSIZE,
                version: b("9P2000.L"),
            },
        );
        batch.extend(frame(
            1,
            &Request::Attach {
                fid: 0,
                afid: NOFID,
                uname: b(""),
                aname: b(""),
                n_uname: 0,
            },
        ));
        batch.extend(frame(
            2,
            &Request::Walk {
                fid: 0,
                newfid: 1,
                wnames: vec![b("f")],
            },
        ));
        batch.extend(frame(
            3,
            &Request::Lopen {
                fid: 1,
                flags: O_RDWR,
            },
        ));
        let lock = Lock {
            ty: 1,
            flags: 1,
            start: 0,
            length: 0,
            proc_id: i,
            client_id: b("c"),
        };
        batch.extend(frame(4, &Request::Lock { fid: 1, lock }));
        batch.extend(frame(
            5,
            &Request::Walk {
                fid: 0,
                newfid: 2,
                wnames: vec![b("d")],
            },
        ));
        batch.extend(frame(
            6,
            &Request::Lopen {
                fid: 2,
                flags: O_RDONLY,
            },
        ));
        for tag in 10..20 {
            batch.extend(frame(
                tag,
                &Request::Read {
                    fid: 1,
                    offset: 0,
                    count: 128 * 1024,
                },
            ));
        }
        batch.extend(frame(
            20,
            &Request::Readdir {
                fid: 2,
                offset: 0,
                count: 8192,
            },
        ));
        batch.extend(frame(
            21,
            &Request::Write {
                fid: 1,
                offset: 0,
                data: Bytes::from_static(b"x"),
            },
        ));
        // Every few rounds, cut the last frame in half too.
        if i % 3 == 0 {
            batch.extend(&frame(22, &Request::Clunk { fid: 1 })[..5]);
        }
        s.write_all(&batch).await.unwrap();
        drop(s);
    }

    // Cancelled requests finish their blocking work and then drop what they held; wait for
    // that (bounded), then compare.
    let mut fds = count_fds();
    for _ in 0..500 {
        if fds <= fds_before && count_ofd_locks_on(ino) == locks_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        fds = count_fds();
    }
    assert_eq!(fds, fds_before, "open descriptors back to the start");
    assert_eq!(count_ofd_locks_on(ino), locks_before, "no lock left behind");
    // And the file can be locked by a fresh client.
    let c = h.client().await;
    c.walk(0, 1, &["f"]).await.unwrap();
    c.lopen(1, O_RDWR).await.unwrap();
    let lock = Lock {
        ty: 1,
        flags: 0,
        start: 0,
        length: 0,
        proc_id: 1,
        client_id: b("new"),
    };
    assert!(matches!(
        c.call(&Request::Lock { fid: 1, lock }).await.unwrap(),
        ninep::Response::Lock { status: 0 }
    ));
    drop(c);
    drop(h);
    disconnects_inside_spliced_writes().await;
}

/// Over TCP a large Twrite's payload goes into a pipe as it arrives: a client that leaves
/// half-way through it (or sends a second one right behind) must leave no pipe open.
async fn disconnects_inside_spliced_writes() {
    let h = Harness::tcp().await;
    let addr = h.tcp_addr().unwrap();
    drop(h.client().await);
    let fds_before = settled_fd_count().await;
    for i in 0..300u32 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut batch = frame(
            0xffff,
            &Request::Version {
                msize: MSIZE,
                version: b("9P2000.L"),
            },
        );
        for (tag, req) in [
            (
                1,
                Request::Attach {
                    fid: 0,
                    afid: NOFID,
                    uname: b(""),
                    aname: b(""),
                    n_uname: 0,
                },
            ),
            (
                2,
                Request::Walk {
                    fid: 0,
                    newfid: 1,
                    wnames: vec![],
                },
            ),
            (
                3,
                Request::Lcreate {
                    fid: 1,
                    name: b(&format!("f{i}")),
                    flags: O_RDWR,
                    mode: 0o644,
                    gid: 0,
                },
            ),
        ] {
            batch.extend(frame(tag, &req));
        }
        let write = |tag| {
            frame(
                tag,
                &Request::Write {
                    fid: 1,
                    offset: 0,
                    data: Bytes::from(vec![i as u8; 900_000]),
                },
            )
        };
        // One whole write, then a cut one (at a different point each round).
        batch.extend(write(4));
        let cut = write(5);
        batch.extend(&cut[..1000 + (i as usize * 2_997) % (cut.len() - 1000)]);
        s.write_all(&batch).await.unwrap();
        drop(s);
    }
    let mut fds = count_fds();
    for _ in 0..500 {
        if fds <= fds_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        fds = count_fds();
    }
    assert_eq!(fds, fds_before, "open descriptors back to the start");
}
