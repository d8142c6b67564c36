//! One sample of every message, shared by the test files.

#![allow(dead_code, reason = "each test file uses a different part")]

use bytes::Bytes;
use ninep::consts::{getattr, lock_type, open_flags, setattr};
use ninep::{Attr, GetLock, Lock, Qid, Request, Response, SetAttr, StatFs, Timespec};

pub fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

pub fn qid(path: u64) -> Qid {
    Qid {
        ty: 0x80,
        version: 7,
        path,
    }
}

pub fn ts(sec: u64, nsec: u64) -> Timespec {
    Timespec { sec, nsec }
}

/// Every T-message of 9P2000.L, with distinctive field values.
pub fn sample_requests() -> Vec<Request> {
    vec![
        Request::Version {
            msize: 1 << 20,
            version: b(b"9P2000.L"),
        },
        Request::Auth {
            afid: 3,
            uname: b(b"root"),
            aname: b(b"/srv"),
            n_uname: 0,
        },
        Request::Attach {
            fid: 1,
            afid: ninep::NOFID,
            uname: b(b"alice"),
            aname: b(b""),
            n_uname: 1000,
        },
        Request::Flush { oldtag: 0x1234 },
        Request::Walk {
            fid: 1,
            newfid: 2,
            wnames: vec![b(b"usr"), b(b"\xffnot-utf8"), b(b"")],
        },
        Request::Walk {
            fid: 1,
            newfid: 1,
            wnames: vec![],
        },
        Request::Lopen {
            fid: 2,
            flags: open_flags::RDWR | open_flags::TRUNC,
        },
        Request::Lcreate {
            fid: 2,
            name: b(b"new.txt"),
            flags: open_flags::CREATE | open_flags::WRONLY,
            mode: 0o644,
            gid: 100,
        },
        Request::Symlink {
            fid: 2,
            name: b(b"link"),
            symtgt: b(b"../target"),
            gid: 100,
        },
        Request::Mknod {
            dfid: 2,
            name: b(b"fifo"),
            mode: 0o10644,
            major: 8,
            minor: 1,
            gid: 100,
        },
        Request::Rename {
            fid: 4,
            dfid: 2,
            name: b(b"renamed"),
        },
        Request::Readlink { fid: 5 },
        Request::Getattr {
            fid: 5,
            request_mask: getattr::ALL,
        },
        Request::Setattr {
            fid: 5,
            attr: SetAttr {
                valid: setattr::MODE | setattr::SIZE | setattr::ATIME | setattr::ATIME_SET,
                mode: 0o600,
                uid: 1,
                gid: 2,
                size: 1 << 40,
                atime: ts(1_700_000_000, 123),
                mtime: ts(1_700_000_001, 999_999_999),
            },
        },
        Request::Xattrwalk {
            fid: 5,
            newfid: 6,
            name: b(b"user.comment"),
        },
        Request::Xattrcreate {
            fid: 6,
            name: b(b"system.posix_acl_access"),
            attr_size: 44,
            flags: 1,
        },
        Request::Readdir {
            fid: 2,
            offset: u64::MAX,
            count: 8168,
        },
        Request::Fsync {
            fid: 2,
            datasync: 1,
        },
        Request::Lock {
            fid: 7,
            lock: Lock {
                ty: lock_type::WRLCK,
                flags: 1,
                start: 10,
                length: 0,
                proc_id: 4242,
                client_id: b(b"host"),
            },
        },
        Request::Getlock {
            fid: 7,
            lock: GetLock {
                ty: lock_type::RDLCK,
                start: 0,
                length: 100,
                proc_id: 1,
                client_id: b(b"other"),
            },
        },
        Request::Link {
            dfid: 2,
            fid: 7,
            name: b(b"hard"),
        },
        Request::Mkdir {
            dfid: 2,
            name: b(b"dir"),
            mode: 0o755,
            gid: 0,
        },
        Request::Renameat {
            olddirfid: 2,
            oldname: b(b"a"),
            newdirfid: 3,
            newname: b(b"b"),
        },
        Request::Unlinkat {
            dirfid: 2,
            name: b(b"dir"),
            flags: ninep::consts::AT_REMOVEDIR,
        },
        Request::Statfs { fid: 1 },
        Request::Read {
            fid: 7,
            offset: 4096,
            count: 65512,
        },
        Request::Write {
            fid: 7,
            offset: 1,
            data: b(b"hello, world"),
        },
        Request::Write {
            fid: 7,
            offset: 0,
            data: b(b""),
        },
        Request::Clunk { fid: 7 },
        Request::Remove { fid: 8 },
    ]
}

/// Every R-message of 9P2000.L, with distinctive field values.
pub fn sample_responses() -> Vec<Response> {
    vec![
        Response::Lerror { ecode: 2 },
        Response::Version {
            msize: 8192,
            version: b(b"9P2000.L"),
        },
        Response::Auth { aqid: qid(1) },
        Response::Attach { qid: qid(2) },
        Response::Flush,
        Response::Walk {
            wqids: vec![qid(3), qid(4)],
        },
        Response::Walk { wqids: vec![] },
        Response::Lopen {
            qid: qid(5),
            iounit: 8168,
        },
        Response::Lcreate {
            qid: qid(6),
            iounit: 0,
        },
        Response::Symlink { qid: qid(7) },
        Response::Mknod { qid: qid(8) },
        Response::Rename,
        Response::Readlink {
            target: b(b"/etc/\x80passwd"),
        },
        Response::Getattr(Attr {
            valid: getattr::BASIC,
            qid: qid(9),
            mode: 0o100644,
            uid: 1000,
            gid: 1000,
            nlink: 1,
            rdev: 0,
            size: 12345,
            blksize: 4096,
            blocks: 8,
            atime: ts(1, 2),
            mtime: ts(3, 4),
            ctime: ts(5, 6),
            btime: ts(7, 8),
            gen_: 9,
            data_version: 10,
        }),
        Response::Setattr,
        Response::Xattrwalk { size: 44 },
        Response::Xattrcreate,
        Response::Readdir {
            data: b(b"opaque entries"),
        },
        Response::Fsync,
        Response::Lock { status: 1 },
        Response::Getlock(GetLock {
            ty: lock_type::UNLCK,
            start: 1,
            length: 2,
            proc_id: 3,
            client_id: b(b"h"),
        }),
        Response::Link,
        Response::Mkdir { qid: qid(10) },
        Response::Renameat,
        Response::Unlinkat,
        Response::Statfs(StatFs {
            ty: ninep::consts::V9FS_MAGIC,
            bsize: 4096,
            blocks: 1,
            bfree: 2,
            bavail: 3,
            files: 4,
            ffree: 5,
            fsid: 6,
            namelen: 255,
        }),
        Response::Read {
            data: b(b"file contents"),
        },
        Response::Write { count: 12 },
        Response::Clunk,
        Response::Remove,
    ]
}

pub fn encode_request(tag: u16, r: &Request) -> Bytes {
    let mut buf = Vec::new();
    r.encode(tag, &mut buf).expect("sample encodes");
    Bytes::from(buf)
}

pub fn encode_response(tag: u16, r: &Response) -> Bytes {
    let mut buf = Vec::new();
    r.encode(tag, &mut buf).expect("sample encodes");
    Bytes::from(buf)
}
