//! Directory entries of Rreaddir: `qid[13] offset[8] type[1] name[s]`, packed whole only.

use bytes::{BufMut, Bytes};

use crate::consts::msg;
use crate::error::{DecodeError, EncodeError};
use crate::qid::Qid;
use crate::response::RREAD_HEADER_LEN;
use crate::wire::{self, Reader};

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirent {
    /// The entry's qid.
    pub qid: Qid,
    /// The cookie to pass as Treaddir `offset` to continue after this entry.
    pub offset: u64,
    /// The entry's `d_type` ([`crate::consts::dirent_type`]).
    pub ty: u8,
    /// The entry's name (bytes, not necessarily UTF-8).
    pub name: Bytes,
}

/// The encoded size of an entry named `name`.
pub fn dirent_len(name: &[u8]) -> usize {
    Qid::LEN + 8 + 1 + 2 + name.len()
}

/// Appends whole entries to a buffer without exceeding a byte budget (the Treaddir `count`,
/// capped at msize - 11), so a server never sends the truncated entry the kernel rejects.
#[derive(Debug)]
pub struct DirentWriter<'a, B> {
    buf: &'a mut B,
    budget: usize,
    written: usize,
}

impl<'a, B: BufMut> DirentWriter<'a, B> {
    /// Writes at most `budget` bytes of entries to `buf`.
    pub fn new(buf: &'a mut B, budget: usize) -> Self {
        Self {
            buf,
            budget,
            written: 0,
        }
    }

    /// Whether an entry named `name` still fits (in the budget and in the buffer).
    pub fn fits(&self, name: &[u8]) -> bool {
        let len = dirent_len(name);
        len <= self.budget - self.written && len <= self.buf.remaining_mut()
    }

    /// Appends one entry. Returns `Ok(false)`, writing nothing, when it does not fit.
    pub fn push(
        &mut self,
        qid: &Qid,
        offset: u64,
        ty: u8,
        name: &[u8],
    ) -> Result<bool, EncodeError> {
        wire::string_len(name)?;
        if !self.fits(name) {
            return Ok(false);
        }
        wire::put_qid(self.buf, qid);
        self.buf.put_u64_le(offset);
        self.buf.put_u8(ty);
        wire::put_string(self.buf, name);
        self.written += dirent_len(name);
        Ok(true)
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Whether no entry was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }
}

/// Builds a whole Rreaddir frame in place: header first, entries appended straight after it,
/// then [`ReaddirFrame::finish`] fills in the sizes. No intermediate buffer, no payload copy.
#[derive(Debug)]
pub struct ReaddirFrame<'a, B> {
    start: usize,
    entries: DirentWriter<'a, B>,
}

impl<'a, B: BufMut + AsMut<[u8]>> ReaddirFrame<'a, B> {
    /// Starts an Rreaddir for `tag` at the end of `buf`, carrying at most `count` entry bytes
    /// (the caller caps `count` at msize - 11). `buf` is a growable buffer whose `as_mut()` is its
    /// contents, such as `Vec<u8>` or `BytesMut`.
    pub fn begin(buf: &'a mut B, tag: u16, count: u32) -> Self {
        let start = buf.as_mut().len();
        let mut budget = usize::try_from(count).unwrap_or(usize::MAX);
        if buf.remaining_mut() < RREAD_HEADER_LEN {
            // No room even for the header: accept no entry rather than overrun the buffer.
            budget = 0;
        } else {
            buf.put_u32_le(0);
            buf.put_u8(msg::RREADDIR);
            buf.put_u16_le(tag);
            buf.put_u32_le(0);
        }
        Self {
            start,
            entries: DirentWriter::new(buf, budget),
        }
    }

    /// The entry writer (see [`DirentWriter::push`]).
    pub fn entries(&mut self) -> &mut DirentWriter<'a, B> {
        &mut self.entries
    }

    /// Patches the frame size and entry byte count; returns the frame length.
    pub fn finish(self) -> usize {
        let written = self.entries.written;
        let frame_len = RREAD_HEADER_LEN + written;
        let header = self
            .entries
            .buf
            .as_mut()
            .get_mut(self.start..self.start + RREAD_HEADER_LEN);
        if let Some(header) = header {
            // `count` never exceeds u32::MAX because the budget came from a u32.
            let count = u32::try_from(written).unwrap_or(u32::MAX);
            header[0..4].copy_from_slice(&count.saturating_add(11).to_le_bytes());
            header[7..11].copy_from_slice(&count.to_le_bytes());
        }
        frame_len
    }
}

/// Iterates over the entries of an Rreaddir payload; a malformed entry yields one error and ends.
#[derive(Debug)]
pub struct DirentIter {
    data: Bytes,
    pos: usize,
    failed: bool,
}

impl DirentIter {
    /// Iterates over `data`, the payload of an Rreaddir.
    pub fn new(data: Bytes) -> Self {
        Self {
            data,
            pos: 0,
            failed: false,
        }
    }
}

impl Iterator for DirentIter {
    type Item = Result<Dirent, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let mut r = Reader::new(&self.data, self.pos, "Rreaddir entry");
        let entry = (|| {
            Ok(Dirent {
                qid: r.qid("qid")?,
                offset: r.u64("offset")?,
                ty: r.u8("type")?,
                name: r.string("name")?,
            })
        })();
        match entry {
            Ok(d) => {
                self.pos += dirent_len(&d.name);
                Some(Ok(d))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
