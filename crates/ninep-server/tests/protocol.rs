//! Version negotiation, framing limits, bad input and Tflush.

mod common;

use bytes::Bytes;
use common::*;
use ninep::{Client, GetLock, Lock, NOFID, Request, Response};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msize_is_the_smaller_of_client_and_server() {
    let h = Harness::start().await;
    let c = Client::connect_unix(&h.socket).await.unwrap();
    assert_eq!(c.version(4 << 20, "9P2000.L").await.unwrap().0, 1 << 20);
    assert_eq!(c.version(8192, "9P2000.L").await.unwrap().0, 8192);
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    std::fs::write(h.export().join("big"), vec![7u8; 100_000]).unwrap();
    c.walk(0, 1, &["big"]).await.unwrap();
    let (_, iounit) = c.lopen(1, O_RDONLY).await.unwrap();
    assert_eq!(iounit, 8192 - 24);
    // Asking for more than fits still gets a reply that fits the msize.
    let data = c.read(1, 0, 1 << 20).await.unwrap();
    assert!(!data.is_empty() && data.len() + 11 <= 8192);
    // A readdir reply fits too.
    for i in 0..200 {
        std::fs::write(
            h.export().join(format!("file-with-a-long-name-{i:04}")),
            b"",
        )
        .unwrap();
    }
    c.walk(0, 2, &[] as &[&str]).await.unwrap();
    c.lopen(2, O_RDONLY).await.unwrap();
    let data = c.readdir(2, 0, 1 << 20).await.unwrap();
    assert!(!data.is_empty() && data.len() + 11 <= 8192);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_iounit_is_whole_pages_and_fits_the_msize() {
    let h = Harness::start().await;
    let c = h.client().await;
    std::fs::write(h.export().join("f"), b"x").unwrap();
    c.walk(0, 1, &["f"]).await.unwrap();
    let (_, iounit) = c.lopen(1, O_RDONLY).await.unwrap();
    let page = 4096;
    assert_eq!(iounit % page, 0, "iounit {iounit}");
    assert!(iounit <= MSIZE - ninep::P9_IOHDRSZ && iounit > MSIZE - ninep::P9_IOHDRSZ - page);
    let (_, created) = c.lcreate(0, b"g", 2, 0o644, 0).await.unwrap();
    assert_eq!(created, iounit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_version_and_tiny_msize_are_refused() {
    let h = Harness::start().await;
    let c = Client::connect_unix(&h.socket).await.unwrap();
    assert_eq!(&c.version(65536, "9P2000").await.unwrap().1[..], b"unknown");
    assert_eq!(&c.version(512, "9P2000.L").await.unwrap().1[..], b"unknown");
    // Requests before a successful Tversion are refused.
    assert_eq!(errno(c.attach(0, NOFID, b"", b"", 0).await), libc::EPROTO);
    assert_eq!(
        &c.version(65536, "9P2000.L").await.unwrap().1[..],
        b"9P2000.L"
    );
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tversion_drops_every_fid() {
    let h = Harness::start().await;
    let c = h.client().await;
    c.walk(0, 1, &[] as &[&str]).await.unwrap();
    c.version(MSIZE, "9P2000.L").await.unwrap();
    assert_eq!(errno(c.getattr(1, 0x7ff).await), libc::EBADF);
    assert_eq!(errno(c.getattr(0, 0x7ff).await), libc::EBADF);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_rlerror_or_a_closed_connection() {
    let h = Harness::start().await;
    let c = h.client().await;
    // A 9P2000 (not .L) message type: Rlerror.
    let topen = vec![12, 0, 0, 0, 112, 0, 0, 0, 0, 0, 0, 0];
    assert!(
        matches!(c.call_raw(topen).await.unwrap(), Response::Lerror { ecode } if ecode == libc::EOPNOTSUPP as u32)
    );
    // A Twalk whose body is truncated: Rlerror EINVAL.
    let bad_walk = vec![13, 0, 0, 0, 110, 0, 0, 0, 0, 0, 0, 1, 0];
    assert!(
        matches!(c.call_raw(bad_walk).await.unwrap(), Response::Lerror { ecode } if ecode == libc::EINVAL as u32)
    );
    // Attach with an unknown afid: refused, EPERM as diod answers it.
    assert_eq!(errno(c.attach(5, 77, b"", b"", 0).await), libc::EPERM);
    // The connection still works.
    c.getattr(0, 0x7ff).await.unwrap();
    // A frame declaring more than the msize closes the connection.
    c.send_raw(vec![0xff, 0xff, 0xff, 0x7f, 110, 0, 0]).unwrap();
    assert!(c.getattr(0, 0x7ff).await.is_err());
    // The server itself is fine.
    let c2 = h.client().await;
    c2.getattr(0, 0x7ff).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_of_an_unknown_tag_answers_at_once() {
    let h = Harness::start().await;
    let mut raw = h.raw().await;
    assert!(matches!(
        raw.call(1, &Request::Flush { oldtag: 999 }).await,
        Response::Flush
    ));
}

/// Reads replies until the Rflush of `flush_tag`; returns the replies for `old` seen before it.
async fn until_rflush(raw: &mut Raw, flush_tag: u16, old: u16) -> Vec<Response> {
    let mut before = Vec::new();
    loop {
        let (tag, resp) = raw.recv().await;
        if tag == flush_tag {
            assert!(matches!(resp, Response::Flush), "{resp:?}");
            return before;
        }
        assert_eq!(tag, old, "unexpected reply {resp:?}");
        before.push(resp);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_of_in_flight_reads_never_leaves_a_late_reply() {
    let h = Harness::start().await;
    std::fs::write(h.export().join("big"), vec![3u8; 1 << 20]).unwrap();
    let mut raw = h.raw().await;
    let attach = Request::Attach {
        fid: 0,
        afid: NOFID,
        uname: b(""),
        aname: b(""),
        n_uname: 0,
    };
    assert!(matches!(
        raw.call(1, &attach).await,
        Response::Attach { .. }
    ));
    let walk = Request::Walk {
        fid: 0,
        newfid: 1,
        wnames: vec![b("big")],
    };
    assert!(matches!(raw.call(1, &walk).await, Response::Walk { .. }));
    assert!(matches!(
        raw.call(
            1,
            &Request::Lopen {
                fid: 1,
                flags: O_RDONLY
            }
        )
        .await,
        Response::Lopen { .. }
    ));
    for round in 0..200u16 {
        raw.send(
            10,
            &Request::Read {
                fid: 1,
                offset: 0,
                count: 1 << 19,
            },
        )
        .await;
        raw.send(11, &Request::Flush { oldtag: 10 }).await;
        let before = until_rflush(&mut raw, 11, 10).await;
        assert!(before.len() <= 1, "round {round}: {before:?}");
        if let Some(Response::Read { data }) = before.first() {
            assert_eq!(data.len(), 1 << 19);
        }
        // Tag 10 is free again: its next reply must be for the new request.
        let resp = raw
            .call(
                10,
                &Request::Getattr {
                    fid: 1,
                    request_mask: 0x7ff,
                },
            )
            .await;
        assert!(
            matches!(resp, Response::Getattr(_)),
            "round {round}: late reply {resp:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_of_a_blocked_lock_cancels_it() {
    let h = Harness::start().await;
    std::fs::write(h.export().join("f"), b"data").unwrap();
    let mut raw = h.raw().await;
    let attach = Request::Attach {
        fid: 0,
        afid: NOFID,
        uname: b(""),
        aname: b(""),
        n_uname: 0,
    };
    assert!(matches!(
        raw.call(1, &attach).await,
        Response::Attach { .. }
    ));
    for fid in [1, 2, 3] {
        let walk = Request::Walk {
            fid: 0,
            newfid: fid,
            wnames: vec![b("f")],
        };
        assert!(matches!(raw.call(1, &walk).await, Response::Walk { .. }));
        assert!(matches!(
            raw.call(1, &Request::Lopen { fid, flags: O_RDWR }).await,
            Response::Lopen { .. }
        ));
    }
    let lock = |ty, proc_id, flags| Lock {
        ty,
        flags,
        start: 0,
        length: 0,
        proc_id,
        client_id: b("client"),
    };
    let held = raw
        .call(
            1,
            &Request::Lock {
                fid: 1,
                lock: lock(1, 100, 0),
            },
        )
        .await;
    assert!(matches!(held, Response::Lock { status: 0 }));
    // A blocking request from another owner waits; flush it.
    raw.send(
        20,
        &Request::Lock {
            fid: 2,
            lock: lock(1, 200, 1),
        },
    )
    .await;
    raw.send(21, &Request::Flush { oldtag: 20 }).await;
    let before = until_rflush(&mut raw, 21, 20).await;
    for r in &before {
        assert!(
            matches!(r, Response::Lock { status: 1 }),
            "only BLOCKED may precede the Rflush: {r:?}"
        );
    }
    // Release the first lock: the flushed request must not have taken it afterwards.
    assert!(matches!(
        raw.call(
            1,
            &Request::Lock {
                fid: 1,
                lock: lock(2, 100, 0)
            }
        )
        .await,
        Response::Lock { status: 0 }
    ));
    let probe = GetLock {
        ty: 1,
        start: 0,
        length: 0,
        proc_id: 300,
        client_id: b("client"),
    };
    match raw
        .call(
            20,
            &Request::Getlock {
                fid: 3,
                lock: probe,
            },
        )
        .await
    {
        Response::Getlock(g) => assert_eq!(g.ty, 2, "the file must be unlocked: {g:?}"),
        other => panic!("late or wrong reply: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_all_get_their_replies() {
    let h = Harness::start().await;
    let c = h.client().await;
    let pending: Vec<_> = (0..500)
        .map(|_| {
            c.start(&Request::Getattr {
                fid: 0,
                request_mask: 0x7ff,
            })
            .unwrap()
        })
        .collect();
    for p in pending {
        assert!(matches!(p.wait().await.unwrap(), Response::Getattr(_)));
    }
    let _ = Bytes::new();
}
