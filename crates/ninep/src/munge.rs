//! munged's client protocol (version 4, as libmunge speaks it), without I/O: what a 9P client
//! and a server exchange with the local `munged` to authenticate a Tauth the way diod does.
//!
//! A client asks munged to encode a credential ([`encode_request`]), which munged fills with
//! the uid and gid it reads from the socket's peer credentials, and writes the credential's
//! text into the auth fid; the server asks its own munged to decode it ([`decode_request`]),
//! which checks the MAC with the shared key, the time-to-live and replays, and answers with
//! that uid and gid. Every message is an 11-byte header ([`body_len`] checks one) and a body;
//! each connection to munged carries one request and one response.

/// munged's default socket on Debian.
pub const DEFAULT_SOCKET: &str = "/run/munge/munge.socket.2";

/// The length of a message header: magic, version, type, retry count, body length.
pub const HEADER_LEN: usize = 11;
/// A credential is base64 text of a few hundred bytes (more with a payload); anything larger
/// is refused before munged sees it.
pub const MAX_CREDENTIAL: usize = 64 * 1024;
/// The largest response body accepted from munged.
pub const MAX_RESPONSE: usize = 1024 * 1024;

const MAGIC: u32 = 0x0060_6D4B;
const VERSION: u8 = 4;

/// The message types (`m_msg_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Encode a credential.
    EncodeRequest = 2,
    /// The credential, or why not.
    EncodeResponse = 3,
    /// Decode a credential.
    DecodeRequest = 4,
    /// Who encoded it, or why it is refused.
    DecodeResponse = 5,
}

/// `MUNGE_UID_ANY` / `MUNGE_GID_ANY`: any user may decode the credential.
const ANY_ID: u32 = u32::MAX;

/// Who encoded a credential that munged accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    /// The encoding process's uid.
    pub uid: u32,
    /// The encoding process's gid.
    pub gid: u32,
}

/// Why a response gives no credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MungeError {
    /// munged refused the request (decoding: bad MAC, another key, expired, replayed...).
    #[error("munged refused the credential: {message} (error {code})")]
    Refused {
        /// munged's error number (`munge_err_t`).
        code: u8,
        /// munged's message.
        message: String,
    },
    /// The response does not follow the protocol.
    #[error("munged sent a malformed response: {0}")]
    Malformed(&'static str),
    /// The credential to decode is empty or too long.
    #[error("the credential is empty or longer than {MAX_CREDENTIAL} bytes")]
    BadCredential,
}

