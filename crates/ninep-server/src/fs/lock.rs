//! POSIX byte-range locks as open-file-description (OFD) locks, one description per client
//! lock owner.
//!
//! Classic POSIX locks belong to the server process, so two clients would never exclude each
//! other. An OFD lock belongs to an open file description: each (client_id, proc_id) owner gets
//! its own reopened description of the fid's file, and dropping the fid (clunk, Tversion,
//! disconnect) closes those descriptions, which releases their locks. Setting never waits:
//! a conflict is reported as BLOCKED and the caller decides whether to retry.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{FcntlArg, fcntl};
use rustix::fs::OFlags;
use rustix::io::Errno;

use super::{FsResult, proc_path};

/// Lock types as Tlock and Tgetlock send them (the same numbers as Linux's `F_*LCK`).
pub const RDLCK: u8 = 0;
pub const WRLCK: u8 = 1;
pub const UNLCK: u8 = 2;

/// Tlock's reply status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    Success = 0,
    Blocked = 1,
    Error = 2,
}

/// Tlock's `flags` bit asking to wait for the lock.
pub const FLAG_BLOCK: u32 = 1;

/// At most this many distinct lock owners per open fid (each costs a descriptor).
const MAX_OWNERS: usize = 64;

/// A range and who asks, as the lock messages carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub ty: u8,
    pub start: u64,
    pub length: u64,
    pub proc_id: u32,
    pub client_id: Vec<u8>,
}

/// The lock owners of one open fid.
#[derive(Debug, Default)]
pub struct Owners {
    fds: HashMap<(Vec<u8>, u32), OwnedFd>,
}

impl Owners {
    fn owner_fd(&mut self, file: &OwnedFd, req: &LockRequest) -> FsResult<&OwnedFd> {
        let key = (req.client_id.clone(), req.proc_id);
        if !self.fds.contains_key(&key) {
            if self.fds.len() >= MAX_OWNERS {
                return Err(Errno::NOLCK);
            }
            let access = rustix::fs::fcntl_getfl(file)? & OFlags::RWMODE;
            let fd = rustix::fs::open(
                proc_path(file.as_fd()),
                access | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?;
            self.fds.insert(key.clone(), fd);
        }
        Ok(&self.fds[&key])
    }

    /// Tlock: sets or clears a lock without waiting.
    pub fn set(&mut self, file: &OwnedFd, req: &LockRequest) -> FsResult<LockStatus> {
        let key = (req.client_id.clone(), req.proc_id);
        if req.ty == UNLCK && !self.fds.contains_key(&key) {
            return Ok(LockStatus::Success);
        }
        let fl = flock(req)?;
        let fd = self.owner_fd(file, req)?;
        match fcntl(fd, FcntlArg::F_OFD_SETLK(&fl)) {
            Ok(_) => Ok(LockStatus::Success),
            Err(nix::Error::EAGAIN) | Err(nix::Error::EACCES) => Ok(LockStatus::Blocked),
            Err(e) => Err(Errno::from_raw_os_error(e as i32)),
        }
    }

    /// Tgetlock: the first lock of another owner that would conflict, or `UNLCK`.
    pub fn get(&mut self, file: &OwnedFd, req: &LockRequest) -> FsResult<LockRequest> {
        let mut fl = flock(req)?;
        let fd = self.owner_fd(file, req)?;
        fcntl(fd, FcntlArg::F_OFD_GETLK(&mut fl))
            .map_err(|e| Errno::from_raw_os_error(e as i32))?;
        if fl.l_type == libc::F_UNLCK as i16 {
            return Ok(LockRequest {
                ty: UNLCK,
                ..req.clone()
            });
        }
        Ok(LockRequest {
            ty: if fl.l_type == libc::F_WRLCK as i16 {
                WRLCK
            } else {
                RDLCK
            },
            start: fl.l_start as u64,
            length: fl.l_len as u64,
            proc_id: fl.l_pid as u32,
            client_id: req.client_id.clone(),
        })
    }
}

fn flock(req: &LockRequest) -> FsResult<libc::flock> {
    let l_type = match req.ty {
        RDLCK => libc::F_RDLCK,
        WRLCK => libc::F_WRLCK,
        UNLCK => libc::F_UNLCK,
        _ => return Err(Errno::INVAL),
    } as i16;
    let start = i64::try_from(req.start).map_err(|_| Errno::INVAL)?;
    let len = i64::try_from(req.length).map_err(|_| Errno::INVAL)?;
    Ok(libc::flock {
        l_type,
        l_whence: libc::SEEK_SET as i16,
        l_start: start,
        l_len: len,
        l_pid: 0,
    })
}
