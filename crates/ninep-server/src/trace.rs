//! `--trace-protocol`: each request and its reply, decoded, one debug line each, without the
//! bytes of file data (Twrite, Rread and Rreaddir show their lengths only).

use ninep::{Request, Response};

/// A request as the trace shows it.
pub fn request(request: &Request) -> String {
    match request {
        Request::Write { fid, offset, data } => {
            format!(
                "Twrite {{ fid: {fid}, offset: {offset}, count: {} }}",
                data.len()
            )
        }
        other => format!("{other:?}"),
    }
}

/// A reply message as the trace shows it.
pub fn response(response: &Response) -> String {
    match response {
        Response::Read { data } => format!("Rread {{ count: {} }}", data.len()),
        Response::Readdir { data } => format!("Rreaddir {{ count: {} }}", data.len()),
        other => format!("{other:?}"),
    }
}

/// A reply already encoded (Rread, Rreaddir), of `len` bytes in all: its type and size.
pub fn encoded(frame_start: &[u8], len: usize) -> String {
    let name = frame_start
        .get(4)
        .and_then(|&ty| ninep::response_name(ty))
        .unwrap_or("R?");
    let count = len.saturating_sub(ninep::RREAD_HEADER_LEN);
    format!("{name} {{ count: {count} }}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn payload_bytes_never_appear() {
        let secret = Bytes::from_static(b"secret-payload");
        let write = request(&Request::Write {
            fid: 3,
            offset: 7,
            data: secret.clone(),
        });
        assert_eq!(write, "Twrite { fid: 3, offset: 7, count: 14 }");
        let read = response(&Response::Read { data: secret });
        assert_eq!(read, "Rread { count: 14 }");
        let mut frame = Vec::new();
        ninep::put_rread_header(&mut frame, 9, 100).unwrap();
        assert_eq!(encoded(&frame, frame.len() + 100), "Rread { count: 100 }");
    }
}
