//! What a caller asks a queue pair to do, and what it gets back.

use std::fmt;

use crate::error::{Error, Result};

/// The kind of I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// Read blocks into the buffer.
    Read,
    /// Write blocks from the buffer; `fua` forces them to media before completion.
    Write {
        /// Force Unit Access.
        fua: bool,
    },
    /// Commit the volatile write cache.
    Flush,
    /// Set blocks to zero without a data transfer.
    WriteZeroes,
    /// Tell the controller the blocks are unused (Dataset Management, deallocate).
    Deallocate,
}

/// One I/O request. It owns its buffer until the matching [`Completion`] gives it back.
pub struct Request<D> {
    /// What to do.
    pub kind: IoKind,
    /// Namespace ID.
    pub nsid: u32,
    /// First logical block.
    pub lba: u64,
    /// Number of logical blocks (ignored by Flush).
    pub blocks: u64,
    /// The data buffer of Read and Write.
    pub buffer: Option<D>,
    /// Where the data starts in the buffer (4-byte aligned).
    pub buffer_offset: usize,
    /// A caller-chosen value returned in the completion.
    pub tag: u64,
}

impl<D> Request<D> {
    fn new(kind: IoKind, nsid: u32, lba: u64, blocks: u64, buffer: Option<D>) -> Request<D> {
        Request {
            kind,
            nsid,
            lba,
            blocks,
            buffer,
            buffer_offset: 0,
            tag: 0,
        }
    }
    /// Reads `blocks` blocks at `lba` into `buffer`.
    pub fn read(nsid: u32, lba: u64, blocks: u64, buffer: D) -> Request<D> {
        Request::new(IoKind::Read, nsid, lba, blocks, Some(buffer))
    }
    /// Writes `blocks` blocks at `lba` from `buffer`.
    pub fn write(nsid: u32, lba: u64, blocks: u64, buffer: D, fua: bool) -> Request<D> {
        Request::new(IoKind::Write { fua }, nsid, lba, blocks, Some(buffer))
    }
    /// Flushes namespace `nsid`.
    pub fn flush(nsid: u32) -> Request<D> {
        Request::new(IoKind::Flush, nsid, 0, 0, None)
    }
    /// Zeroes `blocks` blocks at `lba`.
    pub fn write_zeroes(nsid: u32, lba: u64, blocks: u64) -> Request<D> {
        Request::new(IoKind::WriteZeroes, nsid, lba, blocks, None)
    }
    /// Deallocates `blocks` blocks at `lba`.
    pub fn deallocate(nsid: u32, lba: u64, blocks: u64) -> Request<D> {
        Request::new(IoKind::Deallocate, nsid, lba, blocks, None)
    }
    /// The same request with `tag`.
    pub fn with_tag(mut self, tag: u64) -> Request<D> {
        self.tag = tag;
        self
    }
    /// The same request with its data starting `offset` bytes into the buffer.
    pub fn at_offset(mut self, offset: usize) -> Request<D> {
        self.buffer_offset = offset;
        self
    }
}

/// A finished request: its tag, its outcome and its buffer.
pub struct Completion<D> {
    /// The request's tag.
    pub tag: u64,
    /// The first error of any of its commands, or success.
    pub result: Result<()>,
    /// The buffer, returned (withheld only if the controller died with the command in flight).
    pub buffer: Option<D>,
}

/// A request the queue pair did not accept, handed back with the reason.
pub struct Rejected<D> {
    /// Why.
    pub error: Error,
    /// The request, untouched.
    pub request: Request<D>,
}

impl<D> fmt::Debug for Request<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("kind", &self.kind)
            .field("nsid", &self.nsid)
            .field("lba", &self.lba)
            .field("blocks", &self.blocks)
            .field("has_buffer", &self.buffer.is_some())
            .field("buffer_offset", &self.buffer_offset)
            .field("tag", &self.tag)
            .finish()
    }
}

impl<D> fmt::Debug for Completion<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completion")
            .field("tag", &self.tag)
            .field("result", &self.result)
            .field("has_buffer", &self.buffer.is_some())
            .finish()
    }
}

impl<D> fmt::Debug for Rejected<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .field("request", &self.request)
            .finish()
    }
}

impl<D> fmt::Display for Rejected<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request rejected: {}", self.error)
    }
}

impl<D> std::error::Error for Rejected<D> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