/// Drops the NUL and line ending a client may have written after the credential's text.
pub fn trim(cred: &[u8]) -> &[u8] {
    let end = cred
        .iter()
        .rposition(|&b| !matches!(b, 0 | b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &cred[..end]
}

fn message(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&[VERSION, kind as u8, 0]);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A decode request for `cred` (trimmed as [`trim`] does): its length with a NUL, and the
/// NUL-terminated text.
pub fn decode_request(cred: &[u8]) -> Result<Vec<u8>, MungeError> {
    let cred = trim(cred);
    if cred.is_empty() || cred.len() > MAX_CREDENTIAL {
        return Err(MungeError::BadCredential);
    }
    let mut body = Vec::with_capacity(4 + cred.len() + 1);
    body.extend_from_slice(&(cred.len() as u32 + 1).to_be_bytes());
    body.extend_from_slice(cred);
    body.push(0);
    Ok(message(Kind::DecodeRequest, &body))
}

/// An encode request with libmunge's defaults: default cipher, MAC and compression, no
/// realm, the default time-to-live, anyone may decode, no payload.
pub fn encode_request() -> Vec<u8> {
    let mut body = vec![1, 1, 1, 0];
    body.extend_from_slice(&0u32.to_be_bytes()); // ttl: munged's default
    body.extend_from_slice(&ANY_ID.to_be_bytes());
    body.extend_from_slice(&ANY_ID.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes()); // no payload
    message(Kind::EncodeRequest, &body)
}

/// Checks a response header for the `expected` type and returns the length of the body that
/// follows.
pub fn body_len(header: &[u8; HEADER_LEN], expected: Kind) -> Result<usize, MungeError> {
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic != MAGIC {
        return Err(MungeError::Malformed("bad magic"));
    }
    if header[4] != VERSION {
        return Err(MungeError::Malformed("another protocol version"));
    }
    if header[5] != expected as u8 {
        return Err(MungeError::Malformed("not the response expected"));
    }
    let len = u32::from_be_bytes([header[7], header[8], header[9], header[10]]) as usize;
    if len > MAX_RESPONSE {
        return Err(MungeError::Malformed("response too large"));
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
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The error number and message every response starts with: `Err` unless it is zero.
    fn status(&mut self) -> Result<(), MungeError> {
        let code = self.u8()?;
        let len = self.u8()? as usize;
        let message = self.take(len)?;
        if code == 0 {
            return Ok(());
        }
        let message = String::from_utf8_lossy(message)
            .trim_end_matches('\0')
            .to_string();
        Err(MungeError::Refused { code, message })
    }
}

/// A decode response body: status, then (on success) cipher, mac, zip, realm, ttl, origin
/// address, encode and decode times, the credential's uid and gid, the uid and gid allowed to
/// decode it, and its payload.
pub fn parse_decode_response(body: &[u8]) -> Result<Credential, MungeError> {
    let mut f = Fields(body);
    f.status()?;
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

/// An encode response body: status, then the credential's text (without its NUL).
pub fn parse_encode_response(body: &[u8]) -> Result<Vec<u8>, MungeError> {
    let mut f = Fields(body);
    f.status()?;
    let len = f.u32()? as usize;
    let cred = trim(f.take(len)?);
    if cred.is_empty() || cred.len() > MAX_CREDENTIAL {
        return Err(MungeError::Malformed("no credential"));
    }
    Ok(cred.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_request_is_what_libmunge_sends() {
        let r = decode_request(b"MUNGE:abc:\n").unwrap();
        assert_eq!(&r[..4], &MAGIC.to_be_bytes());
        assert_eq!(&r[4..7], &[4, 4, 0]);
        assert_eq!(u32::from_be_bytes(r[7..11].try_into().unwrap()), 4 + 11);
        assert_eq!(u32::from_be_bytes(r[11..15].try_into().unwrap()), 11);
        assert_eq!(&r[15..], b"MUNGE:abc:\0");
        assert_eq!(decode_request(b"\0\n"), Err(MungeError::BadCredential));
    }

    #[test]
    fn an_encode_request_asks_for_defaults_and_no_payload() {
        let r = encode_request();
        assert_eq!(&r[4..7], &[4, 2, 0]);
        let body = &r[HEADER_LEN..];
        assert_eq!(
            u32::from_be_bytes(r[7..11].try_into().unwrap()) as usize,
            body.len()
        );
        assert_eq!(&body[..4], &[1, 1, 1, 0], "cipher, mac, zip, no realm");
        assert_eq!(&body[4..8], &[0; 4], "default ttl");
        assert_eq!(&body[8..16], &[0xff; 8], "any uid and gid may decode");
        assert_eq!(&body[16..], &[0; 4], "no payload");
    }

    #[test]
    fn trailing_nul_and_newline_are_not_part_of_the_credential() {
        assert_eq!(trim(b"MUNGE:x:\n\0"), b"MUNGE:x:");
        assert_eq!(trim(b"\0\0"), b"");
    }

    #[test]
    fn a_header_names_its_type_and_bounds_its_body() {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC.to_be_bytes());
        h[4] = 4;
        h[5] = 3;
        h[7..].copy_from_slice(&40u32.to_be_bytes());
        assert_eq!(body_len(&h, Kind::EncodeResponse), Ok(40));
        assert!(body_len(&h, Kind::DecodeResponse).is_err());
        h[7..].copy_from_slice(&(MAX_RESPONSE as u32 + 1).to_be_bytes());
        assert!(body_len(&h, Kind::EncodeResponse).is_err());
        h[0] = 0;
        assert!(body_len(&h, Kind::EncodeResponse).is_err());
    }

    fn decoded(uid: u32, gid: u32) -> Vec<u8> {
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
    fn a_decode_response_gives_the_encoders_uid_and_gid_or_the_refusal() {
        assert_eq!(
            parse_decode_response(&decoded(1001, 1002)).unwrap(),
            Credential {
                uid: 1001,
                gid: 1002
            }
        );
        let mut refused = vec![15, 8];
        refused.extend_from_slice(b"Invalid\0");
        assert!(matches!(
            parse_decode_response(&refused),
            Err(MungeError::Refused { code: 15, message }) if message == "Invalid"
        ));
        // Truncated anywhere: an error, never a panic.
        let ok = decoded(1, 1);
        for end in 0..31 {
            assert!(parse_decode_response(&ok[..end]).is_err(), "cut at {end}");
        }
    }

    #[test]
    fn an_encode_response_gives_the_credential_or_the_refusal() {
        let mut ok = vec![0, 0];
        ok.extend_from_slice(&9u32.to_be_bytes());
        ok.extend_from_slice(b"MUNGE:x:\0");
        assert_eq!(parse_encode_response(&ok).unwrap(), b"MUNGE:x:");
        for end in 0..ok.len() {
            assert!(parse_encode_response(&ok[..end]).is_err(), "cut at {end}");
        }
        let mut refused = vec![6, 4];
        refused.extend_from_slice(b"busy");
        assert!(matches!(
            parse_encode_response(&refused),
            Err(MungeError::Refused { code: 6, message }) if message == "busy"
        ));
    }
}
