//! One connection's fid table and the handling of every request except Tversion and Tflush
//! (which the connection loop handles, since they act on the other requests). Moving file
//! contents (Tread, Twrite, Treaddir) is in the `data` module.

mod data;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use ninep::{Request, Response, TwriteHeader};
use rustix::io::Errno;

use crate::attr;
use crate::fid::{DataFile, Fid, FidState, OpenFile};
use crate::fs::lock::{FLAG_BLOCK, LockRequest, LockStatus};
use crate::fs::setattr::SetAttr;
use crate::fs::{FsResult, ops, xattr};
use crate::pipe::{Payload, PipePool, WritePayload};
use crate::server::Server;
use crate::sink::Outgoing;
use crate::unwind::{self, catch_panic};
use data::MIN_SPLICE;

/// The largest number of fids one connection may hold (each holds a descriptor).
const MAX_FIDS: usize = 16 * 1024;

/// The largest payload spliced through one pipe (the default `fs.pipe-max-size`, which an
/// unprivileged server cannot exceed).
const MAX_SPLICE: u32 = 1024 * 1024;

/// How long a blocking Tlock waits for the lock (polling, without holding a worker) before it
/// answers BLOCKED and lets the client retry. A Tflush cancels the wait at once.
const LOCK_WAIT_ROUNDS: u32 = 20;
const LOCK_WAIT_STEP: Duration = Duration::from_millis(5);

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
    fids: Mutex<HashMap<u32, Arc<Fid>>>,
    msize: AtomicU32,
    versioned: AtomicBool,
    /// Pipes for Rread and Twrite payloads, when the connection can splice them.
    pipes: Option<Arc<PipePool>>,
    /// Whether Rread payloads are spliced into the connection.
    splice_reads: bool,
}

