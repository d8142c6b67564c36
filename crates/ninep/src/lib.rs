//! The 9P2000.L wire format and a small async client.
//!
//! # Wire format
//!
//! [`Request`] and [`Response`] have one variant per message. Both decode from and encode to
//! whole frames, header included (`size[4] type[1] tag[2] body`). The codec does no I/O, never
//! panics on bad input, never allocates more than the frame's own size, and rejects truncated
//! frames, trailing bytes, unknown types, oversized counts and frames larger than the msize
//! with a [`DecodeError`]. Names and payloads are [`bytes::Bytes`] slices of the frame
//! (zero-copy; names need not be UTF-8). When a frame fails to decode, [`Header::peek_tag`]
//! still recovers its tag, so a server can answer it with Rlerror.
//!
//! ```
//! use bytes::Bytes;
//! use ninep::{Request, Response, Qid};
//!
//! let mut frame = Vec::new();
//! let walk = Request::Walk { fid: 1, newfid: 2, wnames: vec![Bytes::from_static(b"etc")] };
//! walk.encode(7, &mut frame).unwrap();
//! let (tag, decoded) = Request::decode_limited(&Bytes::from(frame), 8192).unwrap();
//! assert_eq!((tag, decoded), (7, walk));
//!
//! let mut reply = Vec::new();
//! Response::Walk { wqids: vec![Qid::default()] }.encode(7, &mut reply).unwrap();
//! assert_eq!(reply.len(), 7 + 2 + 13);
//! ```
//!
//! Fast paths for bulk data: [`put_rread_header`] writes an Rread header so the server can read
//! file data straight into the output buffer after it; [`ReaddirFrame`] packs whole directory
//! entries directly into an Rreaddir frame; a decoded Twrite's data is a slice of the frame.
//!
//! # Framing
//!
//! [`FrameCodec`] (a `tokio_util` [`Decoder`](tokio_util::codec::Decoder)) and [`FrameReader`]
//! cut a byte stream into frames no larger than the msize.
//!
//! # Client
//!
//! [`Client`] pipelines many requests on one connection: every call takes a free tag, sends its
//! frame through a writer task, and waits for the reply the reader task routes back by tag.
//! [`Client::call`] sends any [`Request`]; [`Client::start`] returns the tag before waiting so
//! a test can [`Client::flush`] it; [`Client::call_raw`] and [`Client::send_raw`] send
//! malformed frames.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ninep::ClientError> {
//! use ninep::{Client, consts::{NOFID, getattr}};
//!
//! let client = Client::connect_tcp("127.0.0.1:5640").await?;
//! client.version(1 << 20, "9P2000.L").await?;
//! let root = client.attach(0, NOFID, b"", b"", 0).await?;
//! let attr = client.getattr(0, getattr::BASIC).await?;
//! assert_eq!(root, attr.qid);
//! client.clunk(0).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attr;
pub mod client;
mod codec;
pub mod consts;
mod dirent;
mod error;
mod frame;
pub mod munge;
mod qid;
mod recycle;
mod request;
mod response;
mod sink;
mod wire;

pub use attr::{Attr, GetLock, Lock, SetAttr, StatFs, Timespec};
pub use client::{Client, ClientError, PendingReply};
pub use codec::{FrameCodec, FrameError, FrameReader, Incoming};
pub use consts::{HEADER_LEN, NOFID, NOTAG, P9_IOHDRSZ, P9_MAXWELEM};
pub use dirent::{Dirent, DirentIter, DirentWriter, ReaddirFrame, dirent_len};
pub use error::{DecodeError, EncodeError};
pub use frame::Header;
pub use qid::Qid;
pub use request::{Request, TWRITE_HEADER_LEN, TwriteHeader, put_twrite_header, request_name};
pub use response::{RREAD_HEADER_LEN, Response, put_rread_header, response_name};
