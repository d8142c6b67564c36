//! Transports: TCP, a unix socket, vsock (virtual machines and their host), or the standard
//! input/output pair (`trans=fd`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::busy_poll::BusyPoll;
use crate::conn;
use crate::exports::Remote;
use crate::server::Server;
use crate::stdio::{self, Stdio};
use crate::trust::Peer;

/// Where the server takes connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `tcp:HOST:PORT`
    Tcp(String),
    /// `unix:PATH`
    Unix(PathBuf),
    /// `vsock:PORT` (any CID of this machine) or `vsock:CID:PORT`.
    Vsock { cid: u32, port: u32 },
    /// `fd`: one client on standard input and output.
    Fd,
}

/// `VMADDR_CID_ANY`: a vsock listener on every CID the machine has.
pub const VSOCK_CID_ANY: u32 = u32::MAX;

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "fd" {
            Ok(Listen::Fd)
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            Ok(Listen::Tcp(addr.to_string()))
        } else if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            Ok(Listen::Unix(PathBuf::from(path)))
        } else if let Some(addr) = s.strip_prefix("vsock:") {
            parse_vsock(addr)
        } else {
            Err(format!(
                "`{s}` is not tcp:HOST:PORT, unix:PATH, vsock:[CID:]PORT or fd"
            ))
        }
    }
}

/// `PORT` or `CID:PORT`, both decimal numbers.
fn parse_vsock(addr: &str) -> Result<Listen, String> {
    let number = |what: &str, s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("vsock:{addr}: the {what} `{s}` is not a number below 2^32"))
    };
    let (cid, port) = match addr.split_once(':') {
        None => (VSOCK_CID_ANY, number("port", addr)?),
        Some((cid, port)) => (number("CID", cid)?, number("port", port)?),
    };
    if port == u32::MAX {
        return Err(format!(
            "vsock:{addr}: port {port} is VMADDR_PORT_ANY, not a port"
        ));
    }
    Ok(Listen::Vsock { cid, port })
}

impl Listen {
    /// The default listener: a unix socket only the server's user can connect to, in the
    /// user's runtime directory: `/run/ninepd.sock` for root, `$XDG_RUNTIME_DIR/ninepd.sock`
    /// (or `/run/user/UID/ninepd.sock`) for other users. A TCP listener, even on loopback,
    /// would let every local user act as the server's user.
    pub fn default_socket() -> Result<Listen> {
        let uid = rustix::process::geteuid();
        if uid.is_root() {
            return Ok(Listen::Unix(PathBuf::from("/run/ninepd.sock")));
        }
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return Ok(Listen::Unix(PathBuf::from(dir).join("ninepd.sock")));
        }
        let dir = PathBuf::from(format!("/run/user/{}", uid.as_raw()));
        if dir.is_dir() {
            return Ok(Listen::Unix(dir.join("ninepd.sock")));
        }
        bail!("no runtime directory for the default socket: set XDG_RUNTIME_DIR or pass --listen")
    }
}

/// Who may reach a listener beyond the server's own user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// The unix socket file's permission bits (default: 0600, or 0660 with a group).
    pub socket_mode: Option<u32>,
    /// The unix socket file's group.
    pub socket_group: Option<u32>,
    /// Allow a TCP address other than loopback.
    pub allow_remote: bool,
}

impl ListenOptions {
    /// The unix socket file's permission bits.
    pub fn mode(&self) -> u32 {
        match (self.socket_mode, self.socket_group) {
            (Some(mode), _) => mode & 0o777,
            (None, Some(_)) => 0o660,
            (None, None) => 0o600,
        }
    }
}

/// A listener bound and ready to serve: what [`bind`] makes before the server closes its
/// sandbox (after which it could no longer create a socket file or bind a privileged port).
#[derive(Debug)]
pub enum Bound {
    Tcp(std::net::TcpListener),
    /// The listener and its socket's file, removed when the listener is dropped.
    Unix(std::os::unix::net::UnixListener, SocketFile),
    Vsock(vsock::VsockListener),
    /// Standard input and output, opened when serving starts.
    Fd,
}

