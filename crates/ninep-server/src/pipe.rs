//! Pipes that carry Rread and Twrite payloads between a file and the connection without a
//! user-space copy.
//!
//! `splice(2)` moves page references: file → pipe takes the page-cache pages, and pipe →
//! socket hands them to the socket, so a read reply never passes through the server's memory.
//! The other way, socket → pipe takes the pages the client's bytes arrived in, and pipe →
//! file copies them once, into the page cache.
//! A pipe holds one payload at a time and goes back to its connection's pool once it is
//! drained; a pipe that still holds bytes (a flushed request, a broken connection) is closed
//! instead, so stale data can never reach another request.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

use crate::fs::ops;

/// Idle pipes a connection keeps for reuse (each pins up to `capacity` bytes of pages only
/// while it is full, but costs two descriptors).
const POOL_SIZE: usize = 4;

/// Pipes one connection may hold at once, idle or in use; beyond this, payloads are copied.
/// Each in-use pipe pins up to `capacity` bytes of pages and two descriptors, so a client
/// with many requests in flight must not multiply them.
const MAX_LIVE: usize = 16;

/// A pipe big enough for one reply's payload.
#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// A pipe holding at least `capacity` bytes. `EPERM` means the kernel will not size one so
    /// large (`fs.pipe-max-size`, or the user's pipe-buffer quota is used up).
    fn new(capacity: usize) -> Result<Pipe, Errno> {
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        let got = rustix::pipe::fcntl_setpipe_size(&write, capacity)?;
        if got < capacity {
            return Err(Errno::PERM);
        }
        Ok(Pipe {
            read,
            write,
            capacity: got,
        })
    }
}

/// The idle pipes of one connection.
#[derive(Debug)]
pub struct PipePool {
    capacity: usize,
    idle: Mutex<Vec<Pipe>>,
    /// Set once the kernel refused a pipe: the connection then copies, without asking again.
    refused: AtomicBool,
    /// Pipes handed out and not yet dropped.
    in_use: AtomicUsize,
}

impl PipePool {
    /// A pool of pipes that each hold `capacity` bytes (the payload of the largest Rread).
    pub fn new(capacity: usize) -> Arc<PipePool> {
        Arc::new(PipePool {
            capacity,
            idle: Mutex::new(Vec::new()),
            refused: AtomicBool::new(false),
            in_use: AtomicUsize::new(0),
        })
    }

    /// An empty pipe for a payload of up to `len` bytes, or `None` (the caller then copies).
    pub fn take(self: &Arc<Self>, len: usize) -> Option<Payload> {
        if len > self.capacity
            || self.refused.load(Ordering::Relaxed)
            || self.in_use.load(Ordering::Relaxed) >= MAX_LIVE
        {
            return None;
        }
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let pipe = match reused {
            Some(pipe) => pipe,
            None => match Pipe::new(self.capacity) {
                Ok(pipe) => pipe,
                // Out of descriptors or memory: copy this time, try again next time.
                Err(e) if e != Errno::PERM && e != Errno::INVAL => return None,
                Err(e) => {
                    tracing::info!(
                        capacity = self.capacity,
                        "no pipe of this size ({e}): this connection's reads are copied"
                    );
                    self.refused.store(true, Ordering::Relaxed);
                    return None;
                }
            },
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        Some(Payload {
            pipe: Some(pipe),
            len: 0,
            pool: Arc::downgrade(self),
        })
    }
}

/// Bytes waiting in a pipe to be spliced into the connection.
///
/// Dropping it returns the pipe to its pool when it was drained and closes it otherwise.
#[derive(Debug)]
pub struct Payload {
    pipe: Option<Pipe>,
    len: usize,
    pool: Weak<PipePool>,
}

impl Payload {
    /// Bytes still in the pipe.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the pipe has been drained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many of the `count` bytes at `offset` must be copied rather than spliced for the
    /// rest to fit in the pipe: those up to the first page boundary when the payload starts
    /// inside a page and would need one page reference more than the pipe holds, else none.
    pub fn head_to_copy(&self, offset: u64, count: usize) -> usize {
        if count <= self.room_from(offset) {
            return 0;
        }
        let page = rustix::param::page_size();
        (page - (offset % page as u64) as usize).min(count)
    }

