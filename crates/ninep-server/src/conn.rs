//! Serving one connection: reading frames, running requests concurrently, writing replies.

use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use ninep::{DecodeError, FrameReader, Header, Incoming, Request, Response};
use rustix::io::Errno;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::budget::{self, Budget};
use crate::inflight::InFlight;
use crate::pipe::WritePayload;
use crate::server::{MIN_MSIZE, Server};
use crate::session::{Session, encode};
pub use crate::sink::ReplySink;
use crate::sink::{Outgoing, write_reply};
pub use crate::source::RequestSource;
use crate::trust::Peer;

/// Requests one connection may have running at once; the reader stops reading beyond this,
/// so a client that sends without reading replies cannot make the server grow without bound.
const MAX_IN_FLIGHT: usize = 256;

/// A reply on its way to the writer, with the share of the connection's byte budget that its
/// request holds until the reply is written out.
#[derive(Debug)]
struct Queued {
    reply: Outgoing,
    budget: Option<OwnedSemaphorePermit>,
}

impl Queued {
    fn new(reply: impl Into<Outgoing>, budget: Option<OwnedSemaphorePermit>) -> Queued {
        Queued {
            reply: reply.into(),
            budget,
        }
    }
}

/// Serves one client until it disconnects or sends something unframeable. `peer` is what the
/// transport (or an authentication) tells of the client, and bounds who it may act as.
///
/// When this returns, every request of the connection has been cancelled and every fid
/// dropped, which closes their descriptors and releases their locks.
pub async fn serve<R, W>(server: Arc<Server>, peer: Peer, reader: R, writer: W)
where
    R: RequestSource,
    W: ReplySink,
{
    serve_from(server, peer, None, reader, writer).await;
}

/// [`serve`] for a client at `addr` (TCP or vsock), which exports may admit by it.
pub async fn serve_from<R, W>(
    server: Arc<Server>,
    peer: Peer,
    addr: Option<crate::exports::Remote>,
    reader: R,
    writer: W,
) where
    R: RequestSource,
    W: ReplySink,
{
    let splice_writes = reader.can_splice();
    let session = Arc::new(
        Session::new(server.clone(), peer, writer.can_splice(), splice_writes).with_addr(addr),
    );
    let inflight = Arc::new(InFlight::default());
    let (tx, rx) = mpsc::channel::<Queued>(MAX_IN_FLIGHT);
    let writer_task = tokio::spawn(write_loop(writer, rx));
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let budget = Budget::new(server.max_msize());
    let mut frames = FrameReader::new(reader, server.max_msize());

    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let incoming = if splice_writes {
            frames.next_incoming().await
        } else {
            frames.next_frame().await.map(|f| f.map(Incoming::Frame))
        };
        let frame = match incoming {
            Ok(Some(Incoming::Frame(frame))) => frame,
            Ok(Some(Incoming::PartialWrite {
                header,
                received,
                rest,
            })) => {
                // The payload still in the stream is taken only once it fits in the budget.
                let frame_bytes = budget.take(header.count as usize).await;
                let data =
                    match take_write_payload(&session, frames.get_mut(), received, rest).await {
                        Ok(data) => data,
                        Err(e) => {
                            tracing::warn!("closing the connection inside a Twrite: {e}");
                            break;
                        }
                    };
                inflight.wait(header.tag).await;
                let session = session.clone();
                let reply = async move { (session.handle_write(header, data).await, None) };
                spawn_request(&inflight, header.tag, &tx, (permit, frame_bytes), reply);
                continue;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("closing the connection: {e}");
                break;
            }
        };
        let (tag, request) = match Request::decode_limited(&frame, session.msize()) {
            Ok(decoded) => decoded,
            Err(e) => {
                let Some(reply) = refusal(&frame, e) else {
                    break;
                };
                if tx.send(Queued::new(reply, None)).await.is_err() {
                    break;
                }
                continue;
            }
        };
        // A large frame (a Twrite) is counted before the next one is read.
        let frame_bytes = budget.take(frame.len()).await;
        inflight.wait(tag).await;
        match request {
            Request::Version { msize, version } => {
                inflight.cancel_all().await;
                let reply = version_reply(&session, msize, &version);
                if server.trace_protocol() {
                    let request = Request::Version { msize, version };
                    tracing::debug!(tag, "<- {}", crate::trace::request(&request));
                    tracing::debug!(tag, "-> {}", crate::trace::response(&reply));
                }
                if let Response::Version { msize, .. } = &reply {
                    frames.set_max_size(*msize);
                }
                if tx
                    .send(Queued::new(encode(tag, &reply), None))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Request::Flush { oldtag } => {
                if server.trace_protocol() {
                    tracing::debug!(tag, "<- Flush {{ oldtag: {oldtag} }}");
                }
                let (inflight2, tx) = (inflight.clone(), tx.clone());
                let trace = server.trace_protocol();
                inflight.spawn(tag, async move {
                    if oldtag != tag {
                        inflight2.cancel(oldtag).await;
                    }
                    if trace {
                        tracing::debug!(tag, "-> Flush");
                    }
                    let _ = tx
                        .send(Queued::new(encode(tag, &Response::Flush), None))
                        .await;
                    drop(permit);
                });
            }
            request if runs_inline(&request) => {
                // Metadata requests never wait on anything: answering them right here saves two
                // task hand-offs per round trip. A Tflush can never find them running.
                let reply = session.handle(tag, request).await;
                drop(permit);
                if tx.send(Queued::new(reply, frame_bytes)).await.is_err() {
                    break;
                }
            }
            request => {
                let (session, budget) = (session.clone(), budget.clone());
                let reply_data = budget::reply_data(&request, session.msize());
                let reply = async move {
                    // A large reply waits for room here, not in the reader: a Tflush or a small
                    // request behind it is still read.
                    let reply_bytes = budget.take(reply_data).await;
                    (session.handle(tag, request).await, reply_bytes)
                };
                spawn_request(&inflight, tag, &tx, (permit, frame_bytes), reply);
            }
        }
    }
    inflight.cancel_all().await;
    session.clear();
    drop(tx);
    let _ = writer_task.await;
}

