//! Random request sequences from a client that tries everything: escaping names, fids in any
//! state, odd flags and offsets, large writes, flushes and garbage frames.
//!
//! Whatever it sends, every request is answered (no hang), with its own reply or Rlerror; the
//! connection closes only after a frame that is not a request; no reply carries bytes from
//! outside the export; nothing outside the export changes; and once every connection is gone
//! the server holds no more descriptors than before. Alone in its test binary, so that the
//! process's descriptors are the servers'.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ninep::{Client, ClientError, GetLock, Lock, Request, Response, SetAttr, Timespec};
use proptest::prelude::*;

/// One thing the client does.
#[derive(Debug, Clone)]
enum Step {
    Request(Request),
    /// A frame with a consistent size but a random type and body.
    Garbage {
        ty: u8,
        body: Vec<u8>,
    },
    /// An escape attempt: walk `names` from `from` to fid 7, then open, read and list it.
    Probe {
        from: u32,
        names: Vec<Bytes>,
    },
}

/// Walks that would leave the export if `..` or a symlink were followed out of it.
fn escape() -> impl Strategy<Value = Step> {
    let ups = proptest::collection::vec(Just(b("..")), 1..4);
    let dest = prop_oneof![
        Just(vec![b("outside"), b("secret")]),
        Just(vec![b("outside")]),
        Just(vec![b("etc"), b("passwd")]),
        Just(vec![]),
    ];
    let through_link = Just(vec![b("up")]);
    let names = prop_oneof![
        (ups, dest).prop_map(|(mut ups, dest)| {
            ups.extend(dest);
            ups
        }),
        through_link,
    ];
    (prop_oneof![Just(0u32), Just(3), Just(4), Just(2)], names)
        .prop_map(|(from, names)| Step::Probe { from, names })
}

fn name() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(b("..")),
        Just(b(".")),
        Just(b("")),
        Just(b("/")),
        Just(b("/etc")),
        Just(b("../outside")),
        Just(b("a/b")),
        Just(b("a")),
        Just(b("b")),
        Just(b("d")),
        Just(b("l")),
        Just(b("up")),
        Just(Bytes::from(vec![b'n'; 300])),
        proptest::collection::vec(any::<u8>(), 1..6).prop_map(Bytes::from),
    ]
}

/// Mostly the fids the prelude of [`run`] set up (1 is an open file), or free ones (6, 7).
fn fid() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(1u32), 8 => 0u32..8, 1 => any::<u32>()]
}

fn flags() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(0o100 | 2),
        Just(0o1000 | 2),
        Just(0o2000 | 1),
        Just(0o40000),
        Just(0o200000),
        any::<u32>(),
    ]
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..3_000_000, 1 => any::<u64>()]
}

fn lock() -> impl Strategy<Value = Lock> {
    (0u8..4, 0u32..3, offset(), offset(), 0u32..3).prop_map(
        |(ty, flags, start, length, proc_id)| Lock {
            ty,
            flags,
            start,
            length,
            proc_id,
            client_id: b("hostile"),
        },
    )
}

