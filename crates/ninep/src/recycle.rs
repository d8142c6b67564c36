//! Buffers for large frames, reused instead of freed.
//!
//! A 1 MiB Twrite or Rread read into a freshly allocated buffer costs 256 page faults (the
//! allocator hands blocks that large back to the kernel when they are freed), and growing a
//! shared receive buffer in steps copies the bytes already received. Reading each large frame
//! into a buffer of its own, taken from a small process-wide pool and returned when the last
//! [`Bytes`] referring to it drops, avoids both. The pool is bounded, so idle memory stays
//! under [`POOL_BYTES`].

use std::sync::Mutex;

use bytes::Bytes;

/// The most memory idle pooled buffers may hold, process-wide.
pub const POOL_BYTES: usize = 16 << 20;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `len` bytes.
pub fn take(len: usize) -> Vec<u8> {
    let reused = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The most recently returned buffer that fits: its bytes are likeliest still cached.
        let fit = pool.iter().rposition(|b| b.capacity() >= len);
        fit.map(|i| pool.remove(i))
    };
    reused.unwrap_or_else(|| Vec::with_capacity(len))
}

/// Wraps a filled buffer as [`Bytes`]; the buffer goes back to the pool when they drop.
pub fn freeze(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Recycled(buf))
}

/// Owns a buffer lent out as [`Bytes`].
struct Recycled(Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        let held: usize = pool.iter().map(Vec::capacity).sum();
        if held + buf.capacity() <= POOL_BYTES {
            pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool is process-wide: these tests take turns, each starting from an empty pool.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn turn() -> std::sync::MutexGuard<'static, ()> {
        let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        POOL.lock().unwrap_or_else(|e| e.into_inner()).clear();
        turn
    }

    #[test]
    fn a_dropped_frame_returns_its_buffer() {
        let _turn = turn();
        let len = 3 << 20;
        let mut buf = take(len);
        buf.resize(len, 7);
        let ptr = buf.as_ptr();
        let frame = freeze(buf);
        assert_eq!(frame.len(), len);
        assert!(frame.iter().all(|&b| b == 7));
        let part = frame.slice(10..20);
        drop(frame);
        // Still lent out through `part`: a new request must not get it.
        let other = take(len);
        assert_ne!(other.as_ptr(), ptr);
        drop(part);
        let again = take(len);
        assert_eq!(again.as_ptr(), ptr);
        assert!(again.is_empty());
    }

    #[test]
    fn the_pool_is_bounded() {
        let _turn = turn();
        let frames: Vec<Bytes> = (0..8).map(|_| freeze(take(2 << 20))).collect();
        drop(frames);
        let held: usize = POOL
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(Vec::capacity)
            .sum();
        assert!(held <= POOL_BYTES, "{held} bytes held");
    }
}
