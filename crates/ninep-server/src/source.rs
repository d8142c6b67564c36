//! The incoming half of a connection, and Twrite payloads taken out of it by `splice(2)`.

use std::future::Future;
use std::io;

use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::io::{AsyncRead, Interest};

use crate::busy_poll::BusyPoll;
use crate::pipe::Payload;
use crate::socket::{PolledSocket, when_ready};

/// Where a connection's requests come from.
pub trait RequestSource: AsyncRead + Unpin + Send + 'static {
    /// Whether Twrite payloads can be spliced out of this connection (it is a socket the
    /// server polls).
    fn can_splice(&self) -> bool {
        false
    }

    /// Moves the next `len` bytes of the stream into `payload`'s pipe. Should the pipe fill
    /// up first, its bytes are copied onto the end of `spill` to make room: `spill`, then the
    /// pipe, hold the bytes in order.
    fn splice_into(
        &mut self,
        len: usize,
        payload: &mut Payload,
        spill: &mut Vec<u8>,
    ) -> impl Future<Output = io::Result<()>> + Send {
        let _ = (len, payload, spill);
        async { Err(io::Error::from(io::ErrorKind::Unsupported)) }
    }
}

/// Unix sockets: Twrite payloads are copied. Splicing them gained nothing there (1 GiB written
/// at msize 1 MiB: 2.35 GB/s spliced against 2.46-2.57 GB/s copied, the same server CPU time).
impl RequestSource for BusyPoll<tokio::net::unix::OwnedReadHalf> {}

/// TCP: Twrite payloads beyond the first received bytes go socket → pipe → file, saving the
/// copy into the server's memory (1 GiB written at msize 1 MiB: 2.35-2.46 GB/s spliced against
/// 2.04-2.26 GB/s copied, with 490 against 550-600 ms of server CPU time).
impl RequestSource for BusyPoll<tokio::net::tcp::OwnedReadHalf> {
    fn can_splice(&self) -> bool {
        true
    }

    async fn splice_into(
        &mut self,
        len: usize,
        payload: &mut Payload,
        spill: &mut Vec<u8>,
    ) -> io::Result<()> {
        let socket: &tokio::net::TcpStream = self.get_ref().as_ref();
        splice_from(socket, len, payload, spill).await
    }
}

/// Standard input that is neither a socket nor a pipe (`trans=fd`, see `stdio.rs`) is read
/// through the runtime's blocking threads: no splice.
impl RequestSource for tokio::io::Stdin {}

/// A pipe on standard input (`trans=fd`): Twrite payloads are copied.
impl RequestSource for tokio::net::unix::pipe::Receiver {}

/// Either half of a split stream (in-memory streams in tests, for one): no splice.
impl<T: AsyncRead + Send + 'static> RequestSource for tokio::io::ReadHalf<T> {}

/// Splices `len` bytes from `socket` into the pipe, as they arrive.
async fn splice_from(
    socket: &impl PolledSocket,
    mut len: usize,
    payload: &mut Payload,
    spill: &mut Vec<u8>,
) -> io::Result<()> {
    while len > 0 {
        len -= when_ready(socket, Interest::READABLE, || {
            match payload.fill_from_socket(socket, len) {
                Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => Ok(n),
                Err(Errno::AGAIN) => make_room(socket, len, payload, spill),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
    }
    Ok(())
}

/// After a splice took nothing: `WouldBlock` if the socket is empty (the runtime's readiness
/// is then cleared, and the next bytes set it again). Otherwise the pipe is full, or the
/// bytes arrived just after the splice looked: a pipe holding bytes is copied out onto
/// `spill` to make room, and an empty one has a few of the socket's bytes copied past it
/// (never a wait on bytes that are already there). Returns how many bytes left the socket.
fn make_room(
    socket: &impl PolledSocket,
    len: usize,
    payload: &mut Payload,
    spill: &mut Vec<u8>,
) -> io::Result<usize> {
    let waiting = rustix::io::ioctl_fionread(socket)?;
    if waiting == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    if !payload.is_empty() {
        payload.drain_into(spill)?;
        return Ok(0);
    }
    let at = spill.len();
    let want = len.min(usize::try_from(waiting).unwrap_or(usize::MAX));
    spill.resize(at + want, 0);
    let got = rustix::net::recv(socket, &mut spill[at..], RecvFlags::DONTWAIT);
    let n = got.map_or(0, |(n, _)| n);
    spill.truncate(at + n);
    match got {
        Ok((0, _)) => Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => Ok(n),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipe::PipePool;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn bytes_beyond_a_full_pipe_are_spilled_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut tx = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        tx.set_nodelay(true).unwrap();
        let (rx, _) = listener.accept().await.unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(1500) {
                tx.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            tx
        });
        // A one-page pipe is full after one segment: most bytes must go through the spill.
        let pool = PipePool::new(4096);
        let mut payload = pool.take(4096).unwrap();
        let mut spill = Vec::new();
        splice_from(&rx, data.len(), &mut payload, &mut spill)
            .await
            .unwrap();
        assert!(!spill.is_empty(), "the pipe never filled up");
        payload.drain_into(&mut spill).unwrap();
        assert!(spill == data, "bytes lost or reordered");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_stream_ending_inside_the_payload_is_an_error() {
        let (mut tx, rx) = tokio::net::UnixStream::pair().unwrap();
        tx.write_all(&[1; 1000]).await.unwrap();
        drop(tx);
        let pool = PipePool::new(64 * 1024);
        let mut payload = pool.take(5000).unwrap();
        let err = splice_from(&rx, 5000, &mut payload, &mut Vec::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn bytes_a_splice_did_not_take_from_an_empty_pipe_are_copied_past_it() {
        let (mut tx, rx) = tokio::net::UnixStream::pair().unwrap();
        tx.write_all(b"0123456789").await.unwrap();
        let pool = PipePool::new(64 * 1024);
        let mut payload = pool.take(4096).unwrap();
        let mut spill = b"ab".to_vec();
        assert_eq!(make_room(&rx, 4, &mut payload, &mut spill).unwrap(), 4);
        assert_eq!(spill, b"ab0123");
        assert_eq!(make_room(&rx, 100, &mut payload, &mut spill).unwrap(), 6);
        assert_eq!(spill, b"ab0123456789");
        let err = make_room(&rx, 100, &mut payload, &mut spill).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::WouldBlock,
            "an empty socket waits"
        );
    }
}