fn request() -> impl Strategy<Value = Request> {
    let walk = (fid(), fid(), proptest::collection::vec(name(), 0..4)).prop_map(
        |(fid, newfid, wnames)| Request::Walk {
            fid,
            newfid,
            wnames,
        },
    );
    let lopen = (fid(), flags()).prop_map(|(fid, flags)| Request::Lopen { fid, flags });
    let lcreate = (fid(), name(), flags(), any::<u32>()).prop_map(|(fid, name, flags, mode)| {
        Request::Lcreate {
            fid,
            name,
            flags,
            mode,
            gid: 0,
        }
    });
    let target = prop_oneof![
        Just(b("/etc/passwd")),
        Just(b("../outside/secret")),
        Just(b("../../..")),
        Just(b("a")),
    ];
    let symlink = (fid(), name(), target).prop_map(|(fid, name, symtgt)| Request::Symlink {
        fid,
        name,
        symtgt,
        gid: 0,
    });
    let mknod = (
        fid(),
        name(),
        prop_oneof![Just(0o10600u32), Just(0o20600), any::<u32>()],
    )
        .prop_map(|(dfid, name, mode)| Request::Mknod {
            dfid,
            name,
            mode,
            major: 1,
            minor: 3,
            gid: 0,
        });
    let rename =
        (fid(), fid(), name()).prop_map(|(fid, dfid, name)| Request::Rename { fid, dfid, name });
    let setattr = (fid(), any::<u32>(), any::<u32>(), 0u64..1_000_000).prop_map(
        |(fid, valid, mode, size)| Request::Setattr {
            fid,
            attr: SetAttr {
                // Never ownership: the tests may run as root, and chown is not under test here.
                valid: valid & !0x6,
                mode,
                uid: 0,
                gid: 0,
                size,
                atime: Timespec { sec: 1, nsec: 2 },
                mtime: Timespec { sec: 3, nsec: 4 },
            },
        },
    );
    let xattr_name = prop_oneof![
        Just(b("user.a")),
        Just(b("")),
        Just(b("trusted.x")),
        Just(b("system.posix_acl_access")),
        name(),
    ];
    let xattrwalk = (fid(), fid(), xattr_name.clone())
        .prop_map(|(fid, newfid, name)| Request::Xattrwalk { fid, newfid, name });
    let xattrcreate =
        (fid(), xattr_name, 0u64..100_000, 0u32..4).prop_map(|(fid, name, attr_size, flags)| {
            Request::Xattrcreate {
                fid,
                name,
                attr_size,
                flags,
            }
        });
    let getlock = (fid(), lock()).prop_map(|(fid, l)| Request::Getlock {
        fid,
        lock: GetLock {
            ty: l.ty,
            start: l.start,
            length: l.length,
            proc_id: l.proc_id,
            client_id: l.client_id,
        },
    });
    // The payload is one repeated byte: it costs nothing to generate at any length.
    let write =
        (fid(), offset(), 0usize..300_000, any::<u8>()).prop_map(|(fid, offset, len, byte)| {
            Request::Write {
                fid,
                offset,
                data: Bytes::from(vec![byte; len]),
            }
        });
    // Tattach's aname is a path: try to start a tree outside the export.
    let aname = prop_oneof![
        Just(b("")),
        Just(b("/")),
        Just(b("../outside")),
        Just(b("d/../../outside")),
        Just(b("up")),
        Just(b("up/x")),
        Just(b("/etc")),
        name(),
    ];
    let attach = (fid(), aname).prop_map(|(fid, aname)| Request::Attach {
        fid,
        afid: ninep::NOFID,
        uname: b("hostile"),
        aname,
        n_uname: u32::MAX,
    });
    prop_oneof![
        1 => attach,
        6 => walk,
        4 => lopen,
        3 => lcreate,
        1 => symlink,
        1 => mknod,
        1 => rename,
        1 => fid().prop_map(|fid| Request::Readlink { fid }),
        2 => fid().prop_map(|fid| Request::Getattr { fid, request_mask: 0x3fff }),
        1 => setattr,
        1 => xattrwalk,
        1 => xattrcreate,
        2 => (fid(), offset(), 0u32..80_000).prop_map(|(fid, offset, count)| Request::Readdir { fid, offset, count }),
        1 => fid().prop_map(|fid| Request::Fsync { fid, datasync: 0 }),
        1 => (fid(), lock()).prop_map(|(fid, lock)| Request::Lock { fid, lock }),
        1 => getlock,
        1 => (fid(), fid(), name()).prop_map(|(dfid, fid, name)| Request::Link { dfid, fid, name }),
        2 => (fid(), name(), any::<u32>()).prop_map(|(dfid, name, mode)| Request::Mkdir { dfid, name, mode, gid: 0 }),
        1 => (fid(), name(), fid(), name()).prop_map(|(olddirfid, oldname, newdirfid, newname)| {
            Request::Renameat { olddirfid, oldname, newdirfid, newname }
        }),
        2 => (fid(), name(), prop_oneof![Just(0u32), Just(0x200), any::<u32>()])
            .prop_map(|(dirfid, name, flags)| Request::Unlinkat { dirfid, name, flags }),
        1 => fid().prop_map(|fid| Request::Statfs { fid }),
        4 => (fid(), offset(), 0u32..(MSIZE + 10)).prop_map(|(fid, offset, count)| Request::Read { fid, offset, count }),
        4 => write,
        2 => fid().prop_map(|fid| Request::Clunk { fid }),
        1 => fid().prop_map(|fid| Request::Remove { fid }),
        1 => any::<u16>().prop_map(|oldtag| Request::Flush { oldtag }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => request().prop_map(Step::Request),
        3 => escape(),
        1 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(ty, body)| Step::Garbage { ty, body }),
    ]
}

