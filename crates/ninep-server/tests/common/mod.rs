//! An in-process server on a unix socket (and, for some tests, on loopback TCP too), and
//! helpers to talk to it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ninep::{Client, ClientError, FrameReader, NOFID, Request, Response};
use ninep_server::busy_poll::BusyPoll;
use ninep_server::{Config, Peer, Server, conn, listen};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

pub const MSIZE: u32 = 1 << 20;
pub const O_RDONLY: u32 = 0;
pub const O_WRONLY: u32 = 1;
pub const O_RDWR: u32 = 2;

/// A temporary tree: `export/` is served, `outside/` holds what must stay unreachable.
pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub socket: PathBuf,
    pub server: Arc<Server>,
    task: tokio::task::JoinHandle<()>,
    /// The loopback TCP address the server also listens on, and that [`Harness::client`]
    /// connects to, when the harness was made by [`Harness::tcp`].
    tcp: Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
        if let Some((_, task)) = &self.tcp {
            task.abort();
        }
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut Config)) -> Harness {
        Self::in_dir(tempfile::tempdir().unwrap(), tweak).await
    }

    /// A harness whose export lives in memory (tmpfs), where reads run inline.
    pub async fn in_memory() -> Harness {
        let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
        Self::in_dir(tmp, |_| {}).await
    }

    /// A harness in memory whose clients connect over loopback TCP (where Twrite payloads are
    /// spliced).
    pub async fn tcp() -> Harness {
        let mut h = Self::in_memory().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = h.server.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                stream.set_nodelay(true).unwrap();
                let (r, w) = stream.into_split();
                let r = BusyPoll::new(r, s.busy_poll());
                // These tests are about the data path: their TCP client is trusted as an
                // authenticated one would be (who TCP clients act as: tests/trust.rs).
                tokio::spawn(conn::serve(s.clone(), Peer::Trusted, r, w));
            }
        });
        h.tcp = Some((addr, task));
        h
    }

    async fn in_dir(tmp: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Harness {
        rustix::process::umask(rustix::fs::Mode::empty());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("NINEPD_TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .with_test_writer()
            .try_init();
        std::fs::create_dir(tmp.path().join("export")).unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), b"SECRET").unwrap();
        let mut config = Config::new(tmp.path().join("export"));
        // The tests act as root on files root made (root squash: tests/trust.rs).
        config.root_squash = false;
        tweak(&mut config);
        let server = Server::new(&config).unwrap();
        let socket = tmp.path().join("sock");
        let (listener, socket_file) = listen::bind_unix(&socket).unwrap();
        let s = server.clone();
        let task = tokio::spawn(async move {
            let _socket_file = socket_file;
            while let Ok((stream, _)) = listener.accept().await {
                let peer = Peer::of_unix_socket(&stream);
                tokio::spawn(listen::serve_unix(s.clone(), stream, peer));
            }
        });
        Harness {
            tmp,
            socket,
            server,
            task,
            tcp: None,
        }
    }

    /// The loopback TCP address of a harness made by [`Harness::tcp`].
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.as_ref().map(|(addr, _)| *addr)
    }

    pub fn export(&self) -> PathBuf {
        self.tmp.path().join("export")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    /// A client that has negotiated the version and attached fid 0 to the root.
    pub async fn client(&self) -> Client {
        let c = match &self.tcp {
            Some((addr, _)) => Client::connect_tcp(addr).await.unwrap(),
            None => Client::connect_unix(&self.socket).await.unwrap(),
        };
        c.version(MSIZE, "9P2000.L").await.unwrap();
        c.attach(0, NOFID, b"root", b"", 0).await.unwrap();
        c
    }

    pub async fn raw(&self) -> Raw {
        let (r, w) = UnixStream::connect(&self.socket)
            .await
            .unwrap()
            .into_split();
        let mut raw = Raw {
            r: FrameReader::new(r, MSIZE),
            w,
        };
        raw.send(
            0xffff,
            &Request::Version {
                msize: MSIZE,
                version: Bytes::from_static(b"9P2000.L"),
            },
        )
        .await;
        assert!(matches!(
            raw.recv().await,
            (0xffff, Response::Version { .. })
        ));
        raw
    }
}

