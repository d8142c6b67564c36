//! Pipes that carry Rread payloads from a file to the connection without a user-space copy.
//!
//! `splice(2)` moves page references: file → pipe takes the page-cache pages, and pipe →
//! socket hands them to the socket, so a read reply never passes through the server's memory.
//! A pipe holds one reply's payload at a time and goes back to its connection's pool once it
//! is drained; a pipe that still holds bytes (a flushed request, a broken connection) is
//! closed instead, so stale data can never reach another reply.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, SpliceFlags};

/// Idle pipes a connection keeps for reuse (each pins up to `capacity` bytes of pages only
/// while it is full, but costs two descriptors).
const POOL_SIZE: usize = 4;

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
}

impl PipePool {
    /// A pool of pipes that each hold `capacity` bytes (the payload of the largest Rread).
    pub fn new(capacity: usize) -> Arc<PipePool> {
        Arc::new(PipePool {
            capacity,
            idle: Mutex::new(Vec::new()),
            refused: AtomicBool::new(false),
        })
    }

    /// An empty pipe for a payload of up to `len` bytes, or `None` (the caller then copies).
    pub fn take(self: &Arc<Self>, len: usize) -> Option<Payload> {
        if len > self.capacity || self.refused.load(Ordering::Relaxed) {
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
        let Some(pipe) = &self.pipe else {
            return Err(Errno::BADF);
        };
        // A pipe holds `capacity / PAGE` page references, and a payload that starts inside a
        // page needs one more than its length suggests: stop short of the page that would not
        // fit (a short Rread; the client asks again from there, at a page boundary).
        let page = rustix::param::page_size() as u64;
        let misalign = (offset % page) as usize;
        let count = count.min(pipe.capacity.saturating_sub(self.len + misalign));
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

impl Drop for Payload {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        if self.len != 0 {
            return;
        }
        if let Some(pool) = self.pool.upgrade() {
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < POOL_SIZE {
                idle.push(pipe);
            }
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
}
