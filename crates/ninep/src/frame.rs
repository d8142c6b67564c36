//! The frame header `size[4] type[1] tag[2]` shared by every message.

use crate::consts::HEADER_LEN;
use crate::error::DecodeError;

/// The parsed header of a whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total frame length, header included.
    pub size: u32,
    /// Message type ([`crate::consts::msg`]).
    pub ty: u8,
    /// The tag that pairs a reply with its request.
    pub tag: u16,
}

impl Header {
    /// Parses the header of `frame`, which must be exactly one whole frame no larger than `msize`.
    pub fn parse(frame: &[u8], msize: u32) -> Result<Self, DecodeError> {
        let Some((head, _)) = frame.split_first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::ShortHeader(frame.len()));
        };
        let [s0, s1, s2, s3, ty, t0, t1] = *head;
        let size = u32::from_le_bytes([s0, s1, s2, s3]);
        if size > msize {
            return Err(DecodeError::TooLarge { size, msize });
        }
        if usize::try_from(size).ok() != Some(frame.len()) {
            return Err(DecodeError::SizeMismatch {
                declared: size,
                actual: frame.len(),
            });
        }
        Ok(Self {
            size,
            ty,
            tag: u16::from_le_bytes([t0, t1]),
        })
    }

    /// Reads only the tag of a frame prefix, if it is long enough (used to route replies).
    pub fn peek_tag(frame: &[u8]) -> Option<u16> {
        let [_, _, _, _, _, t0, t1] = *frame.first_chunk::<HEADER_LEN>()?;
        Some(u16::from_le_bytes([t0, t1]))
    }
}
