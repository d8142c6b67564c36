//! R-messages: what a server replies.

use bytes::{BufMut, Bytes};

use crate::attr::{Attr, GetLock, StatFs, Timespec};
use crate::consts::{P9_MAXWELEM, msg};
use crate::error::{DecodeError, EncodeError};
use crate::frame::Header;
use crate::qid::Qid;
use crate::request::{put_getlock, read_getlock};
use crate::sink::{Body, Sink, encode_frame, frame_len};
use crate::wire::Reader;

/// A 9P2000.L reply, one variant per R-message (Rlerror included).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "fields are named as in the protocol description"
)]
pub enum Response {
    /// The error reply: a Linux errno.
    Lerror {
        ecode: u32,
    },
    Version {
        msize: u32,
        version: Bytes,
    },
    Auth {
        aqid: Qid,
    },
    Attach {
        qid: Qid,
    },
    Flush,
    /// The qids of the names walked (fewer than requested on a partial walk).
    Walk {
        wqids: Vec<Qid>,
    },
    Lopen {
        qid: Qid,
        iounit: u32,
    },
    Lcreate {
        qid: Qid,
        iounit: u32,
    },
    Symlink {
        qid: Qid,
    },
    Mknod {
        qid: Qid,
    },
    Rename,
    Readlink {
        target: Bytes,
    },
    Getattr(Attr),
    Setattr,
    Xattrwalk {
        size: u64,
    },
    Xattrcreate,
    /// Whole directory entries, as built by [`crate::DirentWriter`].
    Readdir {
        data: Bytes,
    },
    Fsync,
    Lock {
        status: u8,
    },
    Getlock(GetLock),
    Link,
    Mkdir {
        qid: Qid,
    },
    Renameat,
    Unlinkat,
    Statfs(StatFs),
    Read {
        data: Bytes,
    },
    Write {
        count: u32,
    },
    Clunk,
    Remove,
}

impl Response {
    /// Decodes one whole frame (header included) into its tag and reply.
    pub fn decode(frame: &Bytes) -> Result<(u16, Self), DecodeError> {
        Self::decode_limited(frame, u32::MAX)
    }

    /// Decodes one whole frame, rejecting it when it is larger than `msize`.
    pub fn decode_limited(frame: &Bytes, msize: u32) -> Result<(u16, Self), DecodeError> {
        let header = Header::parse(frame, msize)?;
        let name = response_name(header.ty).ok_or(DecodeError::UnknownType(header.ty))?;
        let mut r = Reader::new(frame, crate::consts::HEADER_LEN, name);
        let response = decode_body(header.ty, &mut r)?;
        r.finish()?;
        Ok((header.tag, response))
    }

    /// Appends the encoded frame to `buf`. On error nothing is written.
    pub fn encode<B: BufMut>(&self, tag: u16, buf: &mut B) -> Result<(), EncodeError> {
        encode_frame(buf, tag, self)
    }

    /// The size of the encoded frame, header included.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        frame_len(self)
    }

    /// The message type byte.
    pub fn ty(&self) -> u8 {
        Body::ty(self)
    }

    /// The protocol name of the message ("Rwalk", ...).
    pub fn name(&self) -> &'static str {
        response_name(self.ty()).unwrap_or("R?")
    }
}

/// The name of an R-message type, or `None` if `ty` is not a 9P2000.L reply.
pub fn response_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        msg::RLERROR => "Rlerror",
        msg::RSTATFS => "Rstatfs",
        msg::RLOPEN => "Rlopen",
        msg::RLCREATE => "Rlcreate",
        msg::RSYMLINK => "Rsymlink",
        msg::RMKNOD => "Rmknod",
        msg::RRENAME => "Rrename",
        msg::RREADLINK => "Rreadlink",
        msg::RGETATTR => "Rgetattr",
        msg::RSETATTR => "Rsetattr",
        msg::RXATTRWALK => "Rxattrwalk",
        msg::RXATTRCREATE => "Rxattrcreate",
        msg::RREADDIR => "Rreaddir",
        msg::RFSYNC => "Rfsync",
        msg::RLOCK => "Rlock",
        msg::RGETLOCK => "Rgetlock",
        msg::RLINK => "Rlink",
        msg::RMKDIR => "Rmkdir",
        msg::RRENAMEAT => "Rrenameat",
        msg::RUNLINKAT => "Runlinkat",
        msg::RVERSION => "Rversion",
        msg::RAUTH => "Rauth",
        msg::RATTACH => "Rattach",
        msg::RFLUSH => "Rflush",
        msg::RWALK => "Rwalk",
        msg::RREAD => "Rread",
        msg::RWRITE => "Rwrite",
        msg::RCLUNK => "Rclunk",
        msg::RREMOVE => "Rremove",
        _ => return None,
    })
}