/// Names and contents of everything below `dir` (symlinks as their targets).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let key = path.display().to_string();
        if meta.is_dir() {
            out.insert(key, Vec::new());
            out.extend(snapshot(&path));
        } else if meta.file_type().is_symlink() {
            out.insert(
                key,
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            );
        } else {
            out.insert(key, std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs `steps` against a fresh export (over TCP, where Twrite payloads are spliced, when
/// `tcp`; else over a unix socket).
async fn run(steps: Vec<Step>, tcp: bool) -> Result<(), TestCaseError> {
    let h = if tcp {
        Harness::tcp().await
    } else {
        Harness::start().await
    };
    std::fs::write(h.export().join("a"), b"inside").unwrap();
    std::fs::create_dir(h.export().join("d")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", h.export().join("up")).unwrap();
    let outside = snapshot(&h.outside());
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let first_line = passwd.split(|&c| c == b'\n').next().unwrap().to_vec();
    let c: Client = h.client().await;
    // Fids in every state: 1 an open file, 2 an open directory, 3 the root again, 4 a
    // directory not opened, 5 a symlink that points out of the export.
    for (fid, path, open) in [
        (1, "a", Some(2)),
        (2, "d", Some(0o200000)),
        (3, "", None),
        (4, "d", None),
        (5, "up", None),
    ] {
        let names: Vec<&str> = path.split('/').filter(|n| !n.is_empty()).collect();
        c.walk(0, fid, &names).await.unwrap();
        if let Some(flags) = open {
            c.lopen(fid, flags).await.unwrap();
        }
    }
    let mut garbage_sent = false;
    let leaked = |data: &[u8]| {
        contains(data, b"SECRET")
            || contains(data, &first_line)
            || contains(data, b"outside")
            || contains(data, b"passwd")
    };
    for step in steps {
        let (result, expected) = match step {
            Step::Probe { from, names } => {
                let probe = async {
                    let names: Vec<&[u8]> = names.iter().map(|n| &n[..]).collect();
                    if c.walk(from, 7, &names).await.is_err() {
                        return Ok(());
                    }
                    let dir = c.lopen(7, 0o200000).await.is_ok();
                    if dir || c.lopen(7, 0).await.is_ok() {
                        let reply = c
                            .call(&Request::Readdir {
                                fid: 7,
                                offset: 0,
                                count: 65536,
                            })
                            .await;
                        if let Ok(Response::Readdir { data }) = reply {
                            prop_assert!(!leaked(&data), "a listing from outside the export");
                        }
                        if let Ok(data) = c.read(7, 0, 65536).await {
                            prop_assert!(!leaked(&data), "a read from outside the export");
                        }
                    }
                    let _ = c.clunk(7).await;
                    Ok(())
                };
                tokio::time::timeout(Duration::from_secs(20), probe)
                    .await
                    .map_err(|_| TestCaseError::fail("a probe hung"))??;
                continue;
            }
            Step::Request(req) => {
                let expected = req.ty() + 1;
                let call = tokio::time::timeout(Duration::from_secs(20), c.call(&req));
                let result = call
                    .await
                    .map_err(|_| TestCaseError::fail(format!("no reply to {req:?}")))?;
                (result, Some(expected))
            }
            Step::Garbage { ty, body } => {
                garbage_sent = true;
                let mut frame = ((7 + body.len()) as u32).to_le_bytes().to_vec();
                frame.extend_from_slice(&[ty, 0, 0]);
                frame.extend_from_slice(&body);
                let call = tokio::time::timeout(Duration::from_secs(20), c.call_raw(frame));
                let result = call
                    .await
                    .map_err(|_| TestCaseError::fail("no reply to garbage"))?;
                (result, None)
            }
        };
        match result {
            Ok(Response::Read { data }) => {
                prop_assert!(
                    !contains(&data, b"SECRET"),
                    "a read returned the outside file"
                );
                prop_assert!(!contains(&data, &first_line), "a read returned /etc/passwd");
            }
            Ok(Response::Lerror { .. }) | Err(ClientError::Lerror(_)) => {}
            Ok(other) => {
                if let Some(ty) = expected {
                    prop_assert_eq!(other.ty(), ty, "wrong reply kind: {:?}", other);
                }
            }
            Err(ClientError::Flushed) => {}
            Err(e) => {
                prop_assert!(
                    garbage_sent,
                    "the connection failed after valid requests only: {e}"
                );
                break;
            }
        }
    }
    drop(c);
    prop_assert_eq!(
        snapshot(&h.outside()),
        outside,
        "something outside the export changed"
    );
    prop_assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
    let mut top: Vec<_> = std::fs::read_dir(h.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    prop_assert_eq!(top, ["export", "outside", "sock"]);
    Ok(())
}

/// The descriptor count once closed connections' server sides have closed too.
fn settled_fd_count(rt: &tokio::runtime::Runtime) -> usize {
    let mut last = count_fds();
    loop {
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
        let now = count_fds();
        if now == last {
            return now;
        }
        last = now;
    }
}

#[test]
fn a_hostile_client_gets_answers_and_nothing_else() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Warm up the runtime and the blocking pool before counting descriptors.
    rt.block_on(run(Vec::new(), true)).unwrap();
    let before = settled_fd_count(&rt);
    // PROPTEST_CASES runs more (or fewer) sequences than the 128 CI runs.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    let config = ProptestConfig {
        cases: cases.unwrap_or(128),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in proptest::collection::vec(step(), 1..60), tcp in any::<bool>())| {
        rt.block_on(run(steps, tcp))?;
    });
    assert_eq!(settled_fd_count(&rt), before, "descriptors left open");
}
