//! Connecting to the server: one blocking socket, whatever the transport.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::source::Address;

/// How long connecting, and each step of the exchange, may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A connected socket.
#[derive(Debug)]
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Vsock(vsock::VsockStream),
}

/// Connects to `address`, with [`TIMEOUT`] on each read and write until
/// [`Conn::end_timeouts`].
pub fn connect(address: &Address) -> io::Result<Conn> {
    let conn = match address {
        Address::Tcp { host, port } => Conn::Tcp(connect_tcp(host, *port)?),
        Address::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
        Address::Vsock { cid, port } => {
            Conn::Vsock(vsock::VsockStream::connect_with_cid_port(*cid, *port)?)
        }
    };
    conn.set_timeouts(Some(TIMEOUT))?;
    Ok(conn)
}

fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

impl Conn {
    fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Conn::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Conn::Vsock(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }

    /// Clears the timeouts before the kernel takes the socket over.
    pub fn end_timeouts(&self) -> io::Result<()> {
        self.set_timeouts(None)
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
            Conn::Vsock(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
            Conn::Vsock(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
            Conn::Vsock(s) => s.as_raw_fd(),
        }
    }
}