fn timespec(r: &mut Reader<'_>, field: &'static str) -> Result<Timespec, DecodeError> {
    Ok(Timespec {
        sec: r.u64(field)?,
        nsec: r.u64(field)?,
    })
}

fn decode_body(ty: u8, r: &mut Reader<'_>) -> Result<Response, DecodeError> {
    Ok(match ty {
        msg::RLERROR => Response::Lerror {
            ecode: r.u32("ecode")?,
        },
        msg::RSTATFS => Response::Statfs(StatFs {
            ty: r.u32("type")?,
            bsize: r.u32("bsize")?,
            blocks: r.u64("blocks")?,
            bfree: r.u64("bfree")?,
            bavail: r.u64("bavail")?,
            files: r.u64("files")?,
            ffree: r.u64("ffree")?,
            fsid: r.u64("fsid")?,
            namelen: r.u32("namelen")?,
        }),
        msg::RLOPEN => Response::Lopen {
            qid: r.qid("qid")?,
            iounit: r.u32("iounit")?,
        },
        msg::RLCREATE => Response::Lcreate {
            qid: r.qid("qid")?,
            iounit: r.u32("iounit")?,
        },
        msg::RSYMLINK => Response::Symlink { qid: r.qid("qid")? },
        msg::RMKNOD => Response::Mknod { qid: r.qid("qid")? },
        msg::RRENAME => Response::Rename,
        msg::RREADLINK => Response::Readlink {
            target: r.string("target")?,
        },
        msg::RGETATTR => Response::Getattr(Attr {
            valid: r.u64("valid")?,
            qid: r.qid("qid")?,
            mode: r.u32("mode")?,
            uid: r.u32("uid")?,
            gid: r.u32("gid")?,
            nlink: r.u64("nlink")?,
            rdev: r.u64("rdev")?,
            size: r.u64("size")?,
            blksize: r.u64("blksize")?,
            blocks: r.u64("blocks")?,
            atime: timespec(r, "atime")?,
            mtime: timespec(r, "mtime")?,
            ctime: timespec(r, "ctime")?,
            btime: timespec(r, "btime")?,
            gen_: r.u64("gen")?,
            data_version: r.u64("data_version")?,
        }),
        msg::RSETATTR => Response::Setattr,
        msg::RXATTRWALK => Response::Xattrwalk {
            size: r.u64("size")?,
        },
        msg::RXATTRCREATE => Response::Xattrcreate,
        msg::RREADDIR => Response::Readdir {
            data: r.payload("data")?,
        },
        msg::RFSYNC => Response::Fsync,
        msg::RLOCK => Response::Lock {
            status: r.u8("status")?,
        },
        msg::RGETLOCK => Response::Getlock(read_getlock(r)?),
        msg::RLINK => Response::Link,
        msg::RMKDIR => Response::Mkdir { qid: r.qid("qid")? },
        msg::RRENAMEAT => Response::Renameat,
        msg::RUNLINKAT => Response::Unlinkat,
        msg::RVERSION => Response::Version {
            msize: r.u32("msize")?,
            version: r.string("version")?,
        },
        msg::RAUTH => Response::Auth {
            aqid: r.qid("aqid")?,
        },
        msg::RATTACH => Response::Attach { qid: r.qid("qid")? },
        msg::RFLUSH => Response::Flush,
        msg::RWALK => {
            let nwqid = r.u16("nwqid")?;
            if usize::from(nwqid) > P9_MAXWELEM {
                return Err(DecodeError::CountTooLarge {
                    message: "Rwalk",
                    field: "nwqid",
                    count: nwqid.into(),
                    limit: P9_MAXWELEM as u32,
                });
            }
            // Each qid takes 13 bytes: never reserve more than the frame can hold.
            let mut wqids = Vec::with_capacity(usize::from(nwqid).min(r.remaining() / Qid::LEN));
            for _ in 0..nwqid {
                wqids.push(r.qid("wqid")?);
            }
            Response::Walk { wqids }
        }
        msg::RREAD => Response::Read {
            data: r.payload("data")?,
        },
        msg::RWRITE => Response::Write {
            count: r.u32("count")?,
        },
        msg::RCLUNK => Response::Clunk,
        msg::RREMOVE => Response::Remove,
        other => return Err(DecodeError::UnknownType(other)),
    })
}

fn put_timespec<S: Sink>(s: &mut S, t: &Timespec) {
    s.u64(t.sec);
    s.u64(t.nsec);
}

