//! Cutting a byte stream into whole frames with an msize bound, for tokio.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::{Decoder, Encoder};

use crate::consts::HEADER_LEN;
use crate::recycle;
use crate::request::{TWRITE_HEADER_LEN, TwriteHeader};

/// Frames at least this large are read into a buffer of their own (see [`recycle`]); smaller
/// ones share one receive buffer, so that a single read can bring in many of them.
const LARGE_FRAME: usize = 64 * 1024;

/// How far ahead of the received bytes the decoder reserves buffer space for a partial frame.
const RESERVE_AHEAD: usize = 256 * 1024;

/// Why a stream stopped yielding frames. After any of these the stream is out of sync: close it.
#[derive(Debug, Error)]
pub enum FrameError {
    /// Reading or writing the transport failed.
    #[error("9P transport: {0}")]
    Io(#[from] io::Error),
    /// A frame declares a size above the negotiated msize.
    #[error("9P frame of {size} bytes exceeds msize {msize}")]
    TooLarge {
        /// The declared size.
        size: u32,
        /// The limit.
        msize: u32,
    },
    /// A frame declares a size smaller than its own header.
    #[error("9P frame declares {0} bytes, less than the 7-byte header")]
    TooSmall(u32),
    /// The peer closed the stream in the middle of a frame.
    #[error("9P stream ended inside a frame ({0} bytes buffered)")]
    Truncated(usize),
}

/// A [`Decoder`] yielding whole frames (header included) no larger than `max_size`.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_size: u32,
}

impl FrameCodec {
    /// A codec accepting frames of at most `max_size` bytes (the msize).
    pub fn new(max_size: u32) -> Self {
        Self { max_size }
    }

    /// Changes the limit, e.g. after Tversion negotiated a smaller msize.
    pub fn set_max_size(&mut self, max_size: u32) {
        self.max_size = max_size;
    }

    /// The current limit.
    pub fn max_size(&self) -> u32 {
        self.max_size
    }
}

impl FrameCodec {
    /// The size the frame at the start of `src` declares, once its size field has arrived;
    /// an error when that size is out of bounds.
    pub fn frame_len(&self, src: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(size) = src.first_chunk::<4>().map(|s| u32::from_le_bytes(*s)) else {
            return Ok(None);
        };
        let too_large = FrameError::TooLarge {
            size,
            msize: self.max_size,
        };
        if size > self.max_size {
            return Err(too_large);
        }
        let len = usize::try_from(size).map_err(|_| too_large)?;
        if len < HEADER_LEN {
            return Err(FrameError::TooSmall(size));
        }
        Ok(Some(len))
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.frame_len(src)? else {
            return Ok(None);
        };
        if src.len() < len {
            // Make room for the rest of the frame in large steps, but never far ahead of the
            // bytes that actually arrived: a bare header must not cost a whole msize of memory.
            src.reserve((len - src.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        Ok(Some(src.split_to(len).freeze()))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(FrameError::Truncated(buf.len())),
        }
    }
}

/// Writes pre-encoded frames unchanged.
impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(item.chunk());
        Ok(())
    }
}

/// What [`FrameReader::next_incoming`] yields.
#[derive(Debug)]
pub enum Incoming {
    /// A whole frame.
    Frame(Bytes),
    /// A large Twrite cut short after the bytes that had arrived: its fixed part, the first
    /// `received` payload bytes, and the number of payload bytes still in the stream. The caller
    /// must take exactly `rest` bytes from [`FrameReader::get_mut`] before asking for the next
    /// frame (a server splices them into the file).
    PartialWrite {
        /// The Twrite's fixed part.
        header: TwriteHeader,
        /// The start of the payload.
        received: Bytes,
        /// Payload bytes not yet read from the stream.
        rest: usize,
    },
}

