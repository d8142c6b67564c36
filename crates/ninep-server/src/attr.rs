//! Converting host metadata into the wire structures of Rgetattr and Rstatfs.

use ninep::{Attr, Qid, StatFs, Timespec};
use rustix::fs::Statx;

use crate::fs::Export;
use crate::fs::qid::QidParts;

/// Rgetattr's `valid`: the basic fields plus btime, which `statx` provides.
const VALID: u64 = ninep::consts::getattr::BASIC | ninep::consts::getattr::BTIME;

pub fn qid(q: QidParts) -> Qid {
    Qid {
        ty: q.ty,
        version: q.version,
        path: q.path,
    }
}

fn ts(t: rustix::fs::StatxTimestamp) -> Timespec {
    Timespec {
        sec: t.tv_sec as u64,
        nsec: u64::from(t.tv_nsec),
    }
}

pub fn attr(export: &Export, st: &Statx) -> Attr {
    Attr {
        valid: VALID,
        qid: qid(export.qid_of(st)),
        mode: u32::from(st.stx_mode),
        uid: st.stx_uid,
        gid: st.stx_gid,
        nlink: u64::from(st.stx_nlink),
        rdev: rustix::fs::makedev(st.stx_rdev_major, st.stx_rdev_minor),
        size: st.stx_size,
        blksize: u64::from(st.stx_blksize),
        blocks: st.stx_blocks,
        atime: ts(st.stx_atime),
        mtime: ts(st.stx_mtime),
        ctime: ts(st.stx_ctime),
        btime: ts(st.stx_btime),
        gen_: 0,
        data_version: 0,
    }
}

/// `fsid` is the file's device number (the host's fsid is not reachable safely here).
pub fn statfs(st: &rustix::fs::StatFs, fsid: u64) -> StatFs {
    StatFs {
        ty: st.f_type as u32,
        bsize: st.f_bsize as u32,
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        fsid,
        namelen: st.f_namelen as u32,
    }
}
