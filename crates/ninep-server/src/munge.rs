//! Checking a MUNGE credential with the local `munged`, over its unix socket.
//!
//! The server speaks munged's own client protocol (version 4, as libmunge does) instead of
//! linking libmunge: one connection per decode, a request carrying the credential and a
//! response carrying the uid and gid of the process that encoded it. munged checks the
//! credential's MAC with the shared key, its time-to-live and that it was not used before
//! (replay), so a credential authenticates one attach.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// munged's default socket on Debian.
pub const DEFAULT_SOCKET: &str = "/run/munge/munge.socket.2";

const MAGIC: u32 = 0x0060_6D4B;
const VERSION: u8 = 4;
const DEC_REQ: u8 = 4;
const DEC_RSP: u8 = 5;
const HEADER_LEN: usize = 11;
/// A credential is base64 text of a few hundred bytes (more with a payload); anything larger
/// is refused before munged sees it.
pub const MAX_CREDENTIAL: usize = 64 * 1024;
/// The largest response read from munged.
const MAX_RESPONSE: usize = 1024 * 1024;
/// How long a decode may take (munged answers in microseconds; it may be stuck or gone).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Who encoded a credential that munged accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    pub uid: u32,
    pub gid: u32,
}

/// Why a credential authenticates nobody.
#[derive(Debug, thiserror::Error)]
pub enum MungeError {
    /// munged refused the credential (bad MAC: another key; expired; replayed; ...).
    #[error("munged refused the credential: {message} (error {code})")]
    Refused { code: u8, message: String },
    #[error("cannot talk to munged at {socket}: {error}")]
    Unreachable {
        socket: String,
        error: std::io::Error,
    },
    #[error("munged sent a malformed response: {0}")]
    Malformed(&'static str),
    #[error("the credential is empty or longer than {MAX_CREDENTIAL} bytes")]
    BadCredential,
}

/// Asks the munged listening on `socket` to decode `cred` (the text a MUNGE client wrote,
/// with or without a trailing NUL or newline).
pub async fn decode(socket: &Path, cred: &[u8]) -> Result<Credential, MungeError> {
    let cred = trim(cred);
    if cred.is_empty() || cred.len() > MAX_CREDENTIAL {
        return Err(MungeError::BadCredential);
    }
    let unreachable = |error| MungeError::Unreachable {
        socket: socket.display().to_string(),
        error,
    };
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        stream.write_all(&request(cred)).await?;
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header).await?;
        let len = body_len(&header).map_err(std::io::Error::other)?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        Ok(body)
    };
    let body = match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(unreachable(e)),
        Err(_) => return Err(unreachable(std::io::ErrorKind::TimedOut.into())),
    };
    parse_response(&body)
}

/// Drops the NUL and line ending a client may have written after the credential's text.
fn trim(cred: &[u8]) -> &[u8] {
    let end = cred
        .iter()
        .rposition(|&b| !matches!(b, 0 | b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &cred[..end]
}

/// A decode request: header, then the credential's length (with its NUL) and the
/// NUL-terminated credential.
fn request(cred: &[u8]) -> Vec<u8> {
    let data_len = cred.len() as u32 + 1;
    let body_len = 4 + data_len;
    let mut out = Vec::with_capacity(HEADER_LEN + body_len as usize);
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&[VERSION, DEC_REQ, 0]);
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&data_len.to_be_bytes());
    out.extend_from_slice(cred);
    out.push(0);
    out
}

/// Checks a response header and returns the length of the body that follows.
fn body_len(header: &[u8; HEADER_LEN]) -> Result<usize, &'static str> {
    let magic = u32::from_be_bytes(header[0..4].try_into().unwrap());
    if magic != MAGIC {
        return Err("bad magic");
    }
    if header[4] != VERSION {
        return Err("another protocol version");
    }
    if header[5] != DEC_RSP {
        return Err("not a decode response");
    }
    let len = u32::from_be_bytes(header[7..11].try_into().unwrap()) as usize;
    if len > MAX_RESPONSE {
        return Err("response too large");
    }
    Ok(len)
}

/// A cursor over a response body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MungeError> {
        if self.0.len() < n {
            return Err(MungeError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, MungeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MungeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
}

/// A decode response: error number and message, then (on success) cipher, mac, zip, realm,
/// ttl, origin address, encode and decode times, the credential's uid and gid, the uid and
/// gid allowed to decode it, and its payload.
fn parse_response(body: &[u8]) -> Result<Credential, MungeError> {
    let mut f = Fields(body);
    let code = f.u8()?;
    let error_len = f.u8()? as usize;
    let message = f.take(error_len)?;
    if code != 0 {
        let message = String::from_utf8_lossy(message)
            .trim_end_matches('\0')
            .to_string();
        return Err(MungeError::Refused { code, message });
    }
    f.take(3)?; // cipher, mac, zip
    let realm_len = f.u8()? as usize;
    f.take(realm_len)?;
    f.u32()?; // ttl
    let addr_len = f.u8()? as usize;
    f.take(addr_len)?;
    f.u32()?; // time encoded
    f.u32()?; // time decoded
    let uid = f.u32()?;
    let gid = f.u32()?;
    Ok(Credential { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_what_libmunge_sends() {
        let r = request(b"MUNGE:abc:");
        assert_eq!(&r[..4], &MAGIC.to_be_bytes());
        assert_eq!(&r[4..7], &[4, 4, 0]);
        assert_eq!(u32::from_be_bytes(r[7..11].try_into().unwrap()), 4 + 11);
        assert_eq!(u32::from_be_bytes(r[11..15].try_into().unwrap()), 11);
        assert_eq!(&r[15..], b"MUNGE:abc:\0");
    }

    #[test]
    fn trailing_nul_and_newline_are_not_part_of_the_credential() {
        assert_eq!(trim(b"MUNGE:x:\n\0"), b"MUNGE:x:");
        assert_eq!(trim(b"\0\0"), b"");
    }

    fn success(uid: u32, gid: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 4, 5, 0, 0];
        b.extend_from_slice(&300u32.to_be_bytes());
        b.push(4);
        b.extend_from_slice(&[127, 0, 0, 1]);
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&uid.to_be_bytes());
        b.extend_from_slice(&gid.to_be_bytes());
        b.extend_from_slice(&[0xff; 8]);
        b.extend_from_slice(&0u32.to_be_bytes());
        b
    }

    #[test]
    fn a_response_gives_the_encoders_uid_and_gid_or_the_refusal() {
        assert_eq!(
            parse_response(&success(1001, 1002)).unwrap(),
            Credential {
                uid: 1001,
                gid: 1002
            }
        );
        let mut refused = vec![15, 8];
        refused.extend_from_slice(b"Invalid\0");
        assert!(matches!(
            parse_response(&refused),
            Err(MungeError::Refused { code: 15, message }) if message == "Invalid"
        ));
        // Truncated anywhere: an error, never a panic.
        let ok = success(1, 1);
        for end in 0..31 {
            assert!(parse_response(&ok[..end]).is_err(), "cut at {end}");
        }
    }
}
