//! A server (and a client) whose readers busy-poll their sockets serve every request correctly,
//! whether requests come in a burst, byte by byte, or one round trip at a time.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ninep::{Client, NOFID, Request, Response};
use ninep_server::busy_poll::BusyPoll;
use tokio::io::AsyncWriteExt;

const BUDGET: Duration = Duration::from_micros(200);

async fn busy_polling_server() -> Harness {
    Harness::with(|c| c.busy_poll = BUDGET).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_burst_and_large_frames_get_their_replies() {
    let h = busy_polling_server().await;
    let c = h.client().await;
    std::fs::create_dir(h.export().join("d")).unwrap();
    let pending: Vec<_> = (0..500)
        .map(|i| {
            let req = if i % 2 == 0 {
                Request::Getattr {
                    fid: 0,
                    request_mask: 0x7ff,
                }
            } else {
                Request::Walk {
                    fid: 0,
                    newfid: 10_000 + i,
                    wnames: vec![b("d")],
                }
            };
            (i, c.start(&req).unwrap())
        })
        .collect();
    for (i, p) in pending {
        match p.wait().await.unwrap() {
            Response::Getattr(a) if i % 2 == 0 => assert_eq!(a.qid.ty & 0x80, 0x80),
            Response::Walk { wqids } if i % 2 == 1 => assert_eq!(wqids.len(), 1),
            other => panic!("request {i}: {other:?}"),
        }
    }
    // Frames larger than one socket buffer arrive in many pieces, some during a spin.
    let data: Vec<u8> = (0..3 << 20)
        .map(|i: u32| (i * 7 + i / 4096) as u8)
        .collect();
    let fid = create_file(&c, "big", &[]).await;
    let chunk = (c.msize() - ninep::P9_IOHDRSZ) as usize;
    for (n, part) in data.chunks(chunk).enumerate() {
        let wrote = c
            .write(fid, (n * chunk) as u64, Bytes::copy_from_slice(part))
            .await
            .unwrap();
        assert_eq!(wrote as usize, part.len());
    }
    assert_eq!(std::fs::read(h.export().join("big")).unwrap(), data);
    let mut back = Vec::new();
    while back.len() < data.len() {
        let got = c.read(fid, back.len() as u64, chunk as u32).await.unwrap();
        assert!(!got.is_empty(), "early end of file at {}", back.len());
        back.extend_from_slice(&got);
    }
    assert!(back == data, "the file read back differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_trickling_in_byte_by_byte_is_answered() {
    let h = busy_polling_server().await;
    std::fs::write(h.export().join("f"), b"trickle").unwrap();
    let mut raw = h.raw().await;
    raw.send(
        1,
        &Request::Attach {
            fid: 0,
            afid: NOFID,
            uname: b("root"),
            aname: b(""),
            n_uname: 0,
        },
    )
    .await;
    assert!(matches!(raw.recv().await, (1, Response::Attach { .. })));
    let mut frames = Vec::new();
    for (tag, req) in [
        (
            2,
            Request::Walk {
                fid: 0,
                newfid: 1,
                wnames: vec![b("f")],
            },
        ),
        (
            3,
            Request::Getattr {
                fid: 1,
                request_mask: 0x7ff,
            },
        ),
    ] {
        req.encode(tag, &mut frames).unwrap();
    }
    // Some bytes come right away (the reader may be spinning), some after a pause longer
    // than the spin budget (the reader has gone to sleep).
    for (i, byte) in frames.iter().enumerate() {
        raw.w.write_all(&[*byte]).await.unwrap();
        if i % 3 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    assert!(matches!(raw.recv().await, (2, Response::Walk { wqids }) if wqids.len() == 1));
    match raw.recv().await {
        (3, Response::Getattr(a)) => assert_eq!(a.size, 7),
        other => panic!("expected Rgetattr, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_polling_client_does_sequential_round_trips() {
    let h = busy_polling_server().await;
    std::fs::write(h.export().join("f"), b"0123456789").unwrap();
    let (r, w) = tokio::net::UnixStream::connect(&h.socket)
        .await
        .unwrap()
        .into_split();
    let c = Client::from_split(BusyPoll::new(r, BUDGET), w);
    c.version(MSIZE, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"root", b"", 0).await.unwrap();
    for i in 0..300u32 {
        let fid = 100 + i;
        c.walk(0, fid, &["f"]).await.unwrap();
        assert_eq!(c.getattr(fid, 0x7ff).await.unwrap().size, 10);
        c.lopen(fid, O_RDONLY).await.unwrap();
        let at = u64::from(i % 10);
        assert_eq!(
            &c.read(fid, at, 1).await.unwrap()[..],
            &b"0123456789"[at as usize..][..1]
        );
        c.clunk(fid).await.unwrap();
    }
}
