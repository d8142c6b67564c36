//! Transports: TCP, a unix socket, or the standard input/output pair (`trans=fd`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::busy_poll::BusyPoll;
use crate::conn;
use crate::server::Server;
use crate::stdio::{self, Stdio};

/// Where the server takes connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `tcp:HOST:PORT`
    Tcp(String),
    /// `unix:PATH`
    Unix(PathBuf),
    /// `fd`: one client on standard input and output.
    Fd,
}

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
        } else {
            Err(format!("`{s}` is not tcp:HOST:PORT, unix:PATH or fd"))
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
    /// Standard input and output, opened when serving starts.
    Fd,
}

impl Bound {
    /// The directory holding the unix socket's file, which the server must still reach to
    /// remove the file when it stops.
    pub fn socket_dir(&self) -> Option<PathBuf> {
        match self {
            Bound::Unix(_, file) => Some(match file.path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            }),
            Bound::Tcp(_) | Bound::Fd => None,
        }
    }
}

/// Binds `listen` (for `fd`, nothing is opened yet). Needs no async runtime.
pub fn bind(listen: &Listen) -> Result<Bound> {
    match listen {
        Listen::Tcp(addr) => {
            let listener = std::net::TcpListener::bind(addr.as_str())
                .with_context(|| format!("cannot listen on {addr}"))?;
            Ok(Bound::Tcp(listener))
        }
        Listen::Unix(path) => {
            let (listener, file) = bind_unix_std(path)?;
            Ok(Bound::Unix(listener, file))
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
                tokio::spawn(serve_tcp(server.clone(), stream, peer.to_string()));
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
                tracing::info!("client connected");
                tokio::spawn(serve_unix(server.clone(), stream));
            }
        }
        Bound::Fd => {
            let (stdio, _flags) = stdio::open().context("cannot use standard input and output")?;
            tracing::info!(
                "serving {} on standard input/output ({})",
                server.export_path_hint(),
                stdio.describe()
            );
            match stdio {
                Stdio::Unix(stream) => serve_unix(server, stream).await,
                Stdio::Tcp(stream) => serve_tcp(server, stream, "standard input".into()).await,
                Stdio::Pipes(input, output) => conn::serve(server, input, output).await,
                Stdio::Blocking => {
                    conn::serve(server, tokio::io::stdin(), tokio::io::stdout()).await;
                }
            }
            Ok(())
        }
    }
}

/// Serves one TCP connection until the client leaves.
async fn serve_tcp(server: Arc<Server>, stream: tokio::net::TcpStream, peer: String) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let r = BusyPoll::new(r, server.busy_poll());
    conn::serve(server, r, w).await;
    tracing::info!(%peer, "client disconnected");
}

/// Serves one unix socket connection until the client leaves.
async fn serve_unix(server: Arc<Server>, stream: tokio::net::UnixStream) {
    widen_send_buffer(&stream, server.max_msize());
    let (r, w) = stream.into_split();
    let r = BusyPoll::new(r, server.busy_poll());
    conn::serve(server, r, w).await;
    tracing::info!("client disconnected");
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

/// Binds a unix socket. A socket file left by a server that is gone is replaced; a socket
/// another server still listens on, and any other kind of file, are refused.
///
/// The returned [`SocketFile`] removes the socket's file when dropped.
pub fn bind_unix(path: &Path) -> Result<(tokio::net::UnixListener, SocketFile)> {
    let (listener, file) = bind_unix_std(path)?;
    listener.set_nonblocking(true)?;
    Ok((tokio::net::UnixListener::from_std(listener)?, file))
}

/// [`bind_unix`] without an async runtime: a blocking listener.
pub fn bind_unix_std(path: &Path) -> Result<(std::os::unix::net::UnixListener, SocketFile)> {
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
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    let meta = std::fs::symlink_metadata(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        id: (meta.dev(), meta.ino()),
    };
    Ok((listener, file))
}

/// The file a bound unix socket made: removed on drop, unless something else has taken its
/// name since.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.id);
        if ours && let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}
