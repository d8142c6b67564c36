//! Who a client may act as: socket permissions, peer credentials, TCP squashing and root
//! squash, through the `ninepd` binary as it is deployed (as root, since that is where a
//! client could gain something). A non-root peer is a thread of this test that switched its
//! own credentials (the raw per-thread syscalls) before connecting: `SO_PEERCRED` and the
//! socket file's permission check see that thread's identity.

use std::io::BufRead;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ninep::{Client, ClientError, NOFID};

const NOBODY: u32 = 65534;
const O_RDWR: u32 = 2;
/// Tsetattr's `valid` bits.
const SET_MODE: u32 = 0x1;
const SET_UID: u32 = 0x2;
const SET_GID: u32 = 0x4;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Stops the server on drop; the log of its start is kept.
struct Server {
    child: std::process::Child,
    log: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch tree: an export anyone may write to (so that a refused attack is refused for
/// the identity, not for the directory's mode) and a directory for the socket that anyone
/// may search.
struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let export = tmp.path().join("export");
        std::fs::create_dir(&export).unwrap();
        std::fs::set_permissions(&export, std::fs::Permissions::from_mode(0o777)).unwrap();
        Scratch { tmp }
    }

    fn export(&self) -> PathBuf {
        self.tmp.path().join("export")
    }

    fn socket(&self) -> PathBuf {
        self.tmp.path().join("sock")
    }

    /// Starts `ninepd` on the export with `args`, and waits until its log says it serves.
    fn serve(&self, args: &[&str]) -> Server {
        self.serve_env(args, &[])
    }