impl Bound {
    /// The directory holding the unix socket's file, which the server must still reach to
    /// remove the file when it stops.
    pub fn socket_dir(&self) -> Option<PathBuf> {
        match self {
            // A socket systemd made is systemd's to remove.
            Bound::Unix(_, file) if file.id.is_none() => None,
            Bound::Unix(_, file) => Some(match file.path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            }),
            Bound::Tcp(_) | Bound::Vsock(_) | Bound::Fd => None,
        }
    }
}

/// Binds `listen` with the default [`ListenOptions`] (a private socket file, loopback TCP
/// only); for `fd`, nothing is opened yet. Needs no async runtime.
pub fn bind(listen: &Listen) -> Result<Bound> {
    bind_with(listen, &ListenOptions::default())
}

/// Binds `listen` as `options` say.
pub fn bind_with(listen: &Listen, options: &ListenOptions) -> Result<Bound> {
    match listen {
        Listen::Tcp(addr) => {
            if !options.allow_remote {
                refuse_remote(addr)?;
            }
            let listener = std::net::TcpListener::bind(addr.as_str())
                .with_context(|| format!("cannot listen on {addr}"))?;
            Ok(Bound::Tcp(listener))
        }
        Listen::Unix(path) => {
            let (listener, file) = bind_unix_std_with(path, options)?;
            Ok(Bound::Unix(listener, file))
        }
        Listen::Vsock { cid, port } => {
            let listener = vsock::VsockListener::bind_with_cid_port(*cid, *port)
                .with_context(|| format!("cannot listen on {}", vsock_name(*cid, *port)))?;
            Ok(Bound::Vsock(listener))
        }
        Listen::Fd => Ok(Bound::Fd),
    }
}

/// Serves clients on `listen` until the process is stopped (or, for `fd`, the client leaves).
///
/// Dropping the returned future stops taking clients and, for a unix socket, removes the
/// socket's file; connections already accepted are tasks of their own and end with the runtime.
pub async fn run(server: Arc<Server>, listen: &Listen) -> Result<()> {
    serve(server, bind(listen)?).await
}

/// Serves clients on a bound listener, as [`run`] does.
pub async fn serve(server: Arc<Server>, bound: Bound) -> Result<()> {
    match bound {
        Bound::Tcp(listener) => {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tracing::info!(
                "serving {} on tcp:{}",
                server.export_path_hint(),
                listener.local_addr()?
            );
            loop {
                let Some((stream, peer)) = accepted(listener.accept().await).await else {
                    continue;
                };
                tracing::info!(%peer, "client connected");
                tokio::spawn(serve_tcp_from(
                    server.clone(),
                    stream,
                    Peer::Anonymous,
                    Some(peer.ip()),
                    peer.to_string(),
                ));
            }
        }
        Bound::Unix(listener, socket_file) => {
            listener.set_nonblocking(true)?;
            let listener = tokio::net::UnixListener::from_std(listener)?;
            tracing::info!(
                "serving {} on unix:{}",
                server.export_path_hint(),
                socket_file.path.display()
            );
            loop {
                let Some((stream, _)) = accepted(listener.accept().await).await else {
                    continue;
                };
                let peer = Peer::of_unix_socket(&stream);
                tracing::info!(?peer, "client connected");
                tokio::spawn(serve_unix(server.clone(), stream, peer));
            }
        }
        Bound::Vsock(listener) => {
            let (cid, port) = listener
                .local_addr()
                .map_or((VSOCK_CID_ANY, 0), |a| (a.cid(), a.port()));
            // Registers the socket with the runtime; that can fail only when the kernel is
            // out of memory for the registration (and then panics).
            let listener = tokio_vsock::VsockListener::from(std::os::fd::OwnedFd::from(listener));
            tracing::info!(
                "serving {} on {}",
                server.export_path_hint(),
                vsock_name(cid, port)
            );
            loop {
                let Some((stream, peer)) = accepted(listener.accept().await).await else {
                    continue;
                };
                let (cid, peer) = (peer.cid(), vsock_name(peer.cid(), peer.port()));
                tracing::info!(%peer, "client connected");
                // Like TCP, vsock tells nothing of the user at the other end (a virtual
                // machine's, or the host's): the peer is anonymous, known by its context id.
                tokio::spawn(serve_vsock(
                    server.clone(),
                    stream,
                    Peer::Anonymous,
                    cid,
                    peer,
                ));
            }
        }
        Bound::Fd => {
            let (stdio, _flags) = stdio::open().context("cannot use standard input and output")?;
            tracing::info!(
                "serving {} on standard input/output ({})",
                server.export_path_hint(),
                stdio.describe()
            );
            // Standard input and output are trusted like the process that handed them over,
            // which could act as the server's user itself.
            let peer = Peer::Trusted;
            match stdio {
                Stdio::Unix(stream) => serve_unix(server, stream, peer).await,
                Stdio::Tcp(stream) => {
                    serve_tcp(server, stream, peer, "standard input".into()).await;
                }
                Stdio::Pipes(input, output) => conn::serve(server, peer, input, output).await,
                Stdio::Blocking => {
                    conn::serve(server, peer, tokio::io::stdin(), tokio::io::stdout()).await;
                }
            }
            Ok(())
        }
    }
}

