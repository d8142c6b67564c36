//! MUNGE authentication (`ninepd --auth munge`) against Debian's `munged`, with credentials
//! made by Debian's `munge` client, as diod's clients make them: Tauth, the credential written
//! into the auth fid, Tattach naming it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ninep::{Client, ClientError, NOFID};

const USER: u32 = 4321;
const NOBODY: u32 = 65534;
const O_RDWR: u32 = 2;

fn errno<T: std::fmt::Debug>(r: Result<T, ClientError>) -> u32 {
    match r {
        Err(ClientError::Lerror(e)) => e,
        other => panic!("expected Rlerror, got {other:?}"),
    }
}

/// A `munged` of its own, with a fresh key, stopped on drop.
struct Munged {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for Munged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Munged {
    fn start(dir: &Path) -> Munged {
        std::fs::create_dir(dir).unwrap();
        // Users other than root reach the socket: the directory must be searchable.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.join("key");
        let made = Command::new("mungekey")
            .arg("--create")
            .arg(format!("--keyfile={}", key.display()))
            .status()
            .expect("mungekey runs (apt-get install munge)");
        assert!(made.success());
        let socket = dir.join("sock");
        let child = Command::new("munged")
            .args(["--foreground", "--force"])
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--seed-file={}", dir.join("seed").display()))
            .arg(format!("--log-file={}", dir.join("log").display()))
            .stderr(Stdio::null())
            .spawn()
            .expect("munged runs (apt-get install munge)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "munged did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Munged { child, socket }
    }

    /// A credential encoded by `uid`, as `munge -n` makes it.
    fn credential(&self, uid: u32) -> Vec<u8> {
        let out = Command::new("munge")
            .arg("-n")
            .arg("-S")
            .arg(&self.socket)
            .uid(uid)
            .gid(uid)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    }
}

/// `ninepd` on loopback TCP, stopped on drop.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(export: &Path, args: &[&str]) -> Server {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .arg(export)
        .args(["--listen", "tcp:127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("on tcp:")))
        .expect("ninepd serves")
        .unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let addr = line[line.rfind("tcp:").unwrap() + 4..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    Server { child, addr }
}

async fn connect(server: &Server) -> Client {
    let c = Client::connect_tcp(&server.addr).await.unwrap();
    c.version(1 << 20, "9P2000.L").await.unwrap();
    c
}

/// Tauth for `uid`, then `credential` written into the auth fid.
async fn authenticate(c: &Client, afid: u32, uid: u32, credential: &[u8]) {
    let request = ninep::Request::Auth {
        afid,
        uname: Bytes::new(),
        aname: Bytes::new(),
        n_uname: uid,
    };
    match c.call(&request).await.unwrap() {
        ninep::Response::Auth { aqid } => assert_eq!(aqid.ty, ninep::consts::qid_type::AUTH),
        other => panic!("expected Rauth, got {other:?}"),
    }
    if !credential.is_empty() {
        c.write(afid, 0, Bytes::copy_from_slice(credential))
            .await
            .unwrap();
    }
}

fn have_munge() -> bool {
    let root = rustix::process::geteuid().is_root();
    let installed = Command::new("munged").arg("--version").output().is_ok();
    if !root || !installed {
        eprintln!("skipped: needs root and munge (apt-get install munge)");
    }
    root && installed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_munge_credential_authenticates_its_user_and_nothing_else() {
    if !have_munge() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::set_permissions(&export, std::fs::Permissions::from_mode(0o777)).unwrap();
    let munged = Munged::start(&tmp.path().join("munge"));
    let other_key = Munged::start(&tmp.path().join("other"));
    let sock = munged.socket.display().to_string();
    let server = serve(
        &export,
        &["--multi-user", "--auth", "munge", "--munge-socket", &sock],
    );

    // Authenticated as USER: the attach acts as USER.
    let c = connect(&server).await;
    let cred = munged.credential(USER);
    authenticate(&c, 100, USER, &cred).await;
    c.attach(0, 100, b"", b"", USER).await.unwrap();
    // The client clunks the auth fid afterwards, as mount.diod does.
    c.clunk(100).await.unwrap();
    c.lcreate(0, b"mine", O_RDWR, 0o644, USER).await.unwrap();
    assert_eq!(export.join("mine").metadata().unwrap().uid(), USER);
    // The connection is USER's from now on: more attaches as USER need no credential, a
    // claim of another uid is refused.
    c.attach(1, NOFID, b"", b"", USER).await.unwrap();
    for claim in [0, NOBODY, USER + 1] {
        assert_eq!(
            errno(c.attach(2, NOFID, b"", b"", claim).await),
            libc::EPERM as u32,
            "claiming {claim}"
        );
    }
    // So does a new Tversion (the kernel's, after mount.diod handed it the connection).
    c.version(1 << 20, "9P2000.L").await.unwrap();
    assert_eq!(
        errno(c.attach(2, NOFID, b"", b"", 0).await),
        libc::EPERM as u32
    );
    c.attach(2, NOFID, b"", b"", USER).await.unwrap();

    // The same credential again (a replay): refused by munged.
    let c = connect(&server).await;
    authenticate(&c, 100, USER, &cred).await;
    assert_eq!(
        errno(c.attach(0, 100, b"", b"", USER).await),
        libc::EPERM as u32,
        "replayed"
    );
    // A credential of USER claimed for root, and one for root claimed in the attach by USER's
    // Tauth: refused.
    authenticate(&c, 101, 0, &munged.credential(USER)).await;
    assert_eq!(
        errno(c.attach(0, 101, b"", b"", 0).await),
        libc::EPERM as u32
    );
    authenticate(&c, 102, USER, &munged.credential(USER)).await;
    assert_eq!(
        errno(c.attach(0, 102, b"", b"", 0).await),
        libc::EPERM as u32
    );
    // Another key, no credential, garbage: refused.
    authenticate(&c, 103, USER, &other_key.credential(USER)).await;
    assert_eq!(
        errno(c.attach(0, 103, b"", b"", USER).await),
        libc::EPERM as u32,
        "another key"
    );
    authenticate(&c, 104, USER, b"").await;
    assert_eq!(
        errno(c.attach(0, 104, b"", b"", USER).await),
        libc::EPERM as u32,
        "no credential"
    );
    authenticate(&c, 105, USER, b"MUNGE:garbage:").await;
    assert_eq!(
        errno(c.attach(0, 105, b"", b"", USER).await),
        libc::EPERM as u32
    );
    // With authentication on, a TCP client that has not authenticated is refused, whoever it
    // claims to be.
    for claim in [USER, NOBODY, 0] {
        assert_eq!(
            errno(c.attach(0, NOFID, b"", b"", claim).await),
            libc::EPERM as u32,
            "unauthenticated, claiming {claim}"
        );
    }

    // Root authenticated may act as anyone.
    let c = connect(&server).await;
    authenticate(&c, 100, 0, &munged.credential(0)).await;
    c.attach(0, 100, b"", b"", 0).await.unwrap();
    c.attach(1, NOFID, b"", b"", USER + 7).await.unwrap();
    c.lcreate(1, b"theirs", O_RDWR, 0o644, USER + 7)
        .await
        .unwrap();
    assert_eq!(export.join("theirs").metadata().unwrap().uid(), USER + 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_tauth_says_none_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(tmp.path(), &[]);
    let c = connect(&server).await;
    let request = ninep::Request::Auth {
        afid: 1,
        uname: Bytes::new(),
        aname: Bytes::new(),
        n_uname: 0,
    };
    // ENOENT: what diod's clients take for "authentication not required".
    assert!(matches!(
        c.call(&request).await.unwrap(),
        ninep::Response::Lerror { ecode } if ecode == libc::ENOENT as u32
    ));
    // An attach naming an afid is refused.
    assert_eq!(errno(c.attach(0, 1, b"", b"", 0).await), libc::EPERM as u32);
}
