//! The `fd` transport: standard input and output, served as what they really are.
//!
//! Through tokio's `Stdin`, every read waits on one of the runtime's blocking threads: each
//! request costs a hand-off between threads, and a read in progress cannot be cancelled, so a
//! stopping server would wait for the client's next byte. A socket (a socketpair from a mount
//! helper, a connection handed over by inetd) is therefore served as a socket, with splicing
//! and busy-polling like an accepted one, and pipes as non-blocking pipes. Anything else (a
//! terminal, a file) falls back to tokio's blocking `Stdin` and `Stdout`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{FileType, OFlags};
use rustix::net::{AddressFamily, SocketType};

/// What standard input and output turned out to be.
#[derive(Debug)]
pub enum Stdio {
    /// One unix stream socket on both.
    Unix(tokio::net::UnixStream),
    /// One TCP socket on both.
    Tcp(tokio::net::TcpStream),
    /// A pipe on each.
    Pipes(
        tokio::net::unix::pipe::Receiver,
        tokio::net::unix::pipe::Sender,
    ),
    /// Something else: read and written through the runtime's blocking threads.
    Blocking,
}

impl Stdio {
    /// What the log calls it.
    pub fn describe(&self) -> &'static str {
        match self {
            Stdio::Unix(_) => "a unix socket",
            Stdio::Tcp(_) => "a TCP socket",
            Stdio::Pipes(..) => "pipes",
            Stdio::Blocking => "read and written by blocking threads",
        }
    }
}

/// Looks at standard input and output. The streams returned are non-blocking duplicates of
/// them; `StatusFlags` restores their blocking mode, which they share with whoever passed
/// them, when dropped.
pub fn open() -> io::Result<(Stdio, StatusFlags)> {
    let saved = StatusFlags::save()?;
    let (input, output) = (io::stdin(), io::stdout());
    let (input, output) = (input.as_fd(), output.as_fd());
    let in_stat = rustix::fs::fstat(input)?;
    let out_stat = rustix::fs::fstat(output)?;
    let same = (in_stat.st_dev, in_stat.st_ino) == (out_stat.st_dev, out_stat.st_ino);
    let stdio = match FileType::from_raw_mode(in_stat.st_mode) {
        // Other families (vsock, for one) stay blocking: tokio has no stream type for them.
        FileType::Socket if same && is_stream(input) => {
            match rustix::net::sockopt::socket_domain(input)? {
                AddressFamily::UNIX => {
                    let fd = nonblocking_dup(input)?;
                    Stdio::Unix(tokio::net::UnixStream::from_std(OwnedFd::into(fd))?)
                }
                AddressFamily::INET | AddressFamily::INET6 => {
                    let fd = nonblocking_dup(input)?;
                    Stdio::Tcp(tokio::net::TcpStream::from_std(OwnedFd::into(fd))?)
                }
                _ => Stdio::Blocking,
            }
        }
        FileType::Fifo if FileType::from_raw_mode(out_stat.st_mode) == FileType::Fifo => {
            Stdio::Pipes(
                tokio::net::unix::pipe::Receiver::from_owned_fd(input.try_clone_to_owned()?)?,
                tokio::net::unix::pipe::Sender::from_owned_fd(output.try_clone_to_owned()?)?,
            )
        }
        _ => Stdio::Blocking,
    };
    Ok((stdio, saved))
}

fn is_stream(socket: BorrowedFd<'_>) -> bool {
    rustix::net::sockopt::socket_type(socket).is_ok_and(|ty| ty == SocketType::STREAM)
}

fn nonblocking_dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let dup = fd.try_clone_to_owned()?;
    let flags = rustix::fs::fcntl_getfl(&dup)?;
    rustix::fs::fcntl_setfl(&dup, flags | OFlags::NONBLOCK)?;
    Ok(dup)
}

/// The status flags standard input and output had at start (above all `O_NONBLOCK`, which a
/// non-blocking duplicate sets on the description they share), put back on drop.
#[derive(Debug)]
pub struct StatusFlags {
    input: OFlags,
    output: OFlags,
}

impl StatusFlags {
    fn save() -> io::Result<StatusFlags> {
        Ok(StatusFlags {
            input: rustix::fs::fcntl_getfl(io::stdin())?,
            output: rustix::fs::fcntl_getfl(io::stdout())?,
        })
    }
}

impl Drop for StatusFlags {
    fn drop(&mut self) {
        let _ = rustix::fs::fcntl_setfl(io::stdout(), self.output);
        let _ = rustix::fs::fcntl_setfl(io::stdin(), self.input);
    }
}
