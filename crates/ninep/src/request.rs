//! T-messages: what a client sends.

use bytes::{Buf, BufMut, Bytes};

use crate::attr::{GetLock, Lock, SetAttr, Timespec};
use crate::consts::{P9_MAXWELEM, msg};
use crate::error::{DecodeError, EncodeError};
use crate::frame::Header;
use crate::sink::{Body, Sink, encode_frame, frame_len};
use crate::wire::Reader;

/// A 9P2000.L request, one variant per T-message. Names are bytes (Linux names need not be UTF-8)
/// and, when decoded, are zero-copy slices of the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "fields are named as in the protocol description"
)]
pub enum Request {
    /// Negotiates msize and protocol version; resets the session.
    Version { msize: u32, version: Bytes },
    /// Sets up an authentication fid.
    Auth {
        afid: u32,
        uname: Bytes,
        aname: Bytes,
        n_uname: u32,
    },
    /// Attaches `fid` to the root of export `aname` as user `n_uname`.
    Attach {
        fid: u32,
        afid: u32,
        uname: Bytes,
        aname: Bytes,
        n_uname: u32,
    },
    /// Cancels the request with tag `oldtag`.
    Flush { oldtag: u16 },
    /// Walks `wnames` (at most 16) from `fid`, creating `newfid` if every name was walked.
    Walk {
        fid: u32,
        newfid: u32,
        wnames: Vec<Bytes>,
    },
    /// Opens `fid` with Linux open flags.
    Lopen { fid: u32, flags: u32 },
    /// Creates and opens `name` in directory `fid`; the fid becomes the new file.
    Lcreate {
        fid: u32,
        name: Bytes,
        flags: u32,
        mode: u32,
        gid: u32,
    },
    /// Creates symlink `name` -> `symtgt` in directory `fid`.
    Symlink {
        fid: u32,
        name: Bytes,
        symtgt: Bytes,
        gid: u32,
    },
    /// Creates a device node, FIFO or socket `name` in directory `dfid`.
    Mknod {
        dfid: u32,
        name: Bytes,
        mode: u32,
        major: u32,
        minor: u32,
        gid: u32,
    },
    /// Renames the file of `fid` to `name` in directory `dfid`.
    Rename { fid: u32, dfid: u32, name: Bytes },
    /// Reads the target of symlink `fid`.
    Readlink { fid: u32 },
    /// Reads attributes selected by `request_mask`.
    Getattr { fid: u32, request_mask: u64 },
    /// Changes attributes.
    Setattr { fid: u32, attr: SetAttr },
    /// Prepares `newfid` to read xattr `name` (or the list, when `name` is empty).
    Xattrwalk { fid: u32, newfid: u32, name: Bytes },
    /// Turns `fid` into a handle that sets xattr `name` when clunked.
    Xattrcreate {
        fid: u32,
        name: Bytes,
        attr_size: u64,
        flags: u32,
    },
    /// Reads directory entries starting at cookie `offset`.
    Readdir { fid: u32, offset: u64, count: u32 },
    /// Flushes the file to stable storage.
    Fsync { fid: u32, datasync: u32 },
    /// Acquires or releases a byte-range lock.
    Lock { fid: u32, lock: Lock },
    /// Tests for a conflicting lock.
    Getlock { fid: u32, lock: GetLock },
    /// Creates hard link `name` in directory `dfid` to the file of `fid`.
    Link { dfid: u32, fid: u32, name: Bytes },
    /// Creates directory `name` in `dfid`.
    Mkdir {
        dfid: u32,
        name: Bytes,
        mode: u32,
        gid: u32,
    },
    /// Renames `oldname` in `olddirfid` to `newname` in `newdirfid`.
    Renameat {
        olddirfid: u32,
        oldname: Bytes,
        newdirfid: u32,
        newname: Bytes,
    },
    /// Removes `name` from directory `dirfid` (flags: AT_REMOVEDIR).
    Unlinkat {
        dirfid: u32,
        name: Bytes,
        flags: u32,
    },
    /// Reads filesystem statistics.
    Statfs { fid: u32 },
    /// Reads up to `count` bytes at `offset`.
    Read { fid: u32, offset: u64, count: u32 },
    /// Writes `data` at `offset`.
    Write { fid: u32, offset: u64, data: Bytes },
    /// Forgets `fid`.
    Clunk { fid: u32 },
    /// Removes the file of `fid` and forgets the fid.
    Remove { fid: u32 },
}

