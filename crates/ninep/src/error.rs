//! Why a frame could not be decoded or encoded.

use thiserror::Error;

/// A frame that is not a valid 9P2000.L message. Decoding reports this instead of panicking.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than the 7-byte header `size[4] type[1] tag[2]`.
    #[error("frame of {0} bytes is shorter than the 7-byte 9P header")]
    ShortHeader(usize),
    /// A Twrite's `count` disagrees with its frame's `size`.
    #[error("Twrite frame of {size} bytes declares {count} data bytes")]
    WriteCount {
        /// The frame's `size` field.
        size: u32,
        /// The Twrite's `count` field.
        count: u32,
    },
    /// The `size` field disagrees with the number of bytes handed to the decoder.
    #[error("frame declares {declared} bytes but {actual} were given")]
    SizeMismatch {
        /// The frame's `size` field.
        declared: u32,
        /// The bytes actually handed over.
        actual: usize,
    },
    /// The frame is larger than the negotiated msize.
    #[error("frame of {size} bytes exceeds msize {msize}")]
    TooLarge {
        /// The frame's `size` field.
        size: u32,
        /// The negotiated limit.
        msize: u32,
    },
    /// The message type is not one of 9P2000.L's (or is a reply where a request was expected, or the reverse).
    #[error("unknown or unexpected 9P message type {0}")]
    UnknownType(u8),
    /// The body ended before a field was complete.
    #[error("{message} body ends inside field `{field}`")]
    Truncated {
        /// The message being decoded.
        message: &'static str,
        /// The field that was cut short.
        field: &'static str,
    },
    /// Bytes are left over after the last field.
    #[error("{message} has {extra} trailing bytes")]
    TrailingBytes {
        /// The message being decoded.
        message: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A count field asks for more elements than the protocol allows (Twalk nwname > 16 ...).
    #[error("{message} field `{field}` is {count}, more than the limit {limit}")]
    CountTooLarge {
        /// The message being decoded.
        message: &'static str,
        /// The count field.
        field: &'static str,
        /// The value found.
        count: u32,
        /// The protocol's limit.
        limit: u32,
    },
}

/// A message that cannot be represented on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A string (name, path, version ...) longer than the 65535 bytes a `s` field can carry.
    #[error("string of {0} bytes does not fit a 9P string (at most 65535)")]
    StringTooLong(usize),
    /// A Twalk with more than 16 names or an Rwalk with more than 16 qids.
    #[error("{0} walk elements, more than the 16 a Twalk/Rwalk may carry")]
    TooManyWalkElements(usize),
    /// The encoded frame would not fit in the 32-bit `size` field.
    #[error("message of {0} bytes does not fit a 9P frame")]
    FrameTooLarge(usize),
    /// The output buffer cannot grow and has less room than the frame needs.
    #[error("frame needs {needed} bytes but the output buffer has room for {available}")]
    BufferTooSmall {
        /// The frame's size.
        needed: usize,
        /// The buffer's remaining room.
        available: usize,
    },
}
