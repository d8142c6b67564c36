//! The outgoing half of a connection, and replies on their way into it.

use std::future::Future;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter, Interest};

use crate::pipe::Payload;
use crate::socket::when_ready;

/// A reply ready to be written.
#[derive(Debug)]
pub enum Outgoing {
    /// A whole encoded frame.
    Frame(Vec<u8>),
    /// The start of a frame (an Rread header) followed by a payload waiting in a pipe.
    Spliced { header: Vec<u8>, payload: Payload },
}

impl From<Vec<u8>> for Outgoing {
    fn from(frame: Vec<u8>) -> Self {
        Outgoing::Frame(frame)
    }
}

/// Where a connection's replies go.
pub trait ReplySink: AsyncWrite + Unpin + Send + 'static {
    /// Whether payloads can be spliced into this connection (it is a socket the server polls).
    fn can_splice(&self) -> bool {
        false
    }

    /// Moves the whole payload into the connection, waiting while the socket is full.
    fn splice_from(
        &mut self,
        payload: &mut Payload,
    ) -> impl Future<Output = io::Result<()>> + Send {
        let _ = payload;
        async { Err(io::Error::from(io::ErrorKind::Unsupported)) }
    }
}

/// Unix sockets: the payload goes from the pipe to the socket with `splice(2)`, driven by the
/// runtime's readiness events like any other write.
impl ReplySink for tokio::net::unix::OwnedWriteHalf {
    fn can_splice(&self) -> bool {
        true
    }

    async fn splice_from(&mut self, payload: &mut Payload) -> io::Result<()> {
        let socket: &tokio::net::UnixStream = self.as_ref();
        while !payload.is_empty() {
            when_ready(socket, Interest::WRITABLE, || {
                Ok(payload.splice_into(socket)?)
            })
            .await?;
        }
        Ok(())
    }
}

/// TCP: payloads are copied. Spliced pages were no faster over loopback TCP and twice as
/// spread (1 GiB read at msize 1 MiB: 2.6-4.0 GB/s spliced against 2.7-3.7 GB/s copied), and
/// the client, copying from cold page-cache pages one 4 KiB fragment at a time, spends up to
/// twice the CPU time per byte.
impl ReplySink for tokio::net::tcp::OwnedWriteHalf {}

/// Standard output that is neither a socket nor a pipe (`trans=fd`, see `stdio.rs`) is
/// written through the runtime's blocking threads: no splice.
impl ReplySink for tokio::io::Stdout {}

/// A pipe on standard output (`trans=fd`): replies are copied.
impl ReplySink for tokio::net::unix::pipe::Sender {}

/// Either half of a split stream (in-memory streams in tests, for one): no splice.
impl<T: AsyncWrite + Send + 'static> ReplySink for tokio::io::WriteHalf<T> {}

/// Writes one reply into the buffered connection.
pub async fn write_reply<W: ReplySink>(out: &mut BufWriter<W>, reply: Outgoing) -> io::Result<()> {
    match reply {
        Outgoing::Frame(frame) => out.write_all(&frame).await,
        Outgoing::Spliced {
            header,
            mut payload,
        } => {
            out.write_all(&header).await?;
            out.flush().await?;
            out.get_mut().splice_from(&mut payload).await
        }
    }
}