impl Request {
    /// Decodes one whole frame (header included) into its tag and request, with no msize limit
    /// beyond what the framing layer enforced.
    pub fn decode(frame: &Bytes) -> Result<(u16, Self), DecodeError> {
        Self::decode_limited(frame, u32::MAX)
    }

    /// Decodes one whole frame, rejecting it when it is larger than `msize`.
    pub fn decode_limited(frame: &Bytes, msize: u32) -> Result<(u16, Self), DecodeError> {
        let header = Header::parse(frame, msize)?;
        let name = request_name(header.ty).ok_or(DecodeError::UnknownType(header.ty))?;
        let mut r = Reader::new(frame, crate::consts::HEADER_LEN, name);
        let request = decode_body(header.ty, &mut r)?;
        r.finish()?;
        Ok((header.tag, request))
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

    /// The protocol name of the message ("Twalk", ...).
    pub fn name(&self) -> &'static str {
        request_name(self.ty()).unwrap_or("T?")
    }
}

/// The name of a T-message type, or `None` if `ty` is not a 9P2000.L request.
pub fn request_name(ty: u8) -> Option<&'static str> {
    Some(match ty {
        msg::TSTATFS => "Tstatfs",
        msg::TLOPEN => "Tlopen",
        msg::TLCREATE => "Tlcreate",
        msg::TSYMLINK => "Tsymlink",
        msg::TMKNOD => "Tmknod",
        msg::TRENAME => "Trename",
        msg::TREADLINK => "Treadlink",
        msg::TGETATTR => "Tgetattr",
        msg::TSETATTR => "Tsetattr",
        msg::TXATTRWALK => "Txattrwalk",
        msg::TXATTRCREATE => "Txattrcreate",
        msg::TREADDIR => "Treaddir",
        msg::TFSYNC => "Tfsync",
        msg::TLOCK => "Tlock",
        msg::TGETLOCK => "Tgetlock",
        msg::TLINK => "Tlink",
        msg::TMKDIR => "Tmkdir",
        msg::TRENAMEAT => "Trenameat",
        msg::TUNLINKAT => "Tunlinkat",
        msg::TVERSION => "Tversion",
        msg::TAUTH => "Tauth",
        msg::TATTACH => "Tattach",
        msg::TFLUSH => "Tflush",
        msg::TWALK => "Twalk",
        msg::TREAD => "Tread",
        msg::TWRITE => "Twrite",
        msg::TCLUNK => "Tclunk",
        msg::TREMOVE => "Tremove",
        _ => return None,
    })
}

fn timespec(r: &mut Reader<'_>, field: &'static str) -> Result<Timespec, DecodeError> {
    Ok(Timespec {
        sec: r.u64(field)?,
        nsec: r.u64(field)?,
    })
}

