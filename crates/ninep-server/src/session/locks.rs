//! POSIX record locks: Tlock and Tgetlock, as open file description locks kept per client
//! lock owner (see [`crate::fs::lock`]).

use std::time::Duration;

use bytes::Bytes;
use ninep::Response;
use rustix::io::Errno;

use super::{Reply, Session};
use crate::fid::Fid;
use crate::fs::FsResult;
use crate::fs::lock::{FLAG_BLOCK, LockRequest, LockStatus};

/// How long a blocking Tlock waits for the lock (polling, without holding a worker) before it
/// answers BLOCKED and lets the client retry. A Tflush cancels the wait at once.
const LOCK_WAIT_ROUNDS: u32 = 20;
const LOCK_WAIT_STEP: Duration = Duration::from_millis(5);

impl Session {
    pub(super) async fn lock(&self, fid: u32, lock: &ninep::Lock) -> FsResult<Reply> {
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
            let status = try_lock(&fid, &req)?;
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

    pub(super) fn getlock(&self, fid: u32, lock: &ninep::GetLock) -> FsResult<Reply> {
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
}

fn try_lock(fid: &Fid, req: &LockRequest) -> FsResult<LockStatus> {
    let mut inner = fid.lock();
    let (fd, locks) = inner.state.lockable().ok_or(Errno::BADF)?;
    locks.set(fd.fd(), req)
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