/// Reads whole frames from an [`AsyncRead`] (a simpler alternative to `FramedRead`).
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    codec: FrameCodec,
    buf: BytesMut,
    /// A large frame being read into a buffer of its own, and its declared length.
    large: Option<(Vec<u8>, usize)>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `max_size` bytes from `reader`.
    pub fn new(reader: R, max_size: u32) -> Self {
        Self {
            reader,
            codec: FrameCodec::new(max_size),
            buf: BytesMut::with_capacity(64 * 1024),
            large: None,
        }
    }

    /// Changes the frame size limit (after msize negotiation).
    pub fn set_max_size(&mut self, max_size: u32) {
        self.codec.set_max_size(max_size);
    }

    /// The next whole frame, or `None` at a clean end of stream. Cancel-safe: a dropped call
    /// loses no bytes.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        match self.next(false).await? {
            Some(Incoming::Frame(frame)) => Ok(Some(frame)),
            Some(Incoming::PartialWrite { .. }) => Err(FrameError::Truncated(0)),
            None => Ok(None),
        }
    }

    /// Like [`Self::next_frame`], but a Twrite of at least 64 KiB whose payload has not all
    /// arrived is handed over early as [`Incoming::PartialWrite`].
    pub async fn next_incoming(&mut self) -> Result<Option<Incoming>, FrameError> {
        self.next(true).await
    }

    async fn next(&mut self, split_writes: bool) -> Result<Option<Incoming>, FrameError> {
        loop {
            if self.large.is_some() {
                return self.read_large().await.map(|f| Some(Incoming::Frame(f)));
            }
            if let Some(len) = self.codec.frame_len(&self.buf)?
                && len >= LARGE_FRAME
                && self.buf.len() < len
            {
                if split_writes && let Some(partial) = self.split_write(len) {
                    return Ok(Some(partial));
                }
                if self.buf.len() < LARGE_FRAME {
                    // A buffer of the declared size is committed only once part of the frame
                    // has really arrived: a bare header costs no more than the shared buffer.
                    self.buf.reserve(LARGE_FRAME - self.buf.len());
                    if self.reader.read_buf(&mut self.buf).await? == 0 {
                        return self.eof();
                    }
                    continue;
                }
                // Whatever is buffered belongs to this frame: move it over and read the rest
                // straight into place.
                let mut own = recycle::take(len);
                own.extend_from_slice(&self.buf);
                self.buf.clear();
                self.large = Some((own, len));
                continue;
            }
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(Incoming::Frame(frame)));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return self.eof();
            }
        }
    }

    fn eof(&mut self) -> Result<Option<Incoming>, FrameError> {
        Ok(self.codec.decode_eof(&mut self.buf)?.map(Incoming::Frame))
    }

    /// Hands over the buffered start of a large Twrite of `len` bytes, once its fixed part has
    /// arrived (everything buffered belongs to it, since the frame is not complete). A fixed
    /// part that does not parse is left for the whole-frame decoder to refuse.
    fn split_write(&mut self, len: usize) -> Option<Incoming> {
        let header = TwriteHeader::parse(&self.buf, self.codec.max_size()).ok()?;
        let mut received = self.buf.split().freeze();
        let rest = len - received.len();
        received.advance(TWRITE_HEADER_LEN);
        Some(Incoming::PartialWrite {
            header,
            received,
            rest,
        })
    }

    /// Completes the large frame in progress. Cancel-safe: the bytes read so far stay in
    /// `self.large`.
    async fn read_large(&mut self) -> Result<Bytes, FrameError> {
        while let Some((own, len)) = &mut self.large {
            let missing = *len - own.len();
            if missing == 0 {
                break;
            }
            // Never past the frame: the next frame's bytes belong in the shared buffer.
            if self
                .reader
                .read_buf(&mut (&mut *own).limit(missing))
                .await?
                == 0
            {
                let have = own.len();
                self.large = None;
                return Err(FrameError::Truncated(have));
            }
        }
        let (own, _) = self.large.take().ok_or(FrameError::Truncated(0))?;
        Ok(recycle::freeze(own))
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }
}
