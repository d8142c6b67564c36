//! Checking a MUNGE credential with the local `munged`, over its unix socket.
//!
//! The server speaks munged's own client protocol ([`ninep::munge`], as libmunge does)
//! instead of linking libmunge: one connection per decode, a request carrying the credential
//! and a response carrying the uid and gid of the process that encoded it. munged checks the
//! credential's MAC with the shared key, its time-to-live and that it was not used before
//! (replay), so a credential authenticates one attach.

use std::path::Path;
use std::time::Duration;

pub use ninep::munge::{Credential, DEFAULT_SOCKET, MAX_CREDENTIAL};
use ninep::munge::{HEADER_LEN, Kind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a decode may take (munged answers in microseconds; it may be stuck or gone).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a credential authenticates nobody.
#[derive(Debug, thiserror::Error)]
pub enum MungeError {
    /// munged refused the credential (bad MAC: another key; expired; replayed; ...), or its
    /// response was malformed.
    #[error(transparent)]
    Refused(#[from] ninep::munge::MungeError),
    #[error("cannot talk to munged at {socket}: {error}")]
    Unreachable {
        socket: String,
        error: std::io::Error,
    },
}

/// Asks the munged listening on `socket` to decode `cred` (the text a MUNGE client wrote,
/// with or without a trailing NUL or newline).
pub async fn decode(socket: &Path, cred: &[u8]) -> Result<Credential, MungeError> {
    let request = ninep::munge::decode_request(cred)?;
    let unreachable = |error| MungeError::Unreachable {
        socket: socket.display().to_string(),
        error,
    };
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        stream.write_all(&request).await?;
        let mut header = [0u8; HEADER_LEN];
        stream.read_exact(&mut header).await?;
        let len =
            ninep::munge::body_len(&header, Kind::DecodeResponse).map_err(std::io::Error::other)?;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        Ok(body)
    };
    let body = match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(unreachable(e)),
        Err(_) => return Err(unreachable(std::io::ErrorKind::TimedOut.into())),
    };
    Ok(ninep::munge::parse_decode_response(&body)?)
}