/// A connection driven frame by frame, to check exactly which replies come and in what order.
pub struct Raw {
    pub r: FrameReader<OwnedReadHalf>,
    pub w: OwnedWriteHalf,
}

impl Raw {
    pub async fn send(&mut self, tag: u16, req: &Request) {
        let mut frame = Vec::new();
        req.encode(tag, &mut frame).unwrap();
        self.w.write_all(&frame).await.unwrap();
    }

    pub async fn recv(&mut self) -> (u16, Response) {
        let frame = self
            .r
            .next_frame()
            .await
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
            .expect("a reply");
        Response::decode(&frame).unwrap()
    }

    pub async fn call(&mut self, tag: u16, req: &Request) -> Response {
        self.send(tag, req).await;
        let (t, resp) = self.recv().await;
        assert_eq!(t, tag);
        resp
    }
}

/// The errno of an Rlerror, or a panic for any other outcome.
pub fn errno<T: std::fmt::Debug>(r: Result<T, ClientError>) -> i32 {
    match r {
        Err(ClientError::Lerror(e)) => e as i32,
        other => panic!("expected Rlerror, got {other:?}"),
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Walks `path` (split on `/`) from the root fid 0 to a new fid.
pub async fn walk_to(c: &Client, path: &str) -> Result<u32, ClientError> {
    let fid = c.new_fid() + 1000;
    let names: Vec<&str> = if path.is_empty() {
        vec![]
    } else {
        path.split('/').collect()
    };
    c.walk(0, fid, &names).await?;
    Ok(fid)
}

/// Creates `name` in the root with `data` through the client, returning the open fid.
pub async fn create_file(c: &Client, name: &str, data: &[u8]) -> u32 {
    let fid = walk_to(c, "").await.unwrap();
    c.lcreate(fid, name.as_bytes(), O_RDWR, 0o644, 0)
        .await
        .unwrap();
    if !data.is_empty() {
        assert_eq!(
            c.write(fid, 0, Bytes::copy_from_slice(data)).await.unwrap() as usize,
            data.len()
        );
    }
    fid
}

pub fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A file as `/proc/locks` names it: its device's major and minor numbers and its inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedFile {
    major: u32,
    minor: u32,
    inode: u64,
}

pub fn locked_file(path: &Path) -> LockedFile {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    LockedFile {
        major: rustix::fs::major(meta.dev()),
        minor: rustix::fs::minor(meta.dev()),
        inode: meta.ino(),
    }
}

/// OFD locks held on `file`, from /proc/locks, whose lines name a file `MAJ:MIN:INODE` (device
/// numbers in hex): the device counts, as an inode number alone may be another filesystem's file.
pub fn count_ofd_locks_on(file: LockedFile) -> usize {
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    locks
        .lines()
        .filter(|l| l.contains("OFDLCK"))
        .filter(|l| l.split_whitespace().nth(5).and_then(parse_locked_file) == Some(file))
        .count()
}

fn parse_locked_file(field: &str) -> Option<LockedFile> {
    let mut parts = field.split(':');
    let major = u32::from_str_radix(parts.next()?, 16).ok()?;
    let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
    let inode = parts.next()?.parse().ok()?;
    Some(LockedFile {
        major,
        minor,
        inode,
    })
}

/// The OFD locks on `file` once a lock released by closing its descriptor is gone (within
/// 2 s). A close only releases the lock when no other copy of the descriptor is left, and a
/// test in this process that spawns a program copies every descriptor into the child until it
/// calls `exec`.
pub fn ofd_locks_after_close(file: LockedFile) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let n = count_ofd_locks_on(file);
        if n == 0 || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}
