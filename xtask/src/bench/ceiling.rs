//! The best streaming this machine can do without 9P, for scale.
//!
//! Write: one thread sends 1 MiB chunks into a socket, a second receives them into a ring of
//! four buffers, and a third writes them over a file on tmpfs (laid out beforehand, as the 9P
//! streaming test does). Read: one thread reads a
//! tmpfs file into the ring, a second sends the buffers into a socket, a third receives them.
//! These are the pipelines an ideal copying server would run (one copy between the socket and
//! its memory, one between its memory and the page cache), with no protocol, no framing, and
//! a client that does nothing but send or receive. A spliced read (file → pipe → socket by
//! `splice(2)`, no copy on the sending side) is measured too, as a splicing server would run it.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, Result};

const CHUNK: usize = 1 << 20;
const RING: usize = 4;

type Sender = Box<dyn Write + Send>;
type Receiver = Box<dyn Read + Send>;

/// A connected pair of `transport` ("unix" or "tcp", loopback) sockets.
fn socket_pair(transport: &str) -> Result<(Sender, Receiver)> {
    let (a, b) = socket_fds(transport)?;
    Ok((
        Box::new(std::fs::File::from(a)),
        Box::new(std::fs::File::from(b)),
    ))
}

/// The same pair as descriptors.
fn socket_fds(transport: &str) -> Result<(OwnedFd, OwnedFd)> {
    Ok(match transport {
        "unix" => {
            let (a, b) = std::os::unix::net::UnixStream::pair()?;
            // Room for two 1 MiB chunks in flight, as `ninepd` gives its unix connections
            // (TCP sizes its buffers itself).
            rustix::net::sockopt::set_socket_send_buffer_size(&a, 2 * CHUNK)?;
            (a.into(), b.into())
        }
        _ => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let a = std::net::TcpStream::connect(listener.local_addr()?)?;
            let (b, _) = listener.accept()?;
            a.set_nodelay(true)?;
            (a.into(), b.into())
        }
    })
}

/// MB/s for `bytes` written through a socket of `transport` over a file in `dir`.
pub fn write_ceiling(transport: &str, dir: &Path, bytes: u64) -> Result<f64> {
    let (mut tx, mut rx) = socket_pair(transport)?;
    let path = dir.join(format!("ceiling-{transport}"));
    let chunks = bytes.div_ceil(CHUNK as u64);
    let file = lay_out(&path, chunks)?;
    let start = Instant::now();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let data = vec![0x5a; CHUNK];
        for _ in 0..chunks {
            tx.write_all(&data)?;
        }
        Ok(())
    });
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(RING);
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(RING);
    for _ in 0..RING {
        free_tx.send(vec![0; CHUNK])?;
    }
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut offset = 0;
        for buf in full_rx {
            file.write_all_at(&buf, offset)?;
            offset += buf.len() as u64;
            // The receiver may already be done with the ring.
            let _ = free_tx.send(buf);
        }
        Ok(())
    });
    for _ in 0..chunks {
        let mut buf = free_rx.recv()?;
        rx.read_exact(&mut buf)?;
        full_tx.send(buf)?;
    }
    drop(full_tx);
    writer.join().expect("ceiling writer panicked")?;
    let elapsed = start.elapsed();
    sender.join().expect("ceiling sender panicked")?;
    std::fs::remove_file(&path)?;
    Ok(chunks as f64 * CHUNK as f64 / elapsed.as_secs_f64() / 1e6)
}

/// MB/s for `bytes` read from a file in `dir` and streamed through a socket of `transport`.
pub fn read_ceiling(transport: &str, dir: &Path, bytes: u64) -> Result<f64> {
    let (mut tx, mut rx) = socket_pair(transport)?;
    let path = dir.join(format!("ceiling-read-{transport}"));
    let chunks = bytes.div_ceil(CHUNK as u64);
    let file = lay_out(&path, chunks)?;
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(RING);
    let (full_tx, full_rx) = sync_channel::<Vec<u8>>(RING);
    for _ in 0..RING {
        free_tx.send(vec![0; CHUNK])?;
    }
    let start = Instant::now();
    let reader = std::thread::spawn(move || -> Result<()> {
        for i in 0..chunks {
            let mut buf = free_rx.recv()?;
            file.read_exact_at(&mut buf, i * CHUNK as u64)?;
            full_tx.send(buf)?;
        }
        Ok(())
    });
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        for buf in full_rx {
            tx.write_all(&buf)?;
            // The reader may already be done with the ring.
            let _ = free_tx.send(buf);
        }
        Ok(())
    });
    let mut buf = vec![0; CHUNK];
    for _ in 0..chunks {
        rx.read_exact(&mut buf)?;
    }
    let elapsed = start.elapsed();
    reader.join().expect("ceiling reader panicked")?;
    sender.join().expect("ceiling sender panicked")?;
    std::fs::remove_file(&path)?;
    Ok(chunks as f64 * CHUNK as f64 / elapsed.as_secs_f64() / 1e6)
}

/// MB/s for `bytes` of a file in `dir` spliced into a socket of `transport` (file → pipe →
/// socket, page references only) and received into one buffer.
pub fn spliced_read_ceiling(transport: &str, dir: &Path, bytes: u64) -> Result<f64> {
    use rustix::pipe::{SpliceFlags, fcntl_setpipe_size, pipe, splice};
    let (tx, rx) = socket_fds(transport)?;
    let path = dir.join(format!("ceiling-splice-{transport}"));
    let chunks = bytes.div_ceil(CHUNK as u64);
    let file = lay_out(&path, chunks)?;
    let (pipe_rx, pipe_tx) = pipe()?;
    fcntl_setpipe_size(&pipe_tx, CHUNK)?;
    let start = Instant::now();
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut offset = 0;
        while offset < chunks * CHUNK as u64 {
            let mut filled = splice(
                &file,
                Some(&mut offset),
                &pipe_tx,
                None,
                CHUNK,
                SpliceFlags::MOVE,
            )?;
            if filled == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            while filled > 0 {
                filled -= splice(&pipe_rx, None, &tx, None, filled, SpliceFlags::MOVE)?;
            }
        }
        Ok(())
    });
    let mut rx = std::fs::File::from(rx);
    let mut buf = vec![0; CHUNK];
    for _ in 0..chunks {
        rx.read_exact(&mut buf)?;
    }
    let elapsed = start.elapsed();
    sender.join().expect("ceiling sender panicked")?;
    std::fs::remove_file(&path)?;
    Ok(chunks as f64 * CHUNK as f64 / elapsed.as_secs_f64() / 1e6)
}

/// Creates `path` with `chunks` chunks of data, opened for reading and writing.
fn lay_out(path: &Path, chunks: u64) -> Result<std::fs::File> {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .context("ceiling file")?;
    let data = vec![0x5a; CHUNK];
    for i in 0..chunks {
        file.write_all_at(&data, i * CHUNK as u64)?;
    }
    Ok(file)
}
