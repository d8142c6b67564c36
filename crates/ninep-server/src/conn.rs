//! Serving one connection: reading frames, running requests concurrently, writing replies.

use std::sync::Arc;

use bytes::Bytes;
use ninep::{DecodeError, FrameReader, Header, Request, Response};
use rustix::io::Errno;
use tokio::io::{AsyncRead, AsyncWriteExt, BufWriter};
use tokio::sync::{Semaphore, mpsc};

use crate::inflight::InFlight;
use crate::server::{MIN_MSIZE, Server};
use crate::session::{Session, encode};
pub use crate::sink::ReplySink;
use crate::sink::{Outgoing, write_reply};

/// Requests one connection may have running at once; the reader stops reading beyond this,
/// so a client that sends without reading replies cannot make the server grow without bound.
const MAX_IN_FLIGHT: usize = 256;

/// Serves one client until it disconnects or sends something unframeable.
///
/// When this returns, every request of the connection has been cancelled and every fid
/// dropped, which closes their descriptors and releases their locks.
pub async fn serve<R, W>(server: Arc<Server>, reader: R, writer: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: ReplySink,
{
    let session = Arc::new(Session::new(server.clone(), writer.can_splice()));
    let inflight = Arc::new(InFlight::default());
    let (tx, rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_loop(writer, rx));
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut frames = FrameReader::new(reader, server.max_msize());

    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let frame = match frames.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("closing the connection: {e}");
                break;
            }
        };
        let (tag, request) = match Request::decode_limited(&frame, session.msize()) {
            Ok(decoded) => decoded,
            Err(e) => {
                let Some(tag) = Header::peek_tag(&frame) else {
                    break;
                };
                tracing::warn!(tag, "refusing a request: {e}");
                let errno = if matches!(e, DecodeError::UnknownType(_)) {
                    Errno::OPNOTSUPP
                } else {
                    Errno::INVAL
                };
                let reply = encode(
                    tag,
                    &Response::Lerror {
                        ecode: errno.raw_os_error() as u32,
                    },
                );
                if tx.send(reply.into()).await.is_err() {
                    break;
                }
                continue;
            }
        };
        inflight.wait(tag).await;
        match request {
            Request::Version { msize, version } => {
                inflight.cancel_all().await;
                let reply = version_reply(&session, msize, &version);
                if let Response::Version { msize, .. } = &reply {
                    frames.set_max_size(*msize);
                }
                if tx.send(encode(tag, &reply).into()).await.is_err() {
                    break;
                }
            }
            Request::Flush { oldtag } => {
                let (inflight2, tx) = (inflight.clone(), tx.clone());
                inflight.spawn(tag, async move {
                    if oldtag != tag {
                        inflight2.cancel(oldtag).await;
                    }
                    let _ = tx.send(encode(tag, &Response::Flush).into()).await;
                    drop(permit);
                });
            }
            request if runs_inline(&request) => {
                // Metadata requests never wait on anything: answering them right here saves two
                // task hand-offs per round trip. A Tflush can never find them running.
                let reply = session.handle(tag, request).await;
                drop(permit);
                if tx.send(reply).await.is_err() {
                    break;
                }
            }
            request => {
                let (session, tx) = (session.clone(), tx.clone());
                inflight.spawn(tag, async move {
                    let reply = session.handle(tag, request).await;
                    let _ = tx.send(reply).await;
                    drop(permit);
                });
            }
        }
    }
    inflight.cancel_all().await;
    session.clear();
    drop(tx);
    let _ = writer_task.await;
}

/// Requests whose handling never awaits (no data I/O, no lock wait): they run in the reader
/// task. Data I/O, fsync, readdir and Tlock run as their own tasks, which Tflush can cancel.
fn runs_inline(request: &Request) -> bool {
    !matches!(
        request,
        Request::Read { .. }
            | Request::Write { .. }
            | Request::Readdir { .. }
            | Request::Fsync { .. }
            | Request::Lock { .. }
    )
}

/// Tversion: negotiates msize and resets the session (every fid goes).
fn version_reply(session: &Session, client_msize: u32, version: &Bytes) -> Response {
    let max = session_max(session);
    let msize = client_msize.min(max);
    if &version[..] != ninep::consts::VERSION_9P2000_L.as_bytes() || msize < MIN_MSIZE {
        tracing::info!(client_msize, version = %String::from_utf8_lossy(version), "unsupported Tversion");
        session.clear();
        return Response::Version {
            msize,
            version: Bytes::from_static(b"unknown"),
        };
    }
    session.reset(msize);
    tracing::debug!(msize, "session started");
    Response::Version {
        msize,
        version: Bytes::from_static(ninep::consts::VERSION_9P2000_L.as_bytes()),
    }
}

fn session_max(session: &Session) -> u32 {
    session.server_max_msize()
}

/// Writes replies in order, batching the ones that are ready into one flush.
async fn write_loop<W: ReplySink>(writer: W, mut rx: mpsc::Receiver<Outgoing>) {
    let mut out = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(reply) = rx.recv().await {
        if write_reply(&mut out, reply).await.is_err() {
            return;
        }
        while let Ok(reply) = rx.try_recv() {
            if write_reply(&mut out, reply).await.is_err() {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.shutdown().await;
}
