//! The async client against a scripted in-process server.

use std::collections::HashSet;

use bytes::Bytes;
use ninep::consts::{errno, getattr, msg};
use ninep::{
    Attr, Client, ClientError, DirentIter, FrameReader, NOFID, NOTAG, Qid, ReaddirFrame, Request,
    Response,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

/// The server end of a connection, driven step by step by the test.
struct Script {
    frames: FrameReader<ReadHalf<DuplexStream>>,
    out: WriteHalf<DuplexStream>,
}

impl Script {
    async fn recv(&mut self) -> (u16, Request) {
        let frame = self.frames.next_frame().await.unwrap().expect("a request");
        Request::decode(&frame).unwrap()
    }

    async fn recv_raw(&mut self) -> Bytes {
        self.frames.next_frame().await.unwrap().expect("a frame")
    }

    async fn reply(&mut self, tag: u16, r: &Response) {
        let mut buf = Vec::new();
        r.encode(tag, &mut buf).unwrap();
        self.out.write_all(&buf).await.unwrap();
    }
}

fn pair() -> (Client, Script) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let client = Client::from_stream(a);
    let (r, w) = tokio::io::split(b);
    let script = Script {
        frames: FrameReader::new(r, 4 << 20),
        out: w,
    };
    (client, script)
}

fn qid(path: u64) -> Qid {
    Qid {
        ty: 0,
        version: 0,
        path,
    }
}

#[tokio::test]
async fn version_uses_notag_and_bounds_the_reply_size() {
    let (client, mut server) = pair();
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.version(1 << 20, "9P2000.L").await }
    });
    let (tag, req) = server.recv().await;
    assert_eq!(tag, NOTAG);
    assert_eq!(
        req,
        Request::Version {
            msize: 1 << 20,
            version: Bytes::from_static(b"9P2000.L")
        }
    );
    server
        .reply(
            tag,
            &Response::Version {
                msize: 65536,
                version: Bytes::from_static(b"9P2000.L"),
            },
        )
        .await;
    let (msize, version) = call.await.unwrap().unwrap();
    assert_eq!((msize, &version[..]), (65536, &b"9P2000.L"[..]));
    assert_eq!(client.msize(), 65536);
}

#[tokio::test]
async fn rlerror_becomes_an_errno() {
    let (client, mut server) = pair();
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.walk(1, 2, &["missing"]).await }
    });
    let (tag, req) = server.recv().await;
    assert!(matches!(
        req,
        Request::Walk {
            fid: 1,
            newfid: 2,
            ..
        }
    ));
    server
        .reply(
            tag,
            &Response::Lerror {
                ecode: errno::ENOENT,
            },
        )
        .await;
    assert!(matches!(
        call.await.unwrap(),
        Err(ClientError::Lerror(errno::ENOENT))
    ));
}

