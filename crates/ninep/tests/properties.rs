//! Property tests: random messages round-trip, random bytes never panic the decoder, and any
//! frame that decodes re-encodes to exactly the same bytes.

use bytes::{Bytes, BytesMut};
use ninep::consts::msg;
use ninep::{
    Attr, DirentIter, DirentWriter, FrameCodec, GetLock, Lock, Qid, Request, Response, SetAttr,
    StatFs, Timespec,
};
use proptest::collection::vec;
use proptest::prelude::*;
use tokio_util::codec::Decoder;

fn name() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn data() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn qid() -> impl Strategy<Value = Qid> {
    (any::<u8>(), any::<u32>(), any::<u64>()).prop_map(|(ty, version, path)| Qid {
        ty,
        version,
        path,
    })
}

fn ts() -> impl Strategy<Value = Timespec> {
    (any::<u64>(), any::<u64>()).prop_map(|(sec, nsec)| Timespec { sec, nsec })
}

fn getlock() -> impl Strategy<Value = GetLock> {
    (
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        name(),
    )
        .prop_map(|(ty, start, length, proc_id, client_id)| GetLock {
            ty,
            start,
            length,
            proc_id,
            client_id,
        })
}

fn request() -> impl Strategy<Value = Request> {
    let u = any::<u32>;
    prop_oneof![
        (u(), name()).prop_map(|(msize, version)| Request::Version { msize, version }),
        (u(), name(), name(), u()).prop_map(|(afid, uname, aname, n_uname)| Request::Auth {
            afid,
            uname,
            aname,
            n_uname
        }),
        (u(), u(), name(), name(), u()).prop_map(|(fid, afid, uname, aname, n_uname)| {
            Request::Attach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            }
        }),
        any::<u16>().prop_map(|oldtag| Request::Flush { oldtag }),
        (u(), u(), vec(name(), 0..=16)).prop_map(|(fid, newfid, wnames)| Request::Walk {
            fid,
            newfid,
            wnames
        }),
        (u(), u()).prop_map(|(fid, flags)| Request::Lopen { fid, flags }),
        (u(), name(), u(), u(), u()).prop_map(|(fid, name, flags, mode, gid)| Request::Lcreate {
            fid,
            name,
            flags,
            mode,
            gid
        }),
        (u(), name(), name(), u()).prop_map(|(fid, name, symtgt, gid)| Request::Symlink {
            fid,
            name,
            symtgt,
            gid
        }),
        (u(), name(), u(), u(), u(), u()).prop_map(|(dfid, name, mode, major, minor, gid)| {
            Request::Mknod {
                dfid,
                name,
                mode,
                major,
                minor,
                gid,
            }
        }),
        (u(), u(), name()).prop_map(|(fid, dfid, name)| Request::Rename { fid, dfid, name }),
        u().prop_map(|fid| Request::Readlink { fid }),
        (u(), any::<u64>()).prop_map(|(fid, request_mask)| Request::Getattr { fid, request_mask }),
        (u(), u(), u(), u(), u(), any::<u64>(), ts(), ts()).prop_map(
            |(fid, valid, mode, uid, gid, size, atime, mtime)| Request::Setattr {
                fid,
                attr: SetAttr {
                    valid,
                    mode,
                    uid,
                    gid,
                    size,
                    atime,
                    mtime,
                },
            }
        ),
        (u(), u(), name()).prop_map(|(fid, newfid, name)| Request::Xattrwalk { fid, newfid, name }),
        (u(), name(), any::<u64>(), u()).prop_map(|(fid, name, attr_size, flags)| {
            Request::Xattrcreate {
                fid,
                name,
                attr_size,
                flags,
            }
        }),
        (u(), any::<u64>(), u()).prop_map(|(fid, offset, count)| Request::Readdir {
            fid,
            offset,
            count
        }),
        (u(), u()).prop_map(|(fid, datasync)| Request::Fsync { fid, datasync }),
        (u(), getlock(), u()).prop_map(|(fid, g, flags)| Request::Lock {
            fid,
            lock: Lock {
                ty: g.ty,
                flags,
                start: g.start,
                length: g.length,
                proc_id: g.proc_id,
                client_id: g.client_id,
            },
        }),
        (u(), getlock()).prop_map(|(fid, lock)| Request::Getlock { fid, lock }),
        (u(), u(), name()).prop_map(|(dfid, fid, name)| Request::Link { dfid, fid, name }),
        (u(), name(), u(), u()).prop_map(|(dfid, name, mode, gid)| Request::Mkdir {
            dfid,
            name,
            mode,
            gid
        }),
        (u(), name(), u(), name()).prop_map(|(olddirfid, oldname, newdirfid, newname)| {
            Request::Renameat {
                olddirfid,
                oldname,
                newdirfid,
                newname,
            }
        }),
        (u(), name(), u()).prop_map(|(dirfid, name, flags)| Request::Unlinkat {
            dirfid,
            name,
            flags
        }),
        u().prop_map(|fid| Request::Statfs { fid }),
        (u(), any::<u64>(), u()).prop_map(|(fid, offset, count)| Request::Read {
            fid,
            offset,
            count
        }),
        (u(), any::<u64>(), data()).prop_map(|(fid, offset, data)| Request::Write {
            fid,
            offset,
            data
        }),
        u().prop_map(|fid| Request::Clunk { fid }),
        u().prop_map(|fid| Request::Remove { fid }),
    ]
}