    /// How many bytes of a file starting at `offset` still fit: a pipe holds `capacity / PAGE`
    /// page references, and a payload that starts inside a page needs one more than its
    /// length suggests.
    fn room_from(&self, offset: u64) -> usize {
        let Some(pipe) = &self.pipe else {
            return 0;
        };
        let misalign = (offset % rustix::param::page_size() as u64) as usize;
        pipe.capacity.saturating_sub(self.len + misalign)
    }

    /// Fills the pipe with up to `count` bytes of `file` at `offset`; returns how many (fewer
    /// only at end of file). Blocks while the file's pages are read in.
    ///
    /// `Err(INVAL)` means the file cannot be spliced (some special filesystems); the caller
    /// should fall back to copying.
    pub fn fill_from(
        &mut self,
        file: impl AsFd,
        offset: u64,
        count: usize,
    ) -> Result<usize, Errno> {
        // Stop short of a page that would not fit (see `head_to_copy`, which lets Rread avoid
        // this; a short reply is still correct, the client asks again from there).
        let count = count.min(self.room_from(offset));
        let Some(pipe) = &self.pipe else {
            return Err(Errno::BADF);
        };
        let mut off = offset;
        let mut filled = 0;
        while filled < count {
            match rustix::pipe::splice(
                file.as_fd(),
                Some(&mut off),
                &pipe.write,
                None,
                count - filled,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            ) {
                Ok(0) | Err(Errno::AGAIN) => break,
                Ok(n) => {
                    filled += n;
                    self.len += n;
                }
                Err(Errno::INTR) => continue,
                Err(e) if filled == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(filled)
    }

    /// Moves bytes from the pipe into `out` (a non-blocking socket); returns how many, or
    /// `Err(AGAIN)` when the socket is full.
    pub fn splice_into(&mut self, out: impl AsFd) -> Result<usize, Errno> {
        let Some(pipe) = &self.pipe else {
            return Err(Errno::BADF);
        };
        let n = rustix::pipe::splice(
            &pipe.read,
            None,
            out,
            None,
            self.len,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )?;
        if n == 0 && self.len > 0 {
            return Err(Errno::PIPE);
        }
        self.len -= n;
        Ok(n)
    }
}

/// Socket → pipe → file, for Twrite payloads.
impl Payload {
    /// Moves up to `max` bytes from `socket` (non-blocking) into the pipe. `Err(AGAIN)` when
    /// the socket has nothing or the pipe is full; `Ok(0)` at the end of the stream.
    pub fn fill_from_socket(&mut self, socket: impl AsFd, max: usize) -> Result<usize, Errno> {
        let Some(pipe) = &self.pipe else {
            return Err(Errno::BADF);
        };
        let n = rustix::pipe::splice(
            socket,
            None,
            &pipe.write,
            None,
            max,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        )?;
        self.len += n;
        Ok(n)
    }

    /// Copies everything in the pipe to the end of `out`, leaving it empty.
    pub fn drain_into(&mut self, out: &mut Vec<u8>) -> Result<(), Errno> {
        let Some(pipe) = &self.pipe else {
            return Err(Errno::BADF);
        };
        let mut at = out.len();
        out.resize(at + self.len, 0);
        while self.len > 0 {
            // The bytes are in the pipe, so this read does not wait.
            match rustix::io::read(&pipe.read, &mut out[at..]) {
                Ok(0) => {
                    out.truncate(at);
                    return Err(Errno::PIPE);
                }
                Ok(n) => {
                    at += n;
                    self.len -= n;
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    out.truncate(at);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Moves the pipe's bytes into `file` at `*offset`, advancing it; returns how many were
    /// written before the file refused more (only the first refusal is an error).
    pub fn write_into(&mut self, file: impl AsFd, offset: &mut u64) -> Result<usize, Errno> {
        let Some(pipe) = &self.pipe else {
            return Err(Errno::BADF);
        };
        let mut written = 0;
        while self.len > 0 {
            match rustix::pipe::splice(
                &pipe.read,
                None,
                file.as_fd(),
                Some(offset),
                self.len,
                SpliceFlags::MOVE,
            ) {
                Ok(0) => break,
                Ok(n) => {
                    written += n;
                    self.len -= n;
                }
                Err(Errno::INTR) => {}
                Err(e) if written == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(written)
    }
}

/// A Twrite payload: bytes in memory, followed by the rest of it waiting in a pipe.
#[derive(Debug)]
pub struct WritePayload {
    head: Bytes,
    piped: Option<Payload>,
}

impl WritePayload {
    /// `head`, then whatever `piped` holds.
    pub fn new(head: Bytes, piped: Option<Payload>) -> Self {
        Self { head, piped }
    }

    /// How many bytes the payload holds.
    pub fn len(&self) -> usize {
        self.head.len() + self.piped.as_ref().map_or(0, Payload::len)
    }

    /// Whether part of the payload waits in a pipe (it was spliced from the socket).
    pub fn is_piped(&self) -> bool {
        self.piped.is_some()
    }

    /// The whole payload in memory (copying out what waits in the pipe).
    pub fn into_bytes(self) -> Result<Bytes, Errno> {
        let Some(mut piped) = self.piped else {
            return Ok(self.head);
        };
        let mut all = Vec::with_capacity(self.head.len() + piped.len());
        all.extend_from_slice(&self.head);
        piped.drain_into(&mut all)?;
        Ok(all.into())
    }

    /// Writes the payload into `file` at `offset` and returns how many bytes were written (a
    /// short count when the file refused the rest part-way). Blocks like `pwrite(2)`.
    pub fn write_at(self, file: impl AsFd, offset: u64) -> Result<usize, Errno> {
        let file = file.as_fd();
        let mut written = 0;
        if !self.head.is_empty() {
            written = ops::write(file, offset, &self.head)?;
            if written < self.head.len() {
                return Ok(written);
            }
        }
        let Some(mut piped) = self.piped else {
            return Ok(written);
        };
        let mut at = offset + written as u64;
        match piped.write_into(file, &mut at) {
            Ok(n) => Ok(written + n),
            // Not a file splice can write to (or opened for appending): copy the rest.
            Err(Errno::INVAL) => {
                let mut rest = Vec::with_capacity(piped.len());
                piped.drain_into(&mut rest)?;
                match ops::write(file, at, &rest) {
                    Ok(n) => Ok(written + n),
                    Err(_) if written > 0 => Ok(written),
                    Err(e) => Err(e),
                }
            }
            Err(_) if written > 0 => Ok(written),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        pool.in_use.fetch_sub(1, Ordering::Relaxed);
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        if self.len != 0 {
            return;
        }
        let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_SIZE {
            idle.push(pipe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    const CAP: usize = 64 * 1024;

    fn file_of(len: usize) -> (std::fs::File, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&data).unwrap();
        (f, data)
    }

    fn idle(pool: &PipePool) -> usize {
        pool.idle.lock().unwrap().len()
    }

    #[test]
    fn a_drained_pipe_goes_back_to_the_pool_and_a_full_one_does_not() {
        let pool = PipePool::new(CAP);
        let (file, data) = file_of(3 * CAP);
        let mut payload = pool.take(CAP).unwrap();
        assert_eq!(payload.fill_from(&file, 0, CAP).unwrap(), CAP);
        let (mut rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0; CAP];
            rx.read_exact(&mut got).unwrap();
            got
        });
        while !payload.is_empty() {
            match payload.splice_into(&tx) {
                Ok(_) | Err(Errno::AGAIN) => {}
                Err(e) => panic!("splice: {e}"),
            }
        }
        assert_eq!(reader.join().unwrap(), data[..CAP]);
        drop(payload);
        assert_eq!(idle(&pool), 1, "a drained pipe is kept");

        let mut full = pool.take(CAP).unwrap();
        assert_eq!(idle(&pool), 0, "the kept pipe is reused");
        assert!(full.fill_from(&file, CAP as u64, 100).unwrap() == 100);
        drop(full);
        assert_eq!(
            idle(&pool),
            0,
            "a pipe with bytes left is closed, never reused"
        );
    }

    #[test]
    fn a_payload_starting_inside_a_page_stops_short_of_the_page_that_would_not_fit() {
        let pool = PipePool::new(CAP);
        let (file, _) = file_of(3 * CAP);
        let mut payload = pool.take(CAP).unwrap();
        let n = payload.fill_from(&file, 100, CAP).unwrap();
        let page = rustix::param::page_size();
        assert_eq!(n, CAP - 100, "up to the end of the last whole page");
        assert_eq!((100 + n) % page, 0);
        // At end of file: what is left.
        let mut tail = pool.take(CAP).unwrap();
        assert_eq!(tail.fill_from(&file, 3 * CAP as u64 - 10, CAP).unwrap(), 10);
        let mut past = pool.take(CAP).unwrap();
        assert_eq!(past.fill_from(&file, 4 * CAP as u64, CAP).unwrap(), 0);
        assert!(
            pool.take(CAP + 1).is_none(),
            "larger than any pipe of the pool"
        );
    }

    /// A pipe holding `data`, spliced in from a socket pair.
    fn piped(pool: &Arc<PipePool>, data: &[u8]) -> Payload {
        let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
        tx.write_all(data).unwrap();
        let mut payload = pool.take(data.len()).unwrap();
        let mut got = 0;
        while got < data.len() {
            got += payload.fill_from_socket(&rx, data.len() - got).unwrap();
        }
        payload
    }

    #[test]
    fn a_write_payload_lands_head_first_then_the_piped_rest() {
        let pool = PipePool::new(CAP);
        let (file, _) = file_of(0);
        let head: Vec<u8> = (0..5000).map(|i| (i % 7) as u8).collect();
        let rest: Vec<u8> = (0..CAP - 100).map(|i| (i % 13) as u8).collect();
        let data = WritePayload::new(head.clone().into(), Some(piped(&pool, &rest)));
        assert_eq!(data.write_at(&file, 10).unwrap(), head.len() + rest.len());
        let mut on_disk = Vec::new();
        (&file).read_to_end(&mut on_disk).unwrap();
        assert_eq!(on_disk[..10], [0; 10]);
        assert!(on_disk[10..] == [head, rest].concat());
        assert_eq!(idle(&pool), 1, "the drained pipe is kept");
    }

    #[test]
    fn a_file_splice_cannot_write_gets_the_piped_rest_copied() {
        let pool = PipePool::new(CAP);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"start").unwrap();
        // Splicing into a file opened for appending fails with EINVAL.
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let data = WritePayload::new(
            bytes::Bytes::from_static(b"-head-"),
            Some(piped(&pool, b"rest")),
        );
        assert_eq!(data.write_at(&file, 0).unwrap(), 10);
        assert_eq!(std::fs::read(&path).unwrap(), b"start-head-rest");
    }

    #[test]
    fn a_write_payload_comes_out_whole_in_memory() {
        let pool = PipePool::new(CAP);
        let data = WritePayload::new(
            bytes::Bytes::from_static(b"abc"),
            Some(piped(&pool, b"defg")),
        );
        assert_eq!(&data.into_bytes().unwrap()[..], b"abcdefg");
        assert_eq!(idle(&pool), 1, "the pipe was drained");
        let alone = WritePayload::new(bytes::Bytes::from_static(b"xyz"), None);
        assert_eq!(&alone.into_bytes().unwrap()[..], b"xyz");
    }

    #[test]
    fn a_connection_holds_a_bounded_number_of_pipes() {
        let pool = PipePool::new(CAP);
        let held: Vec<_> = (0..MAX_LIVE).map(|_| pool.take(CAP).unwrap()).collect();
        assert!(pool.take(CAP).is_none(), "one pipe too many");
        drop(held);
        assert!(pool.take(CAP).is_some(), "dropped pipes count no more");
    }
}
