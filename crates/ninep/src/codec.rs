//! Cutting a byte stream into whole frames with an msize bound, for tokio.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::{Decoder, Encoder};

use crate::consts::HEADER_LEN;

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

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size) = src.first_chunk::<4>().map(|s| u32::from_le_bytes(*s)) else {
            return Ok(None);
        };
        if size > self.max_size {
            return Err(FrameError::TooLarge {
                size,
                msize: self.max_size,
            });
        }
        let len = usize::try_from(size).map_err(|_| FrameError::TooLarge {
            size,
            msize: self.max_size,
        })?;
        if len < HEADER_LEN {
            return Err(FrameError::TooSmall(size));
        }
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

/// Reads whole frames from an [`AsyncRead`] (a simpler alternative to `FramedRead`).
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    codec: FrameCodec,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames of at most `max_size` bytes from `reader`.
    pub fn new(reader: R, max_size: u32) -> Self {
        Self {
            reader,
            codec: FrameCodec::new(max_size),
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Changes the frame size limit (after msize negotiation).
    pub fn set_max_size(&mut self, max_size: u32) {
        self.codec.set_max_size(max_size);
    }

    /// The next whole frame, or `None` at a clean end of stream. Cancel-safe: a dropped call
    /// loses no bytes.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return self.codec.decode_eof(&mut self.buf);
            }
        }
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }
}