impl Session {
    /// A session for a new connection. `splice_reads` says whether its replies may carry
    /// payloads in pipes (see [`crate::sink::ReplySink::can_splice`]), `splice_writes`
    /// whether its Twrite payloads may come in pipes
    /// (see [`crate::source::RequestSource::can_splice`]).
    pub fn new(server: Arc<Server>, splice_reads: bool, splice_writes: bool) -> Self {
        let msize = server.max_msize();
        let pipes =
            (splice_reads || splice_writes).then(|| PipePool::new(msize.min(MAX_SPLICE) as usize));
        Self {
            server,
            fids: Mutex::new(HashMap::new()),
            msize: AtomicU32::new(msize),
            versioned: AtomicBool::new(false),
            pipes,
            splice_reads,
        }
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

    /// Tversion: forgets every fid (releasing what they hold) and starts a new session.
    pub fn reset(&self, msize: u32) {
        let old = std::mem::take(&mut *self.table());
        drop(old);
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

    fn fid(&self, fid: u32) -> FsResult<Arc<Fid>> {
        self.table().get(&fid).cloned().ok_or(Errno::BADF)
    }

    fn insert_new(&self, fid: u32, value: Fid) -> FsResult<()> {
        let mut table = self.table();
        if table.len() >= MAX_FIDS {
            return Err(Errno::MFILE);
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
        self.answer(tag, name, self.dispatch(tag, request)).await
    }

    /// Handles a Twrite whose payload came apart from its frame (see
    /// [`ninep::Incoming::PartialWrite`]).
    pub async fn handle_write(&self, header: TwriteHeader, data: WritePayload) -> Outgoing {
        let work = self.write(header.fid, header.offset, data);
        self.answer(header.tag, "Twrite", work).await
    }

    /// Runs a request's `work` (unless the session has not started) and encodes its reply.
    async fn answer(
        &self,
        tag: u16,
        name: &'static str,
        work: impl Future<Output = FsResult<Reply>>,
    ) -> Outgoing {
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
            Ok(Reply::Frame(frame)) => return frame.into(),
            Ok(Reply::Spliced(out)) => return out,
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
        encode(tag, &reply).into()
    }

    async fn dispatch(&self, tag: u16, request: Request) -> FsResult<Reply> {
        let export = self.server.export();
        match request {
            Request::Auth { .. } => Err(Errno::OPNOTSUPP),
            Request::Attach {
                fid, afid, n_uname, ..
            } => {
                if afid != ninep::NOFID {
                    return Err(Errno::INVAL);
                }
                let identity = self.server.identity_for(n_uname);
                let root = export.root().clone();
                let qid = {
                    let _as = identity.enter()?;
                    export.qid(&root)?
                };
                self.insert_new(fid, Fid::new(identity, root, None))?;
                Ok(Response::Attach {
                    qid: attr::qid(qid),
                }
                .into())
            }
            Request::Walk {
                fid,
                newfid,
                wnames,
            } => self.walk(fid, newfid, &wnames),
            Request::Getattr { fid, .. } => {
                let fid = self.fid(fid)?;
                let node = fid.node();
                let st = node.statx()?;
                Ok(Response::Getattr(attr::attr(export, &st)).into())
            }
            Request::Setattr { fid, attr: a } => {
                tracing::trace!(fid, ?a, "Tsetattr");
                let fid = self.fid(fid)?;
                let set = SetAttr {
                    valid: a.valid,
                    mode: a.mode,
                    uid: a.uid,
                    gid: a.gid,
                    size: a.size,
                    atime: (a.atime.sec, a.atime.nsec),
                    mtime: (a.mtime.sec, a.mtime.nsec),
                };
                let inner = fid.lock();
                let open = inner.state.data_fd().cloned();
                let _as = fid.identity.enter()?;
                crate::fs::setattr::setattr(
                    export,
                    &inner.node,
                    open.as_deref().map(DataFile::fd),
                    &set,
                )?;
                Ok(Response::Setattr.into())
            }
            Request::Lopen { fid, flags } => {
                let fid = self.fid(fid)?;
                let mut inner = fid.lock();
                if !matches!(inner.state, FidState::Path) {
                    return Err(Errno::BADF);
                }
                let _as = fid.identity.enter()?;
                let file = ops::open(export, &inner.node, flags)?;
                let qid = export.qid(&inner.node)?;
                inner.state = FidState::Open {
                    file: open_file(&inner.node, file)?,
                    locks: Default::default(),
                };
                Ok(Response::Lopen {
                    qid: attr::qid(qid),
                    iounit: self.iounit(),
                }
                .into())
            }
            Request::Lcreate {
                fid,
                name,
                flags,
                mode,
                gid,
            } => {
                let fid = self.fid(fid)?;
                let mut inner = fid.lock();
                if !matches!(inner.state, FidState::Path) || !inner.node.is_dir() {
                    return Err(Errno::BADF);
                }
                let _as = fid.identity.with_gid(gid).enter()?;
                let (node, file) = ops::create(export, &inner.node, &name, flags, mode)?;
                let qid = export.qid(&node)?;
                let file = open_file(&node, file)?;
                let dir = std::mem::replace(&mut inner.node, node);
                inner.origin = Some((dir, name.to_vec()));
                inner.state = FidState::Open {
                    file,
                    locks: Default::default(),
                };
                Ok(Response::Lcreate {
                    qid: attr::qid(qid),
                    iounit: self.iounit(),
                }
                .into())
            }
            Request::Symlink {
                fid,
                name,
                symtgt,
                gid,
            } => {
                let fid = self.fid(fid)?;
                let dir = fid.node();
                let _as = fid.identity.with_gid(gid).enter()?;
                let node = ops::symlink(export, &dir, &name, &symtgt)?;
                Ok(Response::Symlink {
                    qid: attr::qid(export.qid(&node)?),
                }
                .into())
            }
            Request::Mknod {
                dfid,
                name,
                mode,
                major,
                minor,
                gid,
            } => {
                let fid = self.fid(dfid)?;
                let dir = fid.node();
                let _as = fid.identity.with_gid(gid).enter()?;
                let node = ops::mknod(export, &dir, &name, mode, major, minor)?;
                Ok(Response::Mknod {
                    qid: attr::qid(export.qid(&node)?),
                }
                .into())
            }
            Request::Mkdir {
                dfid,
                name,
                mode,
                gid,
            } => {
                let fid = self.fid(dfid)?;
                let dir = fid.node();
                let _as = fid.identity.with_gid(gid).enter()?;
                let node = ops::mkdir(export, &dir, &name, mode)?;
                Ok(Response::Mkdir {
                    qid: attr::qid(export.qid(&node)?),
                }
                .into())
            }
            Request::Link { dfid, fid, name } => {
                let dir = self.fid(dfid)?;
                let target = self.fid(fid)?;
                let (dir_node, target_node) = (dir.node(), target.node());
                let _as = dir.identity.enter()?;
                ops::link(export, &dir_node, &target_node, &name)?;
                Ok(Response::Link.into())
            }
            Request::Renameat {
                olddirfid,
                oldname,
                newdirfid,
                newname,
            } => {
                let old = self.fid(olddirfid)?;
                let new = self.fid(newdirfid)?;
                let (old_dir, new_dir) = (old.node(), new.node());
                let _as = old.identity.enter()?;
                ops::renameat(export, &old_dir, &oldname, &new_dir, &newname)?;
                Ok(Response::Renameat.into())
            }
            Request::Rename { fid, dfid, name } => {
                let fid = self.fid(fid)?;
                let new_dir = self.fid(dfid)?.node();
                let mut inner = fid.lock();
                let (old_dir, old_name) = inner.origin.clone().ok_or(Errno::BUSY)?;
                let _as = fid.identity.enter()?;
                ops::still_named(&old_dir, &old_name, &inner.node)?;
                ops::renameat(export, &old_dir, &old_name, &new_dir, &name)?;
                inner.origin = Some((new_dir, name.to_vec()));
                Ok(Response::Rename.into())
            }
            Request::Unlinkat {
                dirfid,
                name,
                flags,
            } => {
                let fid = self.fid(dirfid)?;
                let dir = fid.node();
                let _as = fid.identity.enter()?;
                ops::unlinkat(export, &dir, &name, flags)?;
                Ok(Response::Unlinkat.into())
            }
            Request::Remove { fid } => {
                // The fid is clunked whether or not the removal succeeds.
                let fid = self.table().remove(&fid).ok_or(Errno::BADF)?;
                let inner = fid.lock();
                let (dir, name) = inner.origin.clone().ok_or(Errno::BUSY)?;
                let _as = fid.identity.enter()?;
                ops::still_named(&dir, &name, &inner.node)?;
                let flags = if inner.node.is_dir() {
                    ops::AT_REMOVEDIR
                } else {
                    0
                };
                ops::unlinkat(export, &dir, &name, flags)?;
                Ok(Response::Remove.into())
            }
            Request::Readlink { fid } => {
                let node = self.fid(fid)?.node();
                let target = ops::readlink(&node)?;
                Ok(Response::Readlink {
                    target: Bytes::from(target),
                }
                .into())
            }
            Request::Statfs { fid } => {
                let node = self.fid(fid)?.node();
                let st = node.statx()?;
                let dev = rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor);
                Ok(Response::Statfs(attr::statfs(&ops::statfs(&node)?, dev)).into())
            }
            Request::Xattrwalk {
                fid: fid_number,
                newfid,
                name,
            } => {
                let fid = self.fid(fid_number)?;
                let node = fid.node();
                let value = {
                    let _as = fid.identity.enter()?;
                    xattr::get(&node, &name)?
                };
                let size = value.len() as u64;
                let new = Fid::new(fid.identity.clone(), node, None);
                new.lock().state = FidState::XattrRead(value);
                if newfid == fid_number {
                    self.table().insert(newfid, Arc::new(new));
                } else {
                    self.insert_new(newfid, new)?;
                }
                Ok(Response::Xattrwalk { size }.into())
            }
            Request::Xattrcreate {
                fid,
                name,
                attr_size,
                flags,
            } => {
                let fid = self.fid(fid)?;
                if attr_size > xattr::MAX_SIZE as u64 {
                    return Err(Errno::TOOBIG);
                }
                if flags & !(xattr::XATTR_CREATE | xattr::XATTR_REPLACE) != 0 || name.is_empty() {
                    return Err(Errno::INVAL);
                }
                export.writable()?;
                let mut inner = fid.lock();
                if !matches!(inner.state, FidState::Path) {
                    return Err(Errno::BADF);
                }
                inner.state = FidState::XattrWrite {
                    name: name.to_vec(),
                    size: attr_size,
                    flags,
                    value: Vec::new(),
                };
                Ok(Response::Xattrcreate.into())
            }
            Request::Clunk { fid } => {
                let fid = self.table().remove(&fid).ok_or(Errno::BADF)?;
                let mut inner = fid.lock();
                if let FidState::XattrWrite {
                    name,
                    size,
                    flags,
                    value,
                } = std::mem::replace(&mut inner.state, FidState::Path)
                {
                    if value.len() as u64 != size {
                        return Err(Errno::INVAL);
                    }
                    let _as = fid.identity.enter()?;
                    xattr::set(&inner.node, &name, &value, flags)?;
                }
                Ok(Response::Clunk.into())
            }
            Request::Fsync { fid, datasync } => {
                let fid = self.fid(fid)?;
                let fd = {
                    let inner = fid.lock();
                    match inner.state.data_fd() {
                        Some(fd) => fd.clone(),
                        // An opened directory or special file: nothing to sync.
                        None if matches!(inner.state, FidState::Open { .. }) => {
                            return Ok(Response::Fsync.into());
                        }
                        None => return Err(Errno::BADF),
                    }
                };
                blocking(move || ops::fsync(std::os::fd::AsFd::as_fd(&*fd), datasync != 0)).await?;
                Ok(Response::Fsync.into())
            }
            Request::Read { fid, offset, count } => self.read(tag, fid, offset, count).await,
            Request::Write { fid, offset, data } => {
                self.write(fid, offset, WritePayload::new(data, None)).await
            }
            Request::Readdir { fid, offset, count } => self.readdir(tag, fid, offset, count).await,
            Request::Lock { fid, lock } => {
                let fid = self.fid(fid)?;
                let req = lock_request(
                    lock.ty,
                    lock.start,
                    lock.length,
                    lock.proc_id,
                    &lock.client_id,
                );
                let mut round = 0;
                loop {
                    let status = self.try_lock(&fid, &req)?;
                    if status != LockStatus::Blocked
                        || lock.flags & FLAG_BLOCK == 0
                        || round >= LOCK_WAIT_ROUNDS
                    {
                        return Ok(Response::Lock {
                            status: status as u8,
                        }
                        .into());
                    }
                    round += 1;
                    tokio::time::sleep(LOCK_WAIT_STEP).await;
                }
            }
            Request::Getlock { fid, lock } => {
                let fid = self.fid(fid)?;
                let req = lock_request(
                    lock.ty,
                    lock.start,
                    lock.length,
                    lock.proc_id,
                    &lock.client_id,
                );
                let mut inner = fid.lock();
                let (fd, locks) = inner.state.lockable().ok_or(Errno::BADF)?;
                let found = locks.get(fd.fd(), &req)?;
                Ok(Response::Getlock(ninep::GetLock {
                    ty: found.ty,
                    start: found.start,
                    length: found.length,
                    proc_id: found.proc_id,
                    client_id: Bytes::from(found.client_id),
                })
                .into())
            }
            Request::Version { .. } | Request::Flush { .. } => Err(Errno::PROTO),
        }
    }

    /// The most a client should ask for in one Tread or Twrite. For a large msize it is a
    /// whole number of pages, so that a client reading or writing a file sequentially from
    /// its start (as the kernel's v9fs does, in `iounit` steps) keeps every request
    /// page-aligned: whole pages spliced, no partial page cache pages written.
    fn iounit(&self) -> u32 {
        let most = self.msize() - ninep::P9_IOHDRSZ;
        let page = rustix::param::page_size() as u32;
        if most >= 16 * page {
            most / page * page
        } else {
            most
        }
    }

    fn try_lock(&self, fid: &Fid, req: &LockRequest) -> FsResult<LockStatus> {
        let mut inner = fid.lock();
        let (fd, locks) = inner.state.lockable().ok_or(Errno::BADF)?;
        locks.set(fd.fd(), req)
    }

    fn walk(&self, fid: u32, newfid: u32, wnames: &[Bytes]) -> FsResult<Reply> {
        let export = self.server.export();
        let from = self.fid(fid)?;
        if newfid != fid && self.table().contains_key(&newfid) {
            return Err(Errno::BADF);
        }
        if wnames.len() > ninep::P9_MAXWELEM {
            return Err(Errno::INVAL);
        }
        let (mut node, mut origin) = {
            let inner = from.lock();
            if matches!(
                inner.state,
                FidState::XattrRead(_) | FidState::XattrWrite { .. }
            ) {
                return Err(Errno::BADF);
            }
            (inner.node.clone(), inner.origin.clone())
        };
        let mut qids = Vec::with_capacity(wnames.len());
        {
            let _as = from.identity.enter()?;
            for (i, name) in wnames.iter().enumerate() {
                match export.walk_one(&node, name) {
                    Ok((next, st)) => {
                        qids.push(attr::qid(export.qid_of(&st)));
                        origin = match &name[..] {
                            b"." | b".." => None,
                            _ => Some((node, name.to_vec())),
                        };
                        node = next;
                    }
                    Err(e) if i == 0 => return Err(e),
                    Err(_) => break,
                }
            }
        }
        if qids.len() == wnames.len() {
            let new = Arc::new(Fid::new(from.identity.clone(), node, origin));
            let mut table = self.table();
            if newfid != fid && table.contains_key(&newfid) {
                return Err(Errno::BADF);
            }
            if table.len() >= MAX_FIDS && newfid != fid {
                return Err(Errno::MFILE);
            }
            table.insert(newfid, new);
        }
        Ok(Response::Walk { wqids: qids }.into())
    }
}

fn open_file(node: &crate::fs::Node, file: Option<std::os::fd::OwnedFd>) -> FsResult<OpenFile> {
    Ok(match file {
        None => OpenFile::Special,
        Some(fd) if node.is_dir() => {
            let st = node.statx()?;
            OpenFile::Dir(
                Arc::new(Mutex::new(fd)),
                rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            )
        }
        Some(fd) => OpenFile::Data(Arc::new(DataFile::new(fd))),
    })
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

/// A Tlock's or Tgetlock's range and owner, as the filesystem layer takes them.
fn lock_request(ty: u8, start: u64, length: u64, proc_id: u32, client_id: &[u8]) -> LockRequest {
    LockRequest {
        ty,
        start,
        length,
        proc_id,
        client_id: client_id.to_vec(),
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

impl Session {
    /// The largest msize this server offers.
    pub fn server_max_msize(&self) -> u32 {
        self.server.max_msize()
    }
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