#[tokio::test]
async fn a_reply_of_the_wrong_kind_is_reported() {
    let (client, mut server) = pair();
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.clunk(3).await }
    });
    let (tag, _) = server.recv().await;
    server.reply(tag, &Response::Remove).await;
    assert!(matches!(
        call.await.unwrap(),
        Err(ClientError::Unexpected {
            expected: "Rclunk",
            got: "Rremove"
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_get_their_own_replies_in_any_order() {
    const CALLS: u32 = 500;
    let (client, mut server) = pair();
    let calls: Vec<_> = (0..CALLS)
        .map(|fid| {
            let c = client.clone();
            tokio::spawn(async move { c.getattr(fid, getattr::BASIC).await })
        })
        .collect();
    // Answer in batches, newest first, checking no tag is used twice while in flight.
    let mut answered = 0;
    while answered < CALLS {
        let mut batch = Vec::new();
        let mut tags = HashSet::new();
        for _ in 0..50.min(CALLS - answered) {
            let (tag, req) = server.recv().await;
            assert!(tags.insert(tag), "tag {tag} reused while in flight");
            assert_ne!(tag, NOTAG);
            let Request::Getattr { fid, .. } = req else {
                panic!("unexpected {req:?}");
            };
            batch.push((tag, fid));
        }
        for (tag, fid) in batch.iter().rev() {
            let attr = Attr {
                qid: qid(u64::from(*fid)),
                size: u64::from(*fid) * 10,
                ..Attr::default()
            };
            server.reply(*tag, &Response::Getattr(attr)).await;
        }
        answered += batch.len() as u32;
    }
    for (fid, call) in calls.into_iter().enumerate() {
        let attr = call.await.unwrap().unwrap();
        assert_eq!(attr.qid.path, fid as u64);
        assert_eq!(attr.size, fid as u64 * 10);
    }
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn flush_cancels_a_waiting_call_and_holds_its_tag_until_rflush() {
    let (client, mut server) = pair();
    let pending = client
        .start(&Request::Read {
            fid: 1,
            offset: 0,
            count: 10,
        })
        .unwrap();
    let oldtag = pending.tag();
    let (tag, _) = server.recv().await;
    assert_eq!(tag, oldtag);

    let flush = tokio::spawn({
        let c = client.clone();
        async move { c.flush(oldtag).await }
    });
    let (flush_tag, req) = server.recv().await;
    assert_eq!(req, Request::Flush { oldtag });
    assert_ne!(flush_tag, oldtag);
    assert_eq!(client.in_flight(), 2);
    server.reply(flush_tag, &Response::Flush).await;
    flush.await.unwrap().unwrap();
    assert!(matches!(pending.wait().await, Err(ClientError::Flushed)));
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn a_reply_that_beats_the_rflush_is_delivered() {
    let (client, mut server) = pair();
    let pending = client.start(&Request::Clunk { fid: 4 }).unwrap();
    let oldtag = pending.tag();
    server.recv().await;
    let flush = tokio::spawn({
        let c = client.clone();
        async move { c.flush(oldtag).await }
    });
    let (flush_tag, _) = server.recv().await;
    server.reply(oldtag, &Response::Clunk).await;
    assert_eq!(pending.wait().await.unwrap(), Response::Clunk);
    // The old tag stays reserved until the Rflush: the server may not be done with it.
    assert_eq!(client.in_flight(), 2);
    server.reply(flush_tag, &Response::Flush).await;
    flush.await.unwrap().unwrap();
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn an_abandoned_call_keeps_its_tag_until_the_server_answers() {
    let (client, mut server) = pair();
    let pending = client.start(&Request::Statfs { fid: 1 }).unwrap();
    let abandoned = pending.tag();
    drop(pending);
    let (tag, _) = server.recv().await;
    assert_eq!(tag, abandoned);
    assert_eq!(client.in_flight(), 1);

    let next = tokio::spawn({
        let c = client.clone();
        async move { c.clunk(1).await }
    });
    let (next_tag, _) = server.recv().await;
    assert_ne!(next_tag, abandoned);
    server
        .reply(abandoned, &Response::Lerror { ecode: 5 })
        .await;
    server.reply(next_tag, &Response::Clunk).await;
    next.await.unwrap().unwrap();
    assert_eq!(client.in_flight(), 0, "late reply released the tag");
}

#[tokio::test]
async fn a_lost_connection_fails_waiting_and_later_calls() {
    let (client, mut server) = pair();
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.attach(0, NOFID, b"u", b"", 0).await }
    });
    server.recv().await;
    drop(server);
    assert!(matches!(
        call.await.unwrap(),
        Err(ClientError::Disconnected(_))
    ));
    assert!(matches!(
        client.clunk(0).await,
        Err(ClientError::Disconnected(_))
    ));
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn an_oversized_reply_closes_the_connection() {
    let (client, mut server) = pair();
    let call = tokio::spawn({
        let c = client.clone();
        async move {
            c.version(8192, "9P2000.L").await.unwrap();
            c.read(1, 0, 8000).await
        }
    });
    let (tag, _) = server.recv().await;
    server
        .reply(
            tag,
            &Response::Version {
                msize: 8192,
                version: Bytes::from_static(b"9P2000.L"),
            },
        )
        .await;
    let (tag, _) = server.recv().await;
    server
        .reply(
            tag,
            &Response::Read {
                data: vec![0; 9000].into(),
            },
        )
        .await;
    match call.await.unwrap() {
        Err(ClientError::Disconnected(reason)) => assert!(reason.contains("exceeds msize 8192")),
        other => panic!("expected a disconnection, got {other:?}"),
    }
}

#[tokio::test]
async fn raw_frames_go_out_with_a_fresh_tag() {
    let (client, mut server) = pair();
    // A Tclunk missing two bytes of its fid, with a placeholder tag.
    let raw = vec![9, 0, 0, 0, msg::TCLUNK, 0xaa, 0xbb, 1, 0];
    let call = tokio::spawn({
        let c = client.clone();
        async move { c.call_raw(raw).await }
    });
    let frame = server.recv_raw().await;
    assert_eq!(frame.len(), 9);
    let tag = u16::from_le_bytes([frame[5], frame[6]]);
    assert_ne!(tag, 0xbbaa);
    assert!(Request::decode(&frame).is_err());
    server
        .reply(
            tag,
            &Response::Lerror {
                ecode: errno::EPROTO,
            },
        )
        .await;
    assert_eq!(
        call.await.unwrap().unwrap(),
        Response::Lerror {
            ecode: errno::EPROTO
        }
    );

    client.send_raw(vec![1, 2, 3]).unwrap();
    client.send_raw(vec![4, 5, 6, 7]).unwrap();
    let mut junk = [0; 7];
    server.frames.get_mut().read_exact(&mut junk).await.unwrap();
    assert_eq!(junk, [1, 2, 3, 4, 5, 6, 7], "raw bytes go out untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_writes_and_readdir_payloads_arrive_intact() {
    let (client, mut server) = pair();
    let data: Bytes = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let write = tokio::spawn({
        let c = client.clone();
        let data = data.clone();
        async move { c.write(7, 4096, data).await }
    });
    let (tag, req) = server.recv().await;
    let Request::Write {
        fid: 7,
        offset: 4096,
        data: got,
    } = req
    else {
        panic!("not the Twrite");
    };
    assert_eq!(got, data);
    server.reply(tag, &Response::Write { count: 1 << 20 }).await;
    assert_eq!(write.await.unwrap().unwrap(), 1 << 20);

    // A small write travels batched with its header.
    let small = tokio::spawn({
        let c = client.clone();
        async move { c.write(7, 0, Bytes::from_static(b"tiny")).await }
    });
    let (tag, req) = server.recv().await;
    assert_eq!(
        req,
        Request::Write {
            fid: 7,
            offset: 0,
            data: Bytes::from_static(b"tiny")
        }
    );
    server.reply(tag, &Response::Write { count: 4 }).await;
    assert_eq!(small.await.unwrap().unwrap(), 4);

    let readdir = tokio::spawn({
        let c = client.clone();
        async move { c.readdir(2, 0, 4096).await }
    });
    let (tag, req) = server.recv().await;
    assert_eq!(
        req,
        Request::Readdir {
            fid: 2,
            offset: 0,
            count: 4096
        }
    );
    let mut frame = Vec::new();
    let mut rd = ReaddirFrame::begin(&mut frame, tag, 4096);
    for (i, name) in [&b"."[..], b"..", b"a\xffb"].iter().enumerate() {
        assert!(
            rd.entries()
                .push(&qid(i as u64), i as u64 + 1, 4, name)
                .unwrap()
        );
    }
    rd.finish();
    server.out.write_all(&frame).await.unwrap();
    let data = readdir.await.unwrap().unwrap();
    let names: Vec<Bytes> = DirentIter::new(data).map(|d| d.unwrap().name).collect();
    assert_eq!(names, vec![&b"."[..], b"..", b"a\xffb"]);
}

/// Runs `call` while the scripted server checks it sent `expected` and answers `reply`.
async fn exchange<T: Send + 'static>(
    server: &mut Script,
    call: impl std::future::Future<Output = T> + Send + 'static,
    expected: Request,
    reply: Response,
) -> T {
    let handle = tokio::spawn(call);
    let (tag, request) = server.recv().await;
    assert_eq!(request, expected);
    server.reply(tag, &reply).await;
    handle.await.unwrap()
}

#[tokio::test]
async fn typed_calls_send_their_request_and_unpack_their_reply() {
    use ninep::consts::{lock_status, lock_type, open_flags};
    use ninep::{GetLock, Lock, SetAttr, StatFs};

    let (client, mut server) = pair();
    let b = |s: &'static [u8]| Bytes::from_static(s);
    let c = client.clone();

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.lopen(3, open_flags::RDONLY).await }
        },
        Request::Lopen { fid: 3, flags: 0 },
        Response::Lopen {
            qid: qid(3),
            iounit: 99,
        },
    )
    .await;
    assert_eq!(got.unwrap(), (qid(3), 99));

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.lcreate(3, b"f", 0o1, 0o644, 5).await }
        },
        Request::Lcreate {
            fid: 3,
            name: b(b"f"),
            flags: 1,
            mode: 0o644,
            gid: 5,
        },
        Response::Lcreate {
            qid: qid(4),
            iounit: 0,
        },
    )
    .await;
    assert_eq!(got.unwrap(), (qid(4), 0));

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.symlink(2, b"l", b"../t", 5).await }
        },
        Request::Symlink {
            fid: 2,
            name: b(b"l"),
            symtgt: b(b"../t"),
            gid: 5,
        },
        Response::Symlink { qid: qid(5) },
    )
    .await;
    assert_eq!(got.unwrap(), qid(5));

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.readlink(6).await }
        },
        Request::Readlink { fid: 6 },
        Response::Readlink { target: b(b"../t") },
    )
    .await;
    assert_eq!(got.unwrap(), b(b"../t"));

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.link(2, 6, b"hard").await }
        },
        Request::Link {
            dfid: 2,
            fid: 6,
            name: b(b"hard"),
        },
        Response::Link,
    )
    .await;
    got.unwrap();

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.renameat(2, b"a", 3, b"b").await }
        },
        Request::Renameat {
            olddirfid: 2,
            oldname: b(b"a"),
            newdirfid: 3,
            newname: b(b"b"),
        },
        Response::Renameat,
    )
    .await;
    got.unwrap();

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.xattrwalk(2, 9, b"user.x").await }
        },
        Request::Xattrwalk {
            fid: 2,
            newfid: 9,
            name: b(b"user.x"),
        },
        Response::Xattrwalk { size: 17 },
    )
    .await;
    assert_eq!(got.unwrap(), 17);

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.xattrcreate(9, b"user.y", 3, 0).await }
        },
        Request::Xattrcreate {
            fid: 9,
            name: b(b"user.y"),
            attr_size: 3,
            flags: 0,
        },
        Response::Xattrcreate,
    )
    .await;
    got.unwrap();

    let lock = Lock {
        ty: lock_type::WRLCK,
        flags: 0,
        start: 0,
        length: 10,
        proc_id: 77,
        client_id: b(b"me"),
    };
    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            let lock = lock.clone();
            async move { c.lock(4, lock).await }
        },
        Request::Lock { fid: 4, lock },
        Response::Lock {
            status: lock_status::BLOCKED,
        },
    )
    .await;
    assert_eq!(got.unwrap(), lock_status::BLOCKED);

    let probe = GetLock {
        ty: lock_type::RDLCK,
        start: 0,
        length: 0,
        proc_id: 1,
        client_id: b(b"me"),
    };
    let holder = GetLock {
        ty: lock_type::WRLCK,
        start: 0,
        length: 10,
        proc_id: 77,
        client_id: b(b"other"),
    };
    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            let probe = probe.clone();
            async move { c.getlock(4, probe).await }
        },
        Request::Getlock {
            fid: 4,
            lock: probe,
        },
        Response::Getlock(holder.clone()),
    )
    .await;
    assert_eq!(got.unwrap(), holder);

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.mkdir(2, b"d", 0o755, 5).await }
        },
        Request::Mkdir {
            dfid: 2,
            name: b(b"d"),
            mode: 0o755,
            gid: 5,
        },
        Response::Mkdir { qid: qid(8) },
    )
    .await;
    assert_eq!(got.unwrap(), qid(8));

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.unlinkat(2, b"d", ninep::consts::AT_REMOVEDIR).await }
        },
        Request::Unlinkat {
            dirfid: 2,
            name: b(b"d"),
            flags: ninep::consts::AT_REMOVEDIR,
        },
        Response::Unlinkat,
    )
    .await;
    got.unwrap();

    let st = StatFs {
        bsize: 4096,
        namelen: 255,
        ..StatFs::default()
    };
    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.statfs(1).await }
        },
        Request::Statfs { fid: 1 },
        Response::Statfs(st),
    )
    .await;
    assert_eq!(got.unwrap(), st);

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.fsync(4, true).await }
        },
        Request::Fsync {
            fid: 4,
            datasync: 1,
        },
        Response::Fsync,
    )
    .await;
    got.unwrap();

    let attr = SetAttr {
        valid: ninep::consts::setattr::SIZE,
        size: 5,
        ..SetAttr::default()
    };
    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.setattr(4, attr).await }
        },
        Request::Setattr { fid: 4, attr },
        Response::Setattr,
    )
    .await;
    got.unwrap();

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.read(4, 8, 3).await }
        },
        Request::Read {
            fid: 4,
            offset: 8,
            count: 3,
        },
        Response::Read { data: b(b"xyz") },
    )
    .await;
    assert_eq!(got.unwrap(), b(b"xyz"));

    let got = exchange(
        &mut server,
        {
            let c = c.clone();
            async move { c.remove(4).await }
        },
        Request::Remove { fid: 4 },
        Response::Lerror {
            ecode: errno::EACCES,
        },
    )
    .await;
    assert!(matches!(got, Err(ClientError::Lerror(errno::EACCES))));
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test]
async fn running_out_of_tags_is_an_error_not_a_hang() {
    let (client, _server) = pair();
    let pending: Vec<_> = (0..65535)
        .map(|fid| client.start(&Request::Clunk { fid }).unwrap())
        .collect();
    let tags: HashSet<u16> = pending.iter().map(|p| p.tag()).collect();
    assert_eq!(tags.len(), 65535);
    assert!(!tags.contains(&NOTAG), "NOTAG is reserved for Tversion");
    assert!(matches!(
        client.start(&Request::Clunk { fid: 0 }),
        Err(ClientError::TagsExhausted)
    ));
    // Tversion still goes out on NOTAG, once.
    let version = Request::Version {
        msize: 8192,
        version: Bytes::from_static(b"9P2000.L"),
    };
    assert_eq!(client.start(&version).unwrap().tag(), NOTAG);
    assert!(matches!(
        client.start(&version),
        Err(ClientError::TagInUse(NOTAG))
    ));
}