fn attr() -> impl Strategy<Value = Attr> {
    (
        (
            any::<u64>(),
            qid(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
        vec(any::<u64>(), 7),
        (ts(), ts(), ts(), ts()),
    )
        .prop_map(
            |((valid, qid, mode, uid, gid), n, (atime, mtime, ctime, btime))| Attr {
                valid,
                qid,
                mode,
                uid,
                gid,
                nlink: n[0],
                rdev: n[1],
                size: n[2],
                blksize: n[3],
                blocks: n[4],
                atime,
                mtime,
                ctime,
                btime,
                gen_: n[5],
                data_version: n[6],
            },
        )
}

fn statfs() -> impl Strategy<Value = StatFs> {
    (
        any::<u32>(),
        any::<u32>(),
        vec(any::<u64>(), 6),
        any::<u32>(),
    )
        .prop_map(|(ty, bsize, n, namelen)| StatFs {
            ty,
            bsize,
            blocks: n[0],
            bfree: n[1],
            bavail: n[2],
            files: n[3],
            ffree: n[4],
            fsid: n[5],
            namelen,
        })
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u32>().prop_map(|ecode| Response::Lerror { ecode }),
        (any::<u32>(), name()).prop_map(|(msize, version)| Response::Version { msize, version }),
        qid().prop_map(|aqid| Response::Auth { aqid }),
        qid().prop_map(|qid| Response::Attach { qid }),
        Just(Response::Flush),
        vec(qid(), 0..=16).prop_map(|wqids| Response::Walk { wqids }),
        (qid(), any::<u32>()).prop_map(|(qid, iounit)| Response::Lopen { qid, iounit }),
        (qid(), any::<u32>()).prop_map(|(qid, iounit)| Response::Lcreate { qid, iounit }),
        qid().prop_map(|qid| Response::Symlink { qid }),
        qid().prop_map(|qid| Response::Mknod { qid }),
        Just(Response::Rename),
        name().prop_map(|target| Response::Readlink { target }),
        attr().prop_map(Response::Getattr),
        Just(Response::Setattr),
        any::<u64>().prop_map(|size| Response::Xattrwalk { size }),
        Just(Response::Xattrcreate),
        data().prop_map(|data| Response::Readdir { data }),
        Just(Response::Fsync),
        any::<u8>().prop_map(|status| Response::Lock { status }),
        getlock().prop_map(Response::Getlock),
        Just(Response::Link),
        qid().prop_map(|qid| Response::Mkdir { qid }),
        Just(Response::Renameat),
        Just(Response::Unlinkat),
        statfs().prop_map(Response::Statfs),
        data().prop_map(|data| Response::Read { data }),
        any::<u32>().prop_map(|count| Response::Write { count }),
        Just(Response::Clunk),
        Just(Response::Remove),
    ]
}

/// A frame with a valid header and a known message type but an arbitrary body.
fn random_frame() -> impl Strategy<Value = Vec<u8>> {
    let known: Vec<u8> = (0..=255u8)
        .filter(|t| ninep::request_name(*t).is_some() || ninep::response_name(*t).is_some())
        .collect();
    (
        proptest::sample::select(known),
        any::<u16>(),
        vec(any::<u8>(), 0..200),
    )
        .prop_map(|(ty, tag, body)| {
            let mut frame = Vec::with_capacity(7 + body.len());
            frame.extend_from_slice(&((7 + body.len()) as u32).to_le_bytes());
            frame.push(ty);
            frame.extend_from_slice(&tag.to_le_bytes());
            frame.extend_from_slice(&body);
            frame
        })
}

/// Decodes `frame` both ways; whatever decodes must re-encode to the very same bytes.
fn check_canonical(frame: &Bytes) -> Result<(), TestCaseError> {
    if let Ok((tag, r)) = Request::decode(frame) {
        let mut again = Vec::new();
        r.encode(tag, &mut again).unwrap();
        prop_assert_eq!(&again[..], &frame[..]);
    }
    if let Ok((tag, r)) = Response::decode(frame) {
        let mut again = Vec::new();
        r.encode(tag, &mut again).unwrap();
        prop_assert_eq!(&again[..], &frame[..]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn requests_round_trip(r in request(), tag in any::<u16>()) {
        let mut buf = Vec::new();
        r.encode(tag, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), r.encoded_len().unwrap());
        prop_assert_eq!(Request::decode(&Bytes::from(buf)), Ok((tag, r)));
    }

    #[test]
    fn responses_round_trip(r in response(), tag in any::<u16>()) {
        let mut buf = BytesMut::new();
        r.encode(tag, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), r.encoded_len().unwrap());
        prop_assert_eq!(Response::decode(&buf.freeze()), Ok((tag, r)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        check_canonical(&Bytes::from(bytes))?;
    }

    #[test]
    fn arbitrary_bodies_never_panic_and_decode_canonically(frame in random_frame()) {
        check_canonical(&Bytes::from(frame))?;
    }

    #[test]
    fn mutated_frames_never_panic(r in request(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut buf = Vec::new();
        r.encode(1, &mut buf).unwrap();
        let i = at.index(buf.len());
        buf[i] = byte;
        check_canonical(&Bytes::from(buf))?;
    }

    #[test]
    fn dirent_writer_packs_whole_entries_within_budget(
        entries in vec((qid(), any::<u64>(), any::<u8>(), name()), 0..40),
        budget in 0usize..600,
    ) {
        let mut buf = Vec::new();
        let mut w = DirentWriter::new(&mut buf, budget);
        let mut accepted = 0;
        for (q, off, ty, n) in &entries {
            if !w.push(q, *off, *ty, n).unwrap() {
                break;
            }
            accepted += 1;
        }
        let written = w.written();
        prop_assert!(written <= budget);
        prop_assert_eq!(written, buf.len());
        let parsed: Vec<_> = DirentIter::new(Bytes::from(buf)).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(parsed.len(), accepted);
        for (d, (q, off, ty, n)) in parsed.iter().zip(&entries) {
            prop_assert_eq!((&d.qid, d.offset, d.ty, &d.name), (q, *off, *ty, n));
        }
        if let Some((_, _, _, next)) = entries.get(accepted) {
            prop_assert!(written + ninep::dirent_len(next) > budget, "a fitting entry was refused");
        }
    }

    #[test]
    fn frame_codec_reassembles_any_split(
        msgs in vec(response(), 1..12),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let start = stream.len();
            m.encode(i as u16, &mut stream).unwrap();
            expected.push(stream[start..].to_vec());
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut codec = FrameCodec::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut fed = 0;
        for cut in cuts {
            buf.extend_from_slice(&stream[fed..cut]);
            fed = cut;
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                got.push(frame.to_vec());
            }
        }
        prop_assert_eq!(got, expected);
        prop_assert!(buf.is_empty());
    }
}

#[test]
fn rreaddir_type_is_the_one_built_by_readdir_frame() {
    // Keeps the fast-path builder tied to the message number.
    let mut buf = Vec::new();
    let frame = ninep::ReaddirFrame::begin(&mut buf, 5, 100);
    assert_eq!(frame.finish(), 11);
    assert_eq!(buf[4], msg::RREADDIR);
    assert_eq!(
        Response::decode(&Bytes::from(buf)),
        Ok((5, Response::Readdir { data: Bytes::new() }))
    );
}
