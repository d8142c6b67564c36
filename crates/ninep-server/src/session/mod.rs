//! One connection's fid table and the handling of every request except Tversion and Tflush
//! (which the connection loop handles, since they act on the other requests).
//!
//! [`Session::dispatch`] routes each request to a handler named after its message, in the
//! module for its concern:
//! - `fids`: Tattach, Twalk, Tclunk;
//! - `metadata`: Tgetattr, Tsetattr, Treadlink, Tstatfs;
//! - `open`: Tlopen, Tlcreate;
//! - `entries`: Tsymlink, Tmknod, Tmkdir, Tlink, Trename, Trenameat, Tunlinkat, Tremove;
//! - `xattrs`: Txattrwalk, Txattrcreate;
//! - `data`: Tread, Twrite, Treaddir, Tfsync;
//! - `locks`: Tlock, Tgetlock.

mod auth;
mod data;
mod entries;
mod fids;
mod locks;
mod metadata;
mod open;
mod xattrs;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ninep::{Request, Response, TwriteHeader};
use rustix::io::Errno;

use crate::fid::Fid;
use crate::fs::FsResult;
use crate::pipe::{Payload, PipePool, WritePayload};
use crate::server::Server;
use crate::sink::Outgoing;
use crate::trace;
use crate::trust::Peer;
use crate::unwind::{self, catch_panic};
use data::MIN_SPLICE;

/// The largest number of fids one connection may hold (each holds a descriptor).
const MAX_FIDS: usize = 16 * 1024;

/// The largest payload spliced through one pipe (the default `fs.pipe-max-size`, which an
/// unprivileged server cannot exceed).
const MAX_SPLICE: u32 = 1024 * 1024;

/// What a handler produces: a message to encode, or an already encoded frame (Rread and
/// Rreaddir, whose payload is written straight into the frame).
#[derive(Debug)]
pub enum Reply {
    Msg(Response),
    Frame(Vec<u8>),
    /// An Rread whose payload waits in a pipe.
    Spliced(Outgoing),
}

impl From<Response> for Reply {
    fn from(r: Response) -> Self {
        Reply::Msg(r)
    }
}

/// The per-connection state.
#[derive(Debug)]
pub struct Session {
    server: Arc<Server>,
    /// Who is at the other end, which bounds who its attaches may act as (authentication
    /// may change it).
    peer: Mutex<Peer>,
    fids: Mutex<HashMap<u32, Arc<Fid>>>,
    /// Auth fids (Tauth), apart from the fids that name files.
    afids: Mutex<HashMap<u32, auth::AuthFid>>,
    msize: AtomicU32,
    versioned: AtomicBool,
    /// Pipes for Rread and Twrite payloads, when the connection can splice them.
    pipes: Option<Arc<PipePool>>,
    /// Whether Rread payloads are spliced into the connection.
    splice_reads: bool,
    /// Where the client connects from, for TCP and vsock (exports may admit clients by it).
    addr: Option<crate::exports::Remote>,
}

impl Session {
    /// A session for a new connection. `splice_reads` says whether its replies may carry
    /// payloads in pipes (see [`crate::sink::ReplySink::can_splice`]), `splice_writes`
    /// whether its Twrite payloads may come in pipes
    /// (see [`crate::source::RequestSource::can_splice`]).
    pub fn new(server: Arc<Server>, peer: Peer, splice_reads: bool, splice_writes: bool) -> Self {
        let msize = server.max_msize();
        let pipes =
            (splice_reads || splice_writes).then(|| PipePool::new(msize.min(MAX_SPLICE) as usize));
        Self {
            server,
            peer: Mutex::new(peer),
            fids: Mutex::new(HashMap::new()),
            afids: Mutex::new(HashMap::new()),
            msize: AtomicU32::new(msize),
            versioned: AtomicBool::new(false),
            pipes,
            splice_reads,
            addr: None,
        }
    }

    /// Records where the client connects from (TCP and vsock), which exports may admit by.
    pub fn with_addr(mut self, addr: Option<crate::exports::Remote>) -> Self {
        self.addr = addr;
        self
    }

    /// An empty pipe for the `len` bytes of a Twrite payload still in the stream, when that
    /// is worth a pipe and one is free.
    pub fn pipe_for_write(&self, len: usize) -> Option<Payload> {
        let pool = self.pipes.as_ref().filter(|_| len >= MIN_SPLICE)?;
        pool.take(len)
    }

    pub fn msize(&self) -> u32 {
        self.msize.load(Ordering::Relaxed)
    }

    /// The largest msize this server offers.
    pub fn server_max_msize(&self) -> u32 {
        self.server.max_msize()
    }

    /// Tversion: forgets every fid (releasing what they hold) and starts a new session. Who
    /// the peer was authenticated as stays: a mount helper authenticates, then hands the
    /// connection to the kernel, which starts with Tversion.
    pub fn reset(&self, msize: u32) {
        let old = std::mem::take(&mut *self.table());
        drop(old);
        self.afids().clear();
        self.msize.store(msize, Ordering::Relaxed);
        self.versioned.store(true, Ordering::Relaxed);
    }

