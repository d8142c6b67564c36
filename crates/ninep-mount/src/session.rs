//! What mount.ninep says to the server before the kernel takes the connection over: Tversion,
//! Tauth with a MUNGE credential when the server asks for one, and a trial Tattach, so that a
//! refusal is reported here with its reason instead of as the kernel's bare mount error.
//!
//! The server keeps what authentication established for the connection across the kernel's
//! own Tversion (as diod does), so the kernel's attaches act as the user authenticated here.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::Bytes;
use ninep::consts::{NOFID, VERSION_9P2000_L};
use ninep::munge::{HEADER_LEN, Kind};
use ninep::{Request, Response};

/// The msize of mount.ninep's own exchange; the kernel negotiates its own afterwards.
const MSIZE: u32 = 64 * 1024;
const AFID: u32 = 1;
const FID: u32 = 2;
/// How long mount.ninep waits for munged.
const MUNGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server cannot be mounted.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("lost the connection: {0}")]
    Io(#[from] io::Error),
    #[error("the server sent something that is not a 9P2000.L reply: {0}")]
    Protocol(String),
    #[error("the server does not speak 9P2000.L (it answered version `{0}`)")]
    Version(String),
    #[error("the server refused authentication: {0}")]
    AuthRefused(io::Error),
    #[error("the server asks for MUNGE authentication, and munged did not give a credential: {0}")]
    Munge(String),
    #[error("the server refused the attach{aname}: {error}")]
    AttachRefused { aname: String, error: io::Error },
}

/// Who attaches, and to what.
#[derive(Debug, Clone)]
pub struct Attach<'a> {
    pub uname: &'a str,
    pub aname: &'a str,
    pub n_uname: u32,
    /// The munged socket a credential is encoded with, if the server asks for one.
    pub munge_socket: &'a str,
}

/// What happened, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub msize: u32,
    pub authenticated: bool,
}

/// A blocking 9P exchange over the connection.
struct Wire<'s, S> {
    stream: &'s mut S,
    msize: u32,
}

impl<S: Read + Write> Wire<'_, S> {
    fn call(&mut self, request: Request) -> Result<Response, SessionError> {
        let mut frame = Vec::new();
        request
            .encode(0, &mut frame)
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = u32::from_le_bytes(size);
        if size < 7 || size > self.msize {
            return Err(SessionError::Protocol(format!("a frame of {size} bytes")));
        }
        let mut reply = vec![0u8; size as usize];
        reply[..4].copy_from_slice(&size.to_le_bytes());
        self.stream.read_exact(&mut reply[4..])?;
        let (_, response) = Response::decode_limited(&Bytes::from(reply), self.msize)
            .map_err(|e| SessionError::Protocol(e.to_string()))?;
        Ok(response)
    }
}

/// The error an Rlerror carries (`EIO` for a number that does not fit).
fn os_error(ecode: u32) -> io::Error {
    let eio = rustix::io::Errno::IO.raw_os_error();
    io::Error::from_raw_os_error(i32::try_from(ecode).unwrap_or(eio))
}

/// Runs the exchange on `stream`, which the kernel then takes over.
pub fn prepare<S: Read + Write>(stream: &mut S, who: &Attach<'_>) -> Result<Outcome, SessionError> {
    let mut wire = Wire {
        stream,
        msize: MSIZE,
    };
    let version = VERSION_9P2000_L.as_bytes();
    match wire.call(Request::Version {
        msize: MSIZE,
        version: Bytes::from_static(version),
    })? {
        Response::Version { msize, version: v } if &v[..] == version => {
            wire.msize = msize.min(MSIZE)
        }
        Response::Version { version, .. } => {
            return Err(SessionError::Version(
                String::from_utf8_lossy(&version).into(),
            ));
        }
        other => return Err(unexpected(&other)),
    }
    let uname = Bytes::copy_from_slice(who.uname.as_bytes());
    let aname = Bytes::copy_from_slice(who.aname.as_bytes());
    let auth = wire.call(Request::Auth {
        afid: AFID,
        uname: uname.clone(),
        aname: aname.clone(),
        n_uname: who.n_uname,
    })?;
    let afid = match auth {
        Response::Auth { .. } => {
            let credential = encode_credential(who.munge_socket).map_err(SessionError::Munge)?;
            match wire.call(Request::Write {
                fid: AFID,
                offset: 0,
                data: credential.into(),
            })? {
                Response::Write { .. } => {}
                Response::Lerror { ecode } => {
                    return Err(SessionError::AuthRefused(os_error(ecode)));
                }
                other => return Err(unexpected(&other)),
            }
            AFID
        }
        // diod's convention: no authentication needed.
        Response::Lerror { ecode } if ecode == ENOENT || ecode == EOPNOTSUPP => NOFID,
        Response::Lerror { ecode } => return Err(SessionError::AuthRefused(os_error(ecode))),
        other => return Err(unexpected(&other)),
    };
    match wire.call(Request::Attach {
        fid: FID,
        afid,
        uname,
        aname,
        n_uname: who.n_uname,
    })? {
        Response::Attach { .. } => {}
        Response::Lerror { ecode } => {
            return Err(SessionError::AttachRefused {
                aname: if who.aname.is_empty() {
                    String::new()
                } else {
                    format!(" to `{}`", who.aname)
                },
                error: os_error(ecode),
            });
        }
        other => return Err(unexpected(&other)),
    }
    wire.call(Request::Clunk { fid: FID })?;
    if afid != NOFID {
        wire.call(Request::Clunk { fid: AFID })?;
    }
    Ok(Outcome {
        msize: wire.msize,
        authenticated: afid != NOFID,
    })
}

const ENOENT: u32 = rustix::io::Errno::NOENT.raw_os_error() as u32;
const EOPNOTSUPP: u32 = rustix::io::Errno::OPNOTSUPP.raw_os_error() as u32;

fn unexpected(response: &Response) -> SessionError {
    SessionError::Protocol(format!("an unexpected {response:?}"))
}

/// Asks the munged on `socket` for a credential of this process's user.
fn encode_credential(socket: &str) -> Result<Vec<u8>, String> {
    let exchange = || -> io::Result<Vec<u8>> {
        let mut stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(MUNGE_TIMEOUT))?;
        stream.set_write_timeout(Some(MUNGE_TIMEOUT))?;
        stream.write_all(&ninep::munge::encode_request())?;
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header)?;
        let len =
            ninep::munge::body_len(&header, Kind::EncodeResponse).map_err(io::Error::other)?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        Ok(body)
    };
    let body = exchange().map_err(|e| format!("cannot talk to munged at {socket}: {e}"))?;
    ninep::munge::parse_encode_response(&body).map_err(|e| e.to_string())
}