fn decode_body(ty: u8, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
    Ok(match ty {
        msg::TSTATFS => Request::Statfs { fid: r.u32("fid")? },
        msg::TLOPEN => Request::Lopen {
            fid: r.u32("fid")?,
            flags: r.u32("flags")?,
        },
        msg::TLCREATE => Request::Lcreate {
            fid: r.u32("fid")?,
            name: r.string("name")?,
            flags: r.u32("flags")?,
            mode: r.u32("mode")?,
            gid: r.u32("gid")?,
        },
        msg::TSYMLINK => Request::Symlink {
            fid: r.u32("fid")?,
            name: r.string("name")?,
            symtgt: r.string("symtgt")?,
            gid: r.u32("gid")?,
        },
        msg::TMKNOD => Request::Mknod {
            dfid: r.u32("dfid")?,
            name: r.string("name")?,
            mode: r.u32("mode")?,
            major: r.u32("major")?,
            minor: r.u32("minor")?,
            gid: r.u32("gid")?,
        },
        msg::TRENAME => Request::Rename {
            fid: r.u32("fid")?,
            dfid: r.u32("dfid")?,
            name: r.string("name")?,
        },
        msg::TREADLINK => Request::Readlink { fid: r.u32("fid")? },
        msg::TGETATTR => Request::Getattr {
            fid: r.u32("fid")?,
            request_mask: r.u64("request_mask")?,
        },
        msg::TSETATTR => Request::Setattr {
            fid: r.u32("fid")?,
            attr: SetAttr {
                valid: r.u32("valid")?,
                mode: r.u32("mode")?,
                uid: r.u32("uid")?,
                gid: r.u32("gid")?,
                size: r.u64("size")?,
                atime: timespec(r, "atime")?,
                mtime: timespec(r, "mtime")?,
            },
        },
        msg::TXATTRWALK => Request::Xattrwalk {
            fid: r.u32("fid")?,
            newfid: r.u32("newfid")?,
            name: r.string("name")?,
        },
        msg::TXATTRCREATE => Request::Xattrcreate {
            fid: r.u32("fid")?,
            name: r.string("name")?,
            attr_size: r.u64("attr_size")?,
            flags: r.u32("flags")?,
        },
        msg::TREADDIR => Request::Readdir {
            fid: r.u32("fid")?,
            offset: r.u64("offset")?,
            count: r.u32("count")?,
        },
        msg::TFSYNC => Request::Fsync {
            fid: r.u32("fid")?,
            datasync: r.u32("datasync")?,
        },
        msg::TLOCK => Request::Lock {
            fid: r.u32("fid")?,
            lock: Lock {
                ty: r.u8("type")?,
                flags: r.u32("flags")?,
                start: r.u64("start")?,
                length: r.u64("length")?,
                proc_id: r.u32("proc_id")?,
                client_id: r.string("client_id")?,
            },
        },
        msg::TGETLOCK => Request::Getlock {
            fid: r.u32("fid")?,
            lock: read_getlock(r)?,
        },
        msg::TLINK => Request::Link {
            dfid: r.u32("dfid")?,
            fid: r.u32("fid")?,
            name: r.string("name")?,
        },
        msg::TMKDIR => Request::Mkdir {
            dfid: r.u32("dfid")?,
            name: r.string("name")?,
            mode: r.u32("mode")?,
            gid: r.u32("gid")?,
        },
        msg::TRENAMEAT => Request::Renameat {
            olddirfid: r.u32("olddirfid")?,
            oldname: r.string("oldname")?,
            newdirfid: r.u32("newdirfid")?,
            newname: r.string("newname")?,
        },
        msg::TUNLINKAT => Request::Unlinkat {
            dirfid: r.u32("dirfid")?,
            name: r.string("name")?,
            flags: r.u32("flags")?,
        },
        msg::TVERSION => Request::Version {
            msize: r.u32("msize")?,
            version: r.string("version")?,
        },
        msg::TAUTH => Request::Auth {
            afid: r.u32("afid")?,
            uname: r.string("uname")?,
            aname: r.string("aname")?,
            n_uname: r.u32("n_uname")?,
        },
        msg::TATTACH => Request::Attach {
            fid: r.u32("fid")?,
            afid: r.u32("afid")?,
            uname: r.string("uname")?,
            aname: r.string("aname")?,
            n_uname: r.u32("n_uname")?,
        },
        msg::TFLUSH => Request::Flush {
            oldtag: r.u16("oldtag")?,
        },
        msg::TWALK => {
            let fid = r.u32("fid")?;
            let newfid = r.u32("newfid")?;
            let nwname = r.u16("nwname")?;
            if usize::from(nwname) > P9_MAXWELEM {
                return Err(DecodeError::CountTooLarge {
                    message: "Twalk",
                    field: "nwname",
                    count: nwname.into(),
                    limit: P9_MAXWELEM as u32,
                });
            }
            // Each name takes at least 2 bytes: never reserve more than the frame can hold.
            let mut wnames = Vec::with_capacity(usize::from(nwname).min(r.remaining() / 2));
            for _ in 0..nwname {
                wnames.push(r.string("wname")?);
            }
            Request::Walk {
                fid,
                newfid,
                wnames,
            }
        }
        msg::TREAD => Request::Read {
            fid: r.u32("fid")?,
            offset: r.u64("offset")?,
            count: r.u32("count")?,
        },
        msg::TWRITE => Request::Write {
            fid: r.u32("fid")?,
            offset: r.u64("offset")?,
            data: r.payload("data")?,
        },
        msg::TCLUNK => Request::Clunk { fid: r.u32("fid")? },
        msg::TREMOVE => Request::Remove { fid: r.u32("fid")? },
        other => return Err(DecodeError::UnknownType(other)),
    })
}

fn put_timespec<S: Sink>(s: &mut S, t: &Timespec) {
    s.u64(t.sec);
    s.u64(t.nsec);
}