    fn serve_env(&self, args: &[&str], env: &[(&str, &Path)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ninepd"))
            .arg(self.export())
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = Vec::new();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let serving = loop {
            let Some(Ok(line)) = lines.next() else {
                break false;
            };
            let done = line.contains("serving");
            log.push(line);
            if done {
                break true;
            }
        };
        // The rest of the log is drained so that the server never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        assert!(serving, "ninepd did not start: {log:?}");
        Server { child, log }
    }
}

impl Server {
    /// The TCP address from the log line that says where the server listens.
    fn tcp_addr(&self) -> String {
        let line = self.log.iter().find(|l| l.contains("on tcp:")).unwrap();
        let at = line.rfind("tcp:").unwrap();
        line[at + 4..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

/// Runs `f` on a thread whose credentials are `uid`/`gid` with `groups`.
fn as_user<T: Send + 'static>(
    uid: u32,
    gid: u32,
    groups: &[u32],
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    use rustix::process::{Gid, Uid};
    let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
    std::thread::spawn(move || {
        rustix::thread::set_thread_groups(&groups).unwrap();
        let gid = Gid::from_raw(gid);
        rustix::thread::set_thread_res_gid(gid, gid, gid).unwrap();
        let uid = Uid::from_raw(uid);
        rustix::thread::set_thread_res_uid(uid, uid, uid).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A unix socket connection made by a thread running as `uid`/`gid`.
fn connect_unix_as(uid: u32, gid: u32, socket: &Path) -> std::io::Result<Client> {
    let socket = socket.to_path_buf();
    let stream = as_user(uid, gid, &[gid], move || {
        std::os::unix::net::UnixStream::connect(socket)
    })?;
    stream.set_nonblocking(true)?;
    Ok(Client::from_stream(tokio::net::UnixStream::from_std(
        stream,
    )?))
}

fn errno<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u32 {
    match r {
        Err(ClientError::Lerror(e)) => e,
        other => panic!("expected Rlerror, got {other:?}"),
    }
}

/// The attack: attach, create `suid` set-uid, fill it, chmod it 04755 and 02755,
/// give it to root. Answers the attach's result; what the rest answers does not matter, what
/// is on disk afterwards does.
async fn setuid_attack(c: &Client, claim: u32) -> Result<(), ClientError> {
    c.version(1 << 20, "9P2000.L").await?;
    c.attach(0, NOFID, b"", b"", claim).await?;
    c.walk(0, 1, &[] as &[&str]).await?;
    let _ = c.lcreate(1, b"suid", O_RDWR, 0o104755, 0).await;
    let _ = c
        .write(1, 0, bytes::Bytes::from_static(b"#!/bin/sh\nid\n"))
        .await;
    for mode in [0o4755, 0o2755, 0o6755] {
        let _ = c
            .setattr(
                1,
                ninep::SetAttr {
                    valid: SET_MODE,
                    mode,
                    ..Default::default()
                },
            )
            .await;
    }
    let _ = c
        .setattr(
            1,
            ninep::SetAttr {
                valid: SET_UID | SET_GID,
                uid: 0,
                gid: 0,
                ..Default::default()
            },
        )
        .await;
    // A file created with group 0 set-gid, and a directory handed to root.
    c.walk(0, 2, &[] as &[&str]).await?;
    let _ = c.lcreate(2, b"sgid", O_RDWR, 0o102755, 0).await;
    let _ = c.mkdir(0, b"dir", 0o2777, 0).await;
    Ok(())
}

/// No file in `export` is set-uid or set-gid for root, and every file belongs to `owner`.
fn assert_nothing_gained(export: &Path, owner: u32) {
    for entry in std::fs::read_dir(export).unwrap() {
        let entry = entry.unwrap();
        let m = entry.metadata().unwrap();
        let name = entry.file_name();
        assert!(
            !(m.mode() & 0o4000 != 0 && m.uid() == 0),
            "{name:?} is set-uid root: {:o}",
            m.mode()
        );
        assert!(
            !(m.mode() & 0o2000 != 0 && m.gid() == 0),
            "{name:?} is set-gid root: {:o}",
            m.mode()
        );
        assert_eq!(m.uid(), owner, "{name:?} belongs to another user");
        assert_ne!(m.gid(), 0, "{name:?} belongs to root's group");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_unix_peer_cannot_make_a_setuid_root_file() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for multi_user in [false, true] {
        let s = Scratch::new();
        let mut args = vec!["--listen", "unix:SOCK", "--socket-mode", "0666"];
        let sock = format!("unix:{}", s.socket().display());
        args[1] = &sock;
        if multi_user {
            args.push("--multi-user");
        }
        let _server = s.serve(&args);
        let c = connect_unix_as(NOBODY, NOBODY, &s.socket()).unwrap();
        setuid_attack(&c, NOBODY).await.unwrap();
        assert_nothing_gained(&s.export(), NOBODY);
        assert!(s.export().join("suid").exists(), "the peer acts as itself");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_root_unix_peer_may_not_claim_another_uid() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new();
    let sock = format!("unix:{}", s.socket().display());
    let _server = s.serve(&["--listen", &sock, "--socket-mode", "0666", "--multi-user"]);
    let c = connect_unix_as(NOBODY, NOBODY, &s.socket()).unwrap();
    c.version(1 << 20, "9P2000.L").await.unwrap();
    for claim in [0, 4321] {
        assert_eq!(
            errno(c.attach(0, NOFID, b"", b"", claim).await),
            libc::EPERM as u32,
            "claiming uid {claim}"
        );
    }
    // Its own uid is fine, and so is naming none (it acts as itself).
    c.attach(0, NOFID, b"", b"", NOBODY).await.unwrap();
    c.attach(1, NOFID, b"nobody", b"", u32::MAX).await.unwrap();
    c.lcreate(1, b"mine", O_RDWR, 0o644, NOBODY).await.unwrap();
    assert_eq!(s.export().join("mine").metadata().unwrap().uid(), NOBODY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_clients_act_as_the_squash_identity() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for multi_user in [false, true] {
        let s = Scratch::new();
        let mut args = vec!["--listen", "tcp:127.0.0.1:0"];
        if multi_user {
            args.push("--multi-user");
        }
        let server = s.serve(&args);
        let addr = server.tcp_addr();
        // Claiming root, from a non-root process and from root itself.
        let stream = as_user(NOBODY, NOBODY, &[], {
            let addr = addr.clone();
            move || std::net::TcpStream::connect(addr)
        })
        .unwrap();
        stream.set_nonblocking(true).unwrap();
        let c = Client::from_stream(tokio::net::TcpStream::from_std(stream).unwrap());
        setuid_attack(&c, 0).await.unwrap();
        assert_nothing_gained(&s.export(), NOBODY);
        assert!(s.export().join("suid").exists());
        let root = Client::connect_tcp(&addr).await.unwrap();
        root.version(1 << 20, "9P2000.L").await.unwrap();
        root.attach(0, NOFID, b"root", b"", 0).await.unwrap();
        root.lcreate(0, b"by-root", O_RDWR, 0o644, 0).await.unwrap();
        assert_eq!(s.export().join("by-root").metadata().unwrap().uid(), NOBODY);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_squashes_to_the_chosen_identity() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new();
    let server = s.serve(&[
        "--listen",
        "tcp:127.0.0.1:0",
        "--squash-uid",
        "4321",
        "--squash-gid",
        "4322",
    ]);
    let c = Client::connect_tcp(server.tcp_addr()).await.unwrap();
    c.version(1 << 20, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"root", b"", 0).await.unwrap();
    c.lcreate(0, b"f", O_RDWR, 0o644, 0).await.unwrap();
    let m = s.export().join("f").metadata().unwrap();
    assert_eq!((m.uid(), m.gid()), (4321, 4322));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_is_squashed_unless_told_otherwise() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for (extra, owner) in [
        (&[][..], NOBODY),
        (&["--multi-user"][..], NOBODY),
        (&["--no-root-squash"][..], 0),
        (&["--multi-user", "--no-root-squash"][..], 0),
    ] {
        let s = Scratch::new();
        let sock = format!("unix:{}", s.socket().display());
        let mut args = vec!["--listen", &sock];
        args.extend_from_slice(extra);
        let _server = s.serve(&args);
        // This test runs as root: a root peer claiming uid 0.
        let c = Client::connect_unix(s.socket()).await.unwrap();
        c.version(1 << 20, "9P2000.L").await.unwrap();
        c.attach(0, NOFID, b"root", b"", 0).await.unwrap();
        c.lcreate(0, b"f", O_RDWR, 0o644, 0).await.unwrap();
        assert_eq!(
            s.export().join("f").metadata().unwrap().uid(),
            owner,
            "with {extra:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squashed_client_cannot_set_file_capabilities() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new();
    let server = s.serve(&["--listen", "tcp:127.0.0.1:0"]);
    let c = Client::connect_tcp(server.tcp_addr()).await.unwrap();
    c.version(1 << 20, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.walk(0, 1, &[] as &[&str]).await.unwrap();
    c.lcreate(1, b"prog", O_RDWR, 0o755, 0).await.unwrap();
    // A version 2 capability set granting cap_setuid (bit 7), permitted and effective.
    let mut cap = vec![0u8; 20];
    cap[0..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
    cap[4..8].copy_from_slice(&(1u32 << 7).to_le_bytes());
    for name in [&b"security.capability"[..], b"trusted.overlay.opaque"] {
        c.walk(0, 2, &["prog"]).await.unwrap();
        let committed = match c.xattrcreate(2, name, cap.len() as u64, 0).await {
            Ok(()) => {
                let _ = c.write(2, 0, bytes::Bytes::from(cap.clone())).await;
                c.clunk(2).await
            }
            Err(e) => {
                c.clunk(2).await.unwrap();
                Err(e)
            }
        };
        assert!(committed.is_err(), "{} set", String::from_utf8_lossy(name));
    }
    let listed = rustix::fs::listxattr(s.export().join("prog"), &mut [0u8; 1024][..]).unwrap();
    assert_eq!(listed, 0, "no xattr on the file");
}

#[test]
fn unix_sockets_are_private_unless_opened_up() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new();
    let sock = format!("unix:{}", s.socket().display());
    {
        let _server = s.serve(&["--listen", &sock]);
        let m = std::fs::symlink_metadata(s.socket()).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
        let refused = connect_unix_as(NOBODY, NOBODY, &s.socket());
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::PermissionDenied)
        );
    }
    {
        // Group access for one group: its members connect, others do not.
        let _server = s.serve(&["--listen", &sock, "--socket-group", "4400"]);
        let m = std::fs::symlink_metadata(s.socket()).unwrap();
        assert_eq!((m.mode() & 0o7777, m.gid()), (0o660, 4400));
        let sock = s.socket();
        let member = as_user(4321, 4321, &[4400], move || {
            std::os::unix::net::UnixStream::connect(sock)
        });
        assert!(member.is_ok(), "{member:?}");
        let outsider = connect_unix_as(4321, 4321, &s.socket());
        assert_eq!(
            outsider.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::PermissionDenied)
        );
    }
    {
        let _server = s.serve(&["--listen", &sock, "--socket-mode", "0606"]);
        let m = std::fs::symlink_metadata(s.socket()).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o606);
    }
}

#[test]
fn the_default_listener_is_a_private_unix_socket_in_the_runtime_directory() {
    use std::os::unix::process::CommandExt;
    if !is_root() {
        eprintln!("skipped: needs root, to run the server as another user");
        return;
    }
    // Another user's server: in its runtime directory. (Root's is /run/ninepd.sock.)
    let s = Scratch::new();
    let runtime = s.tmp.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    rustix::fs::chown(
        &runtime,
        Some(rustix::fs::Uid::from_raw(4321)),
        Some(rustix::fs::Gid::from_raw(4321)),
    )
    .unwrap();
    // The checkout may be out of that user's reach (a clone in a 0700 directory): run a copy.
    let binary = runtime.join("ninepd");
    // Written by `cp`, so that no other test's fork holds it open for writing (ETXTBSY).
    let copied = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_ninepd"))
        .arg(&binary)
        .status()
        .unwrap();
    assert!(copied.success());
    let mut child = Command::new(&binary)
        .arg(s.export())
        .env("XDG_RUNTIME_DIR", &runtime)
        .uid(4321)
        .gid(4321)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = lines.find(|l| l.as_ref().is_ok_and(|l| l.contains("serving")));
    let socket = runtime.join("ninepd.sock");
    let m = std::fs::symlink_metadata(&socket);
    let _ = child.kill();
    let _ = child.wait();
    let serving = serving.expect("the server started").unwrap();
    assert!(
        serving.contains(&format!("unix:{}", socket.display())),
        "{serving}"
    );
    let m = m.unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 4321));
}

#[test]
fn a_non_loopback_tcp_address_needs_allow_remote() {
    let s = Scratch::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .arg(s.export())
        .args(["--listen", "tcp:0.0.0.0:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ninepd serves tcp:0.0.0.0 without --allow-remote");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("--allow-remote"), "{err}");
    let server = s.serve(&["--listen", "tcp:0.0.0.0:0", "--allow-remote"]);
    assert!(server.tcp_addr().starts_with("0.0.0.0:"));
}
