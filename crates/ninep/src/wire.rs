//! Checked little-endian field reading and writing: the only place that touches raw bytes.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, EncodeError};
use crate::qid::Qid;

/// Reads fields from a message body, failing (never panicking) when the body is too short.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    frame: &'a Bytes,
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    /// Starts reading `frame` at byte `pos`; `message` names the message in errors.
    pub(crate) fn new(frame: &'a Bytes, pos: usize, message: &'static str) -> Self {
        Self {
            frame,
            pos,
            message,
        }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.frame.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(self.truncated(field))?;
        let bytes = self.frame.get(self.pos..end).ok_or(self.truncated(field))?;
        self.pos = end;
        Ok(bytes)
    }

    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
            field,
        }
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, field)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A `len[2] bytes[len]` string, returned as a zero-copy slice of the frame.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16(field)?);
        self.bytes(len, field)
    }

    /// `len` raw bytes as a zero-copy slice of the frame.
    pub(crate) fn bytes(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(len, field)?;
        Ok(self.frame.slice(start..self.pos))
    }

    /// A `count[4] data[count]` payload that must be exactly the rest of the frame.
    pub(crate) fn payload(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let count = self.u32(field)?;
        let len = usize::try_from(count).map_err(|_| self.truncated(field))?;
        if len > self.remaining() {
            return Err(self.truncated(field));
        }
        self.bytes(len, field)
    }

    pub(crate) fn qid(&mut self, field: &'static str) -> Result<Qid, DecodeError> {
        Ok(Qid {
            ty: self.u8(field)?,
            version: self.u32(field)?,
            path: self.u64(field)?,
        })
    }

    /// Fails unless every byte of the frame was consumed.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes {
                message: self.message,
                extra,
            }),
        }
    }
}

/// The encoded length of a string field, or an error when it is too long for 9P.
pub(crate) fn string_len(s: &[u8]) -> Result<usize, EncodeError> {
    if s.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong(s.len()));
    }
    Ok(2 + s.len())
}

/// Writes a string whose length was already checked by [`string_len`].
pub(crate) fn put_string<B: BufMut>(buf: &mut B, s: &[u8]) {
    // `string_len` rejected longer strings while sizing the frame, so this never saturates.
    buf.put_u16_le(u16::try_from(s.len()).unwrap_or(u16::MAX));
    buf.put_slice(s);
}

pub(crate) fn put_qid<B: BufMut>(buf: &mut B, qid: &Qid) {
    buf.put_u8(qid.ty);
    buf.put_u32_le(qid.version);
    buf.put_u64_le(qid.path);
}

/// Writes the header `size[4] type[1] tag[2]` for a frame with a body of `body_len` bytes.
pub(crate) fn put_header<B: BufMut>(
    buf: &mut B,
    body_len: usize,
    ty: u8,
    tag: u16,
) -> Result<(), EncodeError> {
    let size = body_len
        .checked_add(crate::consts::HEADER_LEN)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or(EncodeError::FrameTooLarge(body_len))?;
    // A growable buffer (Vec, BytesMut) always has room; a fixed one must not be overrun.
    if buf.remaining_mut() < size as usize {
        return Err(EncodeError::BufferTooSmall {
            needed: size as usize,
            available: buf.remaining_mut(),
        });
    }
    buf.put_u32_le(size);
    buf.put_u8(ty);
    buf.put_u16_le(tag);
    Ok(())
}