    /// Drops every fid (on disconnect).
    pub fn clear(&self) {
        let old = std::mem::take(&mut *self.table());
        drop(old);
    }

    fn table(&self) -> MutexGuard<'_, HashMap<u32, Arc<Fid>>> {
        self.fids.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn afids(&self) -> MutexGuard<'_, HashMap<u32, auth::AuthFid>> {
        self.afids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Who is at the other end, as far as the server knows now.
    fn peer(&self) -> Peer {
        *self.peer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_peer(&self, peer: Peer) {
        *self.peer.lock().unwrap_or_else(|e| e.into_inner()) = peer;
    }

    fn fid(&self, fid: u32) -> FsResult<Arc<Fid>> {
        self.table().get(&fid).cloned().ok_or(Errno::BADF)
    }

    fn insert_new(&self, fid: u32, value: Fid) -> FsResult<()> {
        let mut table = self.table();
        if table.len() >= MAX_FIDS {
            return Err(Errno::MFILE);
        }
        if self.afids().contains_key(&fid) {
            return Err(Errno::BADF);
        }
        match table.entry(fid) {
            Entry::Occupied(_) => Err(Errno::BADF),
            Entry::Vacant(v) => {
                v.insert(Arc::new(value));
                Ok(())
            }
        }
    }

    /// Handles one request and encodes its reply (an Rlerror on failure).
    pub async fn handle(&self, tag: u16, request: Request) -> Outgoing {
        let name = request.name();
        let ty = request.ty();
        if self.server.trace_protocol() {
            tracing::debug!(tag, "<- {}", trace::request(&request));
        }
        self.answer(tag, ty, name, self.dispatch(tag, request))
            .await
    }

    /// Handles a Twrite whose payload came apart from its frame (see
    /// [`ninep::Incoming::PartialWrite`]).
    pub async fn handle_write(&self, header: TwriteHeader, data: WritePayload) -> Outgoing {
        if self.server.trace_protocol() {
            tracing::debug!(
                tag = header.tag,
                "<- Twrite {{ fid: {}, offset: {}, count: {} }}",
                header.fid,
                header.offset,
                header.count
            );
        }
        let work = self.write(header.fid, header.offset, data);
        self.answer(header.tag, ninep::consts::msg::TWRITE, "Twrite", work)
            .await
    }

    /// Runs a request's `work` (unless the session has not started), encodes its reply, and
    /// counts it in the server's statistics under its message type `ty`.
    async fn answer(
        &self,
        tag: u16,
        ty: u8,
        name: &'static str,
        work: impl Future<Output = FsResult<Reply>>,
    ) -> Outgoing {
        let started = std::time::Instant::now();
        let reply = self.run(tag, name, work).await;
        let failed = match &reply {
            Outgoing::Frame(frame) => frame.get(4) == Some(&ninep::consts::msg::RLERROR),
            Outgoing::Spliced { .. } => false,
        };
        self.server.stats().record(ty, started.elapsed(), failed);
        reply
    }

    /// Runs a request's `work` (unless the session has not started) and encodes its reply.
    async fn run(
        &self,
        tag: u16,
        name: &'static str,
        work: impl Future<Output = FsResult<Reply>>,
    ) -> Outgoing {
        let trace = self.server.trace_protocol();
        #[cfg(test)]
        let work = async {
            self.server.fault.inject(name).await;
            work.await
        };
        let result = if self.versioned.load(Ordering::Relaxed) {
            catch_panic(work).await.unwrap_or_else(|panic| {
                tracing::error!(
                    tag,
                    request = name,
                    "request handler panicked, answering EIO: {}",
                    unwind::message(&panic)
                );
                Err(Errno::IO)
            })
        } else {
            Err(Errno::PROTO)
        };
        let reply = match result {
            Ok(Reply::Frame(frame)) => {
                if trace {
                    tracing::debug!(tag, "-> {}", trace::encoded(&frame, frame.len()));
                }
                return frame.into();
            }
            Ok(Reply::Spliced(out)) => {
                if trace && let Outgoing::Spliced { header, .. } = &out {
                    let count = header
                        .get(7..11)
                        .map_or(0, |c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                    tracing::debug!(tag, "-> Rread {{ count: {count} }} (spliced)");
                }
                return out;
            }
            Ok(Reply::Msg(msg)) => msg,
            Err(e) => {
                tracing::debug!(
                    tag,
                    request = name,
                    errno = e.raw_os_error(),
                    "request failed"
                );
                Response::Lerror {
                    ecode: e.raw_os_error() as u32,
                }
            }
        };
        if trace {
            tracing::debug!(tag, "-> {}", trace::response(&reply));
        }
        encode(tag, &reply).into()
    }

    /// Routes a request to its handler. Each handler is named after its message and lives
    /// in the module for its concern.
    async fn dispatch(&self, tag: u16, request: Request) -> FsResult<Reply> {
        match request {
            Request::Auth { afid, n_uname, .. } => self.auth(afid, n_uname),
            Request::Attach {
                fid,
                afid,
                aname,
                n_uname,
                ..
            } => {
                if afid != ninep::NOFID {
                    self.authenticate(afid, n_uname).await?;
                }
                self.attach(fid, &aname, n_uname)
            }
            Request::Walk {
                fid,
                newfid,
                wnames,
            } => self.walk(fid, newfid, &wnames),
            Request::Clunk { fid } if self.clunk_auth(fid) => Ok(Response::Clunk.into()),
            Request::Clunk { fid } => self.clunk(fid),
            Request::Getattr { fid, .. } => self.getattr(fid),
            Request::Setattr { fid, attr } => self.setattr(fid, &attr),
            Request::Readlink { fid } => self.readlink(fid),
            Request::Statfs { fid } => self.statfs(fid),
            Request::Lopen { fid, flags } => self.lopen(fid, flags),
            Request::Lcreate {
                fid,
                name,
                flags,
                mode,
                gid,
            } => self.lcreate(fid, &name, flags, mode, gid),
            Request::Symlink {
                fid,
                name,
                symtgt,
                gid,
            } => self.symlink(fid, &name, &symtgt, gid),
            Request::Mknod {
                dfid,
                name,
                mode,
                major,
                minor,
                gid,
            } => self.mknod(dfid, &name, mode, (major, minor), gid),
            Request::Mkdir {
                dfid,
                name,
                mode,
                gid,
            } => self.mkdir(dfid, &name, mode, gid),
            Request::Link { dfid, fid, name } => self.link(dfid, fid, &name),
            Request::Rename { fid, dfid, name } => self.rename(fid, dfid, &name),
            Request::Renameat {
                olddirfid,
                oldname,
                newdirfid,
                newname,
            } => self.renameat(olddirfid, &oldname, newdirfid, &newname),
            Request::Unlinkat {
                dirfid,
                name,
                flags,
            } => self.unlinkat(dirfid, &name, flags),
            Request::Remove { fid } => self.remove(fid),
            Request::Xattrwalk { fid, newfid, name } => self.xattrwalk(fid, newfid, &name),
            Request::Xattrcreate {
                fid,
                name,
                attr_size,
                flags,
            } => self.xattrcreate(fid, &name, attr_size, flags),
            Request::Read { fid, offset, count } => self.read(tag, fid, offset, count).await,
            Request::Write { fid, offset, data } => match self.write_auth(fid, offset, &data) {
                Some(written) => written,
                None => self.write(fid, offset, WritePayload::new(data, None)).await,
            },
            Request::Readdir { fid, offset, count } => self.readdir(tag, fid, offset, count).await,
            Request::Fsync { fid, datasync } => self.fsync(fid, datasync != 0).await,
            Request::Lock { fid, lock } => self.lock(fid, &lock).await,
            Request::Getlock { fid, lock } => self.getlock(fid, &lock),
            // The connection loop answers these itself.
            Request::Version { .. } | Request::Flush { .. } => Err(Errno::PROTO),
        }
    }
}

/// Runs a file operation that may block (data I/O, fsync, readdir) on the bounded blocking
/// pool. If the request is flushed meanwhile, the operation completes and its result (and the
/// descriptors it holds) is dropped.
///
/// A panic in the operation is resumed in the calling handler, whose containment (see
/// [`Session::handle`]) answers it with EIO and logs it with the request's name.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> FsResult<T> + Send + 'static,
) -> FsResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Errno::IO),
    }
}

/// Encodes a reply; a reply that cannot be encoded becomes an Rlerror.
pub fn encode(tag: u16, reply: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = reply.encode(tag, &mut out) {
        tracing::warn!(tag, reply = reply.name(), "cannot encode reply: {e}");
        out.clear();
        let _ = Response::Lerror {
            ecode: Errno::IO.raw_os_error() as u32,
        }
        .encode(tag, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unwind::{catch_panic, message};

    #[tokio::test]
    async fn a_panic_on_the_blocking_pool_reaches_the_handler() {
        let caught = catch_panic(blocking(|| -> FsResult<()> {
            panic!("in a syscall wrapper")
        }))
        .await
        .expect_err("the panic is resumed in the caller");
        assert_eq!(message(&caught), "in a syscall wrapper");
    }

    #[tokio::test]
    async fn a_blocking_operation_returns_its_result() {
        assert_eq!(blocking(|| Ok(5)).await, Ok(5));
        assert_eq!(
            blocking(|| Err::<(), _>(Errno::NOSPC)).await,
            Err(Errno::NOSPC)
        );
    }
}