impl Body for Request {
    fn ty(&self) -> u8 {
        match self {
            Request::Version { .. } => msg::TVERSION,
            Request::Auth { .. } => msg::TAUTH,
            Request::Attach { .. } => msg::TATTACH,
            Request::Flush { .. } => msg::TFLUSH,
            Request::Walk { .. } => msg::TWALK,
            Request::Lopen { .. } => msg::TLOPEN,
            Request::Lcreate { .. } => msg::TLCREATE,
            Request::Symlink { .. } => msg::TSYMLINK,
            Request::Mknod { .. } => msg::TMKNOD,
            Request::Rename { .. } => msg::TRENAME,
            Request::Readlink { .. } => msg::TREADLINK,
            Request::Getattr { .. } => msg::TGETATTR,
            Request::Setattr { .. } => msg::TSETATTR,
            Request::Xattrwalk { .. } => msg::TXATTRWALK,
            Request::Xattrcreate { .. } => msg::TXATTRCREATE,
            Request::Readdir { .. } => msg::TREADDIR,
            Request::Fsync { .. } => msg::TFSYNC,
            Request::Lock { .. } => msg::TLOCK,
            Request::Getlock { .. } => msg::TGETLOCK,
            Request::Link { .. } => msg::TLINK,
            Request::Mkdir { .. } => msg::TMKDIR,
            Request::Renameat { .. } => msg::TRENAMEAT,
            Request::Unlinkat { .. } => msg::TUNLINKAT,
            Request::Statfs { .. } => msg::TSTATFS,
            Request::Read { .. } => msg::TREAD,
            Request::Write { .. } => msg::TWRITE,
            Request::Clunk { .. } => msg::TCLUNK,
            Request::Remove { .. } => msg::TREMOVE,
        }
    }

    fn fields<S: Sink>(&self, s: &mut S) {
        match self {
            Request::Version { msize, version } => {
                s.u32(*msize);
                s.string(version);
            }
            Request::Auth {
                afid,
                uname,
                aname,
                n_uname,
            } => {
                s.u32(*afid);
                s.string(uname);
                s.string(aname);
                s.u32(*n_uname);
            }
            Request::Attach {
                fid,
                afid,
                uname,
                aname,
                n_uname,
            } => {
                s.u32(*fid);
                s.u32(*afid);
                s.string(uname);
                s.string(aname);
                s.u32(*n_uname);
            }
            Request::Flush { oldtag } => s.u16(*oldtag),
            Request::Walk {
                fid,
                newfid,
                wnames,
            } => {
                s.u32(*fid);
                s.u32(*newfid);
                if wnames.len() > P9_MAXWELEM {
                    s.fail(EncodeError::TooManyWalkElements(wnames.len()));
                }
                s.u16(u16::try_from(wnames.len()).unwrap_or(u16::MAX));
                for name in wnames {
                    s.string(name);
                }
            }
            Request::Lopen { fid, flags } => {
                s.u32(*fid);
                s.u32(*flags);
            }
            Request::Lcreate {
                fid,
                name,
                flags,
                mode,
                gid,
            } => {
                s.u32(*fid);
                s.string(name);
                s.u32(*flags);
                s.u32(*mode);
                s.u32(*gid);
            }
            Request::Symlink {
                fid,
                name,
                symtgt,
                gid,
            } => {
                s.u32(*fid);
                s.string(name);
                s.string(symtgt);
                s.u32(*gid);
            }
            Request::Mknod {
                dfid,
                name,
                mode,
                major,
                minor,
                gid,
            } => {
                s.u32(*dfid);
                s.string(name);
                s.u32(*mode);
                s.u32(*major);
                s.u32(*minor);
                s.u32(*gid);
            }
            Request::Rename { fid, dfid, name } => {
                s.u32(*fid);
                s.u32(*dfid);
                s.string(name);
            }
            Request::Readlink { fid }
            | Request::Statfs { fid }
            | Request::Clunk { fid }
            | Request::Remove { fid } => s.u32(*fid),
            Request::Getattr { fid, request_mask } => {
                s.u32(*fid);
                s.u64(*request_mask);
            }
            Request::Setattr { fid, attr } => {
                s.u32(*fid);
                s.u32(attr.valid);
                s.u32(attr.mode);
                s.u32(attr.uid);
                s.u32(attr.gid);
                s.u64(attr.size);
                put_timespec(s, &attr.atime);
                put_timespec(s, &attr.mtime);
            }
            Request::Xattrwalk { fid, newfid, name } => {
                s.u32(*fid);
                s.u32(*newfid);
                s.string(name);
            }
            Request::Xattrcreate {
                fid,
                name,
                attr_size,
                flags,
            } => {
                s.u32(*fid);
                s.string(name);
                s.u64(*attr_size);
                s.u32(*flags);
            }
            Request::Readdir { fid, offset, count } | Request::Read { fid, offset, count } => {
                s.u32(*fid);
                s.u64(*offset);
                s.u32(*count);
            }
            Request::Fsync { fid, datasync } => {
                s.u32(*fid);
                s.u32(*datasync);
            }
            Request::Lock { fid, lock } => {
                s.u32(*fid);
                s.u8(lock.ty);
                s.u32(lock.flags);
                s.u64(lock.start);
                s.u64(lock.length);
                s.u32(lock.proc_id);
                s.string(&lock.client_id);
            }
            Request::Getlock { fid, lock } => {
                s.u32(*fid);
                put_getlock(s, lock);
            }
            Request::Link { dfid, fid, name } => {
                s.u32(*dfid);
                s.u32(*fid);
                s.string(name);
            }
            Request::Mkdir {
                dfid,
                name,
                mode,
                gid,
            } => {
                s.u32(*dfid);
                s.string(name);
                s.u32(*mode);
                s.u32(*gid);
            }
            Request::Renameat {
                olddirfid,
                oldname,
                newdirfid,
                newname,
            } => {
                s.u32(*olddirfid);
                s.string(oldname);
                s.u32(*newdirfid);
                s.string(newname);
            }
            Request::Unlinkat {
                dirfid,
                name,
                flags,
            } => {
                s.u32(*dirfid);
                s.string(name);
                s.u32(*flags);
            }
            Request::Write { fid, offset, data } => {
                s.u32(*fid);
                s.u64(*offset);
                s.payload(data);
            }
        }
    }
}