/// Serves one TCP connection from `peer` until the client leaves; `addr` names it in logs.
pub async fn serve_tcp(
    server: Arc<Server>,
    stream: tokio::net::TcpStream,
    peer: Peer,
    addr: String,
) {
    serve_tcp_from(server, stream, peer, None, addr).await;
}

/// [`serve_tcp`] for a client at `ip`, which exports may admit by address.
pub async fn serve_tcp_from(
    server: Arc<Server>,
    stream: tokio::net::TcpStream,
    peer: Peer,
    ip: Option<std::net::IpAddr>,
    addr: String,
) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let r = BusyPoll::new(r, server.busy_poll());
    conn::serve_from(server, peer, ip.map(Remote::Ip), r, w).await;
    tracing::info!(peer = %addr, "client disconnected");
}

/// Serves one unix socket connection from `peer` until the client leaves.
pub async fn serve_unix(server: Arc<Server>, stream: tokio::net::UnixStream, peer: Peer) {
    widen_send_buffer(&stream, server.max_msize());
    let (r, w) = stream.into_split();
    let r = BusyPoll::new(r, server.busy_poll());
    conn::serve(server, peer, r, w).await;
    tracing::info!("client disconnected");
}

/// Serves one vsock connection from `peer`, at context id `cid`, until the client leaves; `addr`
/// names it in logs.
///
/// tokio has no vsock stream type. Its `UnixStream` is a readiness wrapper around a stream
/// socket's descriptor that reads, writes and shuts down with the calls every stream family
/// has, so a vsock connection is served through it, with a unix connection's busy-polling and
/// `splice(2)` of read payloads into the socket (pipe → socket splicing works for every
/// socket family). Nothing family-specific (`SO_PEERCRED`, the peer's address) is asked of it.
pub async fn serve_vsock(
    server: Arc<Server>,
    stream: tokio_vsock::VsockStream,
    peer: Peer,
    cid: u32,
    addr: String,
) {
    let stream = match tokio_stream_of(stream) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(peer = %addr, "cannot serve the connection: {e}");
            return;
        }
    };
    let (r, w) = stream.into_split();
    let r = BusyPoll::new(r, server.busy_poll());
    conn::serve_from(server, peer, Some(Remote::Vsock(cid)), r, w).await;
    tracing::info!(peer = %addr, "client disconnected");
}

/// The runtime's stream over a connected vsock socket (see [`serve_vsock`]): the descriptor
/// leaves tokio-vsock's registration (it stays non-blocking) for the `UnixStream`'s.
fn tokio_stream_of(stream: tokio_vsock::VsockStream) -> std::io::Result<tokio::net::UnixStream> {
    let fd = std::os::fd::OwnedFd::from(stream);
    tokio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))
}