impl Body for Response {
    fn ty(&self) -> u8 {
        match self {
            Response::Lerror { .. } => msg::RLERROR,
            Response::Version { .. } => msg::RVERSION,
            Response::Auth { .. } => msg::RAUTH,
            Response::Attach { .. } => msg::RATTACH,
            Response::Flush => msg::RFLUSH,
            Response::Walk { .. } => msg::RWALK,
            Response::Lopen { .. } => msg::RLOPEN,
            Response::Lcreate { .. } => msg::RLCREATE,
            Response::Symlink { .. } => msg::RSYMLINK,
            Response::Mknod { .. } => msg::RMKNOD,
            Response::Rename => msg::RRENAME,
            Response::Readlink { .. } => msg::RREADLINK,
            Response::Getattr(_) => msg::RGETATTR,
            Response::Setattr => msg::RSETATTR,
            Response::Xattrwalk { .. } => msg::RXATTRWALK,
            Response::Xattrcreate => msg::RXATTRCREATE,
            Response::Readdir { .. } => msg::RREADDIR,
            Response::Fsync => msg::RFSYNC,
            Response::Lock { .. } => msg::RLOCK,
            Response::Getlock(_) => msg::RGETLOCK,
            Response::Link => msg::RLINK,
            Response::Mkdir { .. } => msg::RMKDIR,
            Response::Renameat => msg::RRENAMEAT,
            Response::Unlinkat => msg::RUNLINKAT,
            Response::Statfs(_) => msg::RSTATFS,
            Response::Read { .. } => msg::RREAD,
            Response::Write { .. } => msg::RWRITE,
            Response::Clunk => msg::RCLUNK,
            Response::Remove => msg::RREMOVE,
        }
    }

    fn fields<S: Sink>(&self, s: &mut S) {
        match self {
            Response::Lerror { ecode } => s.u32(*ecode),
            Response::Version { msize, version } => {
                s.u32(*msize);
                s.string(version);
            }
            Response::Auth { aqid: qid }
            | Response::Attach { qid }
            | Response::Symlink { qid }
            | Response::Mknod { qid }
            | Response::Mkdir { qid } => s.qid(qid),
            Response::Walk { wqids } => {
                if wqids.len() > P9_MAXWELEM {
                    s.fail(EncodeError::TooManyWalkElements(wqids.len()));
                }
                s.u16(u16::try_from(wqids.len()).unwrap_or(u16::MAX));
                for qid in wqids {
                    s.qid(qid);
                }
            }
            Response::Lopen { qid, iounit } | Response::Lcreate { qid, iounit } => {
                s.qid(qid);
                s.u32(*iounit);
            }
            Response::Readlink { target } => s.string(target),
            Response::Getattr(a) => {
                s.u64(a.valid);
                s.qid(&a.qid);
                s.u32(a.mode);
                s.u32(a.uid);
                s.u32(a.gid);
                s.u64(a.nlink);
                s.u64(a.rdev);
                s.u64(a.size);
                s.u64(a.blksize);
                s.u64(a.blocks);
                put_timespec(s, &a.atime);
                put_timespec(s, &a.mtime);
                put_timespec(s, &a.ctime);
                put_timespec(s, &a.btime);
                s.u64(a.gen_);
                s.u64(a.data_version);
            }
            Response::Xattrwalk { size } => s.u64(*size),
            Response::Readdir { data } | Response::Read { data } => s.payload(data),
            Response::Lock { status } => s.u8(*status),
            Response::Getlock(lock) => put_getlock(s, lock),
            Response::Statfs(st) => {
                s.u32(st.ty);
                s.u32(st.bsize);
                s.u64(st.blocks);
                s.u64(st.bfree);
                s.u64(st.bavail);
                s.u64(st.files);
                s.u64(st.ffree);
                s.u64(st.fsid);
                s.u32(st.namelen);
            }
            Response::Write { count } => s.u32(*count),
            Response::Flush
            | Response::Rename
            | Response::Setattr
            | Response::Xattrcreate
            | Response::Fsync
            | Response::Link
            | Response::Renameat
            | Response::Unlinkat
            | Response::Clunk
            | Response::Remove => {}
        }
    }
}

/// Writes the header of an Rread carrying `count` data bytes, which the caller appends next
/// (for example by reading the file straight into the output buffer): no copy of the payload.
pub fn put_rread_header<B: BufMut>(buf: &mut B, tag: u16, count: u32) -> Result<(), EncodeError> {
    let body = 4 + usize::try_from(count).map_err(|_| EncodeError::FrameTooLarge(0))?;
    crate::wire::put_header(buf, body, msg::RREAD, tag)?;
    buf.put_u32_le(count);
    Ok(())
}

/// The bytes of an Rread/Rreaddir frame before its payload: `size[4] type[1] tag[2] count[4]`.
pub const RREAD_HEADER_LEN: usize = 11;
