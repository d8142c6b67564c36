//! Encoding in two passes over one field list: a [`Counter`] sizes and validates the body,
//! then a [`Writer`] emits it, so a failed encode leaves the output buffer untouched.

use bytes::BufMut;

use crate::error::EncodeError;
use crate::qid::Qid;
use crate::wire;

/// Where a message body's fields go.
pub(crate) trait Sink {
    fn u8(&mut self, v: u8);
    fn u16(&mut self, v: u16);
    fn u32(&mut self, v: u32);
    fn u64(&mut self, v: u64);
    /// A `len[2] bytes` string.
    fn string(&mut self, s: &[u8]);
    /// A `count[4] bytes` payload.
    fn payload(&mut self, d: &[u8]);
    fn qid(&mut self, q: &Qid) {
        self.u8(q.ty);
        self.u32(q.version);
        self.u64(q.path);
    }
    /// Reports a message-level error (too many walk elements).
    fn fail(&mut self, e: EncodeError);
}

/// Counts the body length and remembers the first error.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    pub(crate) len: usize,
    pub(crate) error: Option<EncodeError>,
}

impl Counter {
    fn add(&mut self, n: usize) {
        self.len = self.len.saturating_add(n);
    }
}

impl Sink for Counter {
    fn u8(&mut self, _: u8) {
        self.add(1);
    }
    fn u16(&mut self, _: u16) {
        self.add(2);
    }
    fn u32(&mut self, _: u32) {
        self.add(4);
    }
    fn u64(&mut self, _: u64) {
        self.add(8);
    }
    fn string(&mut self, s: &[u8]) {
        match wire::string_len(s) {
            Ok(n) => self.add(n),
            Err(e) => self.fail(e),
        }
    }
    fn payload(&mut self, d: &[u8]) {
        if u32::try_from(d.len()).is_err() {
            self.fail(EncodeError::FrameTooLarge(d.len()));
        }
        self.add(4 + d.len());
    }
    fn fail(&mut self, e: EncodeError) {
        self.error.get_or_insert(e);
    }
}

/// Writes fields that a [`Counter`] already validated.
#[derive(Debug)]
pub(crate) struct Writer<'a, B>(pub(crate) &'a mut B);

impl<B: BufMut> Sink for Writer<'_, B> {
    fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.put_u16_le(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.put_u32_le(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.put_u64_le(v);
    }
    fn string(&mut self, s: &[u8]) {
        wire::put_string(self.0, s);
    }
    fn payload(&mut self, d: &[u8]) {
        self.0
            .put_u32_le(u32::try_from(d.len()).unwrap_or(u32::MAX));
        self.0.put_slice(d);
    }
    fn fail(&mut self, _: EncodeError) {}
}

/// A message that can list its body fields into a [`Sink`].
pub(crate) trait Body {
    /// The message type byte.
    fn ty(&self) -> u8;
    /// Emits every body field in wire order.
    fn fields<S: Sink>(&self, s: &mut S);
}

/// Encodes one frame: sizes and validates the body, then writes header and body into `buf`.
pub(crate) fn encode_frame<B: BufMut, M: Body>(
    buf: &mut B,
    tag: u16,
    msg: &M,
) -> Result<(), EncodeError> {
    let mut counter = Counter::default();
    msg.fields(&mut counter);
    if let Some(e) = counter.error {
        return Err(e);
    }
    wire::put_header(buf, counter.len, msg.ty(), tag)?;
    msg.fields(&mut Writer(buf));
    Ok(())
}

/// The encoded size of a frame (header included), or why it cannot be encoded.
pub(crate) fn frame_len<M: Body>(msg: &M) -> Result<usize, EncodeError> {
    let mut counter = Counter::default();
    msg.fields(&mut counter);
    match counter.error {
        Some(e) => Err(e),
        None => Ok(counter.len.saturating_add(crate::consts::HEADER_LEN)),
    }
}