/// `vsock:CID:PORT`, or `vsock:PORT` for any CID, as the log and errors name it.
fn vsock_name(cid: u32, port: u32) -> String {
    if cid == VSOCK_CID_ANY {
        format!("vsock:{port}")
    } else {
        format!("vsock:{cid}:{port}")
    }
}

/// Refuses a TCP address that is not loopback: unauthenticated clients from anywhere the
/// address can be reached would act as the server's user (or the squash identity).
fn refuse_remote(addr: &str) -> Result<()> {
    use std::net::ToSocketAddrs;
    let addrs = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr}"))?;
    for a in addrs {
        if !a.ip().is_loopback() {
            bail!(
                "tcp:{addr} is reachable from other hosts ({}), whose clients would be \
                 served without authentication: pass --allow-remote to listen there anyway",
                a.ip()
            );
        }
    }
    Ok(())
}

/// A failed accept (out of descriptors, a connection reset before it was accepted) is logged
/// and the server keeps listening; a short pause lets descriptors be freed.
async fn accepted<T>(result: std::io::Result<T>) -> Option<T> {
    match result {
        Ok(conn) => Some(conn),
        Err(e) => {
            tracing::warn!("accept failed: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            None
        }
    }
}

/// Lets two whole replies of `msize` queue in a unix socket.
///
/// A unix stream socket queues at most its send buffer (208 KiB by default) towards the
/// reader, so a 1 MiB Rread crossed in five writer/reader hand-offs; with room for two replies
/// the writer seldom waits (measured 5-8 % more read throughput at msize 1 MiB). The kernel
/// caps the size at `net.core.wmem_max`; TCP is left alone, since a fixed buffer there would
/// switch off its own autotuning.
pub fn widen_send_buffer(stream: &tokio::net::UnixStream, msize: u32) {
    let want = 2 * msize as usize;
    if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(stream, want) {
        tracing::debug!("cannot widen the socket's send buffer: {e}");
    }
}

/// Binds a unix socket whose file only the server's user may connect to (mode 0600). A
/// socket file left by a server that is gone is replaced; a socket another server still
/// listens on, and any other kind of file, are refused.
///
/// The returned [`SocketFile`] removes the socket's file when dropped.
pub fn bind_unix(path: &Path) -> Result<(tokio::net::UnixListener, SocketFile)> {
    let (listener, file) = bind_unix_std_with(path, &ListenOptions::default())?;
    listener.set_nonblocking(true)?;
    Ok((tokio::net::UnixListener::from_std(listener)?, file))
}

/// [`bind_unix`] without an async runtime (a blocking listener), with the socket file's mode
/// and group from `options`.
///
/// The file's mode is set before the socket listens, so no client can connect while it has
/// the mode `bind` gave it (which depends on the process's umask).
pub fn bind_unix_std_with(
    path: &Path,
    options: &ListenOptions,
) -> Result<(std::os::unix::net::UnixListener, SocketFile)> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!("another server is listening on {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .with_context(|| format!("cannot remove the stale {}", path.display()))?;
            }
            Err(e) => bail!("cannot tell whether {} is in use: {e}", path.display()),
        }
    }
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let cannot = || format!("cannot listen on {}", path.display());
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .with_context(cannot)?;
    let addr = SocketAddrUnix::new(path).with_context(cannot)?;
    rustix::net::bind(&socket, &addr).with_context(cannot)?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        id: Some((meta.dev(), meta.ino())),
    };
    let mode = options.mode();
    rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if let Some(gid) = options.socket_group {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(gid)))
            .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
    }
    rustix::net::listen(&socket, 1024).with_context(cannot)?;
    Ok((std::os::unix::net::UnixListener::from(socket), file))
}

/// The file a bound unix socket made: removed on drop, unless something else has taken its
/// name since.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// The file's device and inode; `None` for a socket the server did not make.
    id: Option<(u64, u64)>,
}

impl SocketFile {
    /// The file of a socket someone else made and removes (systemd, for a socket it passed
    /// in): never removed by the server.
    pub fn not_ours(path: PathBuf) -> SocketFile {
        SocketFile { path, id: None }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = self.id.is_some_and(|id| {
            std::fs::symlink_metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == id)
        });
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}