/// The Rlerror for a frame that does not decode as a request (`EOPNOTSUPP` for an unknown or
/// 9P2000-only type, `EINVAL` for a malformed body), or `None` when the frame is too short to
/// carry a tag and the connection must close.
fn refusal(frame: &[u8], e: DecodeError) -> Option<Vec<u8>> {
    let tag = Header::peek_tag(frame)?;
    tracing::warn!(tag, "refusing a request: {e}");
    let errno = if matches!(e, DecodeError::UnknownType(_)) {
        Errno::OPNOTSUPP
    } else {
        Errno::INVAL
    };
    let ecode = errno.raw_os_error() as u32;
    Some(encode(tag, &Response::Lerror { ecode }))
}

/// Runs a request as a task of its own, which a Tflush of `tag` can cancel; its reply goes to
/// the writer with the request's share of the byte budget (its frame's, and its reply's),
/// and its request `permit` back once the reply is queued.
fn spawn_request(
    inflight: &Arc<InFlight>,
    tag: u16,
    tx: &mpsc::Sender<Queued>,
    (permit, frame_bytes): (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
    reply: impl Future<Output = (Outgoing, Option<OwnedSemaphorePermit>)> + Send + 'static,
) {
    let tx = tx.clone();
    inflight.spawn(tag, async move {
        let (reply, reply_bytes) = reply.await;
        let bytes = budget::join(frame_bytes, reply_bytes);
        let _ = tx.send(Queued::new(reply, bytes)).await;
        drop(permit);
    });
}

/// Takes the `rest` of a Twrite's payload out of the stream, after the `received` part: into
/// a pipe when one is free, by copy otherwise.
async fn take_write_payload<R: RequestSource>(
    session: &Session,
    source: &mut R,
    received: Bytes,
    rest: usize,
) -> io::Result<WritePayload> {
    if let Some(mut piped) = session.pipe_for_write(rest) {
        let mut spill = Vec::new();
        source.splice_into(rest, &mut piped, &mut spill).await?;
        let head = if spill.is_empty() {
            received
        } else {
            [&received[..], &spill].concat().into()
        };
        return Ok(WritePayload::new(head, Some(piped)));
    }
    let mut all = Vec::with_capacity(received.len() + rest);
    all.extend_from_slice(&received);
    let want = all.len() + rest;
    (&mut *source)
        .take(rest as u64)
        .read_to_end(&mut all)
        .await?;
    if all.len() != want {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(WritePayload::new(all.into(), None))
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
    let max = session.server_max_msize();
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

/// Writes replies in order, batching the ones that are ready into one flush. A reply's share
/// of the byte budget goes back once it is in the connection's buffer or the socket.
async fn write_loop<W: ReplySink>(writer: W, mut rx: mpsc::Receiver<Queued>) {
    let mut out = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(first) = rx.recv().await {
        let mut ready = Some(first);
        while let Some(queued) = ready {
            if write_reply(&mut out, queued.reply).await.is_err() {
                return;
            }
            drop(queued.budget);
            ready = rx.try_recv().ok();
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.shutdown().await;
}