/// Writes the fields shared by Tgetlock (after the fid) and Rgetlock.
pub(crate) fn put_getlock<S: Sink>(s: &mut S, lock: &GetLock) {
    s.u8(lock.ty);
    s.u64(lock.start);
    s.u64(lock.length);
    s.u32(lock.proc_id);
    s.string(&lock.client_id);
}

/// Reads the fields shared by Tgetlock (after the fid) and Rgetlock.
pub(crate) fn read_getlock(r: &mut Reader<'_>) -> Result<GetLock, DecodeError> {
    Ok(GetLock {
        ty: r.u8("type")?,
        start: r.u64("start")?,
        length: r.u64("length")?,
        proc_id: r.u32("proc_id")?,
        client_id: r.string("client_id")?,
    })
}

/// Length of a Twrite's fixed part: `size[4] type[1] tag[2] fid[4] offset[8] count[4]`.
pub const TWRITE_HEADER_LEN: usize = 23;

/// The fixed part of a Twrite, parsed before its payload has arrived (a server can then move
/// the payload from the transport to the file without holding the whole frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    missing_docs,
    reason = "fields are named as in the protocol description"
)]
pub struct TwriteHeader {
    pub tag: u16,
    pub fid: u32,
    pub offset: u64,
    pub count: u32,
}

impl TwriteHeader {
    /// Parses the first [`TWRITE_HEADER_LEN`] bytes of a frame. The frame must be a Twrite no
    /// larger than `msize` whose declared size is exactly its fixed part and `count` bytes.
    pub fn parse(head: &[u8], msize: u32) -> Result<Self, DecodeError> {
        let Some(fixed) = head.first_chunk::<TWRITE_HEADER_LEN>() else {
            return Err(DecodeError::ShortHeader(head.len()));
        };
        // Twenty-three bytes are there: the fixed-width reads below cannot run short.
        let mut b = &fixed[..];
        let (size, ty) = (b.get_u32_le(), b.get_u8());
        if ty != msg::TWRITE {
            return Err(DecodeError::UnknownType(ty));
        }
        let header = TwriteHeader {
            tag: b.get_u16_le(),
            fid: b.get_u32_le(),
            offset: b.get_u64_le(),
            count: b.get_u32_le(),
        };
        if size > msize {
            return Err(DecodeError::TooLarge { size, msize });
        }
        if u64::from(header.count) + TWRITE_HEADER_LEN as u64 != u64::from(size) {
            return Err(DecodeError::WriteCount {
                size,
                count: header.count,
            });
        }
        Ok(header)
    }
}

/// Writes the header of a Twrite whose `count` data bytes the caller appends next, so a
/// payload can be copied straight from its source into the frame.
pub fn put_twrite_header<B: BufMut>(
    buf: &mut B,
    tag: u16,
    fid: u32,
    offset: u64,
    count: u32,
) -> Result<(), EncodeError> {
    let body = 4 + 8 + 4 + usize::try_from(count).map_err(|_| EncodeError::FrameTooLarge(0))?;
    crate::wire::put_header(buf, body, msg::TWRITE, tag)?;
    buf.put_u32_le(fid);
    buf.put_u64_le(offset);
    buf.put_u32_le(count);
    Ok(())
}
