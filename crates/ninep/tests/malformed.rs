//! Malformed frames get a precise error, never a panic.

mod common;

use bytes::Bytes;
use common::*;
use ninep::consts::msg;
use ninep::{DecodeError, Request, Response};

/// Rewrites the size field so the frame is self-consistent at its new length.
fn with_size(mut frame: Vec<u8>) -> Bytes {
    let len = frame.len() as u32;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Bytes::from(frame)
}

fn request_frames() -> Vec<Bytes> {
    sample_requests()
        .iter()
        .map(|r| encode_request(1, r))
        .collect()
}

fn response_frames() -> Vec<Bytes> {
    sample_responses()
        .iter()
        .map(|r| encode_response(1, r))
        .collect()
}

#[test]
fn every_truncation_of_every_message_is_rejected() {
    for frame in request_frames() {
        for len in 7..frame.len() {
            let cut = with_size(frame[..len].to_vec());
            let err = Request::decode(&cut).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "request cut to {len}: {err:?}"
            );
        }
    }
    for frame in response_frames() {
        for len in 7..frame.len() {
            let cut = with_size(frame[..len].to_vec());
            let err = Response::decode(&cut).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "response cut to {len}: {err:?}"
            );
        }
    }
}

#[test]
fn frames_shorter_than_the_header_are_rejected() {
    let frame = encode_request(1, &Request::Clunk { fid: 1 });
    for len in 0..7 {
        let short = frame.slice(..len);
        assert_eq!(Request::decode(&short), Err(DecodeError::ShortHeader(len)));
        assert_eq!(Response::decode(&short), Err(DecodeError::ShortHeader(len)));
    }
}

#[test]
fn a_size_field_that_disagrees_with_the_frame_is_rejected() {
    let frame = encode_request(1, &Request::Clunk { fid: 1 });
    let unpatched = frame.slice(..frame.len() - 1);
    assert_eq!(
        Request::decode(&unpatched),
        Err(DecodeError::SizeMismatch {
            declared: 11,
            actual: 10
        })
    );
    let mut longer = frame.to_vec();
    longer.push(0);
    assert_eq!(
        Request::decode(&Bytes::from(longer)),
        Err(DecodeError::SizeMismatch {
            declared: 11,
            actual: 12
        })
    );
}

#[test]
fn trailing_bytes_after_the_last_field_are_rejected() {
    for frame in request_frames() {
        let mut extended = frame.to_vec();
        extended.extend_from_slice(&[0, 0, 0]);
        let err = Request::decode(&with_size(extended)).unwrap_err();
        assert!(
            matches!(err, DecodeError::TrailingBytes { extra: 3, .. }),
            "{err:?}"
        );
    }
    for frame in response_frames() {
        let mut extended = frame.to_vec();
        extended.push(9);
        let err = Response::decode(&with_size(extended)).unwrap_err();
        assert!(
            matches!(err, DecodeError::TrailingBytes { extra: 1, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn frames_over_the_msize_are_rejected() {
    let frame = encode_request(
        1,
        &Request::Write {
            fid: 1,
            offset: 0,
            data: Bytes::from(vec![0; 100]),
        },
    );
    let size = frame.len() as u32;
    assert!(Request::decode_limited(&frame, size).is_ok());
    assert_eq!(
        Request::decode_limited(&frame, size - 1),
        Err(DecodeError::TooLarge {
            size,
            msize: size - 1
        })
    );
    let reply = encode_response(1, &Response::Read { data: b(b"abc") });
    assert!(matches!(
        Response::decode_limited(&reply, 10),
        Err(DecodeError::TooLarge { msize: 10, .. })
    ));
}

#[test]
fn unknown_and_misdirected_types_are_rejected() {
    for ty in [0u8, 6, 10, 107, 112, 113, 124, 128, 200, 255] {
        let frame = with_size(vec![0, 0, 0, 0, ty, 1, 0, 0, 0, 0, 0]);
        assert_eq!(Request::decode(&frame), Err(DecodeError::UnknownType(ty)));
    }
    // Rlerror (7) is a reply; Tlerror (6) does not exist.
    let frame = with_size(vec![0, 0, 0, 0, 6, 1, 0, 2, 0, 0, 0]);
    assert_eq!(Response::decode(&frame), Err(DecodeError::UnknownType(6)));
    for frame in request_frames() {
        let ty = frame[4];
        assert_eq!(Response::decode(&frame), Err(DecodeError::UnknownType(ty)));
    }
    for frame in response_frames() {
        let ty = frame[4];
        assert_eq!(Request::decode(&frame), Err(DecodeError::UnknownType(ty)));
    }
}

#[test]
fn twalk_with_more_than_sixteen_names_is_rejected() {
    let mut frame = vec![0, 0, 0, 0, msg::TWALK, 1, 0];
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.extend_from_slice(&2u32.to_le_bytes());
    frame.extend_from_slice(&17u16.to_le_bytes());
    for _ in 0..17 {
        frame.extend_from_slice(&[1, 0, b'a']);
    }
    let err = Request::decode(&with_size(frame)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::CountTooLarge {
            message: "Twalk",
            field: "nwname",
            count: 17,
            limit: 16
        }
    );
    assert_eq!(
        err.to_string(),
        "Twalk field `nwname` is 17, more than the limit 16"
    );

    // A huge nwname in a tiny frame fails before anything is allocated for it.
    let mut frame = vec![0, 0, 0, 0, msg::TWALK, 1, 0, 1, 0, 0, 0, 2, 0, 0, 0];
    frame.extend_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        Request::decode(&with_size(frame)),
        Err(DecodeError::CountTooLarge { count: 65535, .. })
    ));
}

#[test]
fn rwalk_with_more_than_sixteen_qids_is_rejected() {
    let mut frame = vec![0, 0, 0, 0, msg::RWALK, 1, 0];
    frame.extend_from_slice(&17u16.to_le_bytes());
    frame.extend_from_slice(&[0; 17 * 13]);
    assert!(matches!(
        Response::decode(&with_size(frame)),
        Err(DecodeError::CountTooLarge {
            message: "Rwalk",
            count: 17,
            ..
        })
    ));
}

#[test]
fn payload_counts_must_match_the_frame() {
    // Twrite claiming 1 GiB of data in a 30-byte frame.
    let mut frame = vec![0, 0, 0, 0, msg::TWRITE, 1, 0];
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.extend_from_slice(&0u64.to_le_bytes());
    frame.extend_from_slice(&(1u32 << 30).to_le_bytes());
    frame.extend_from_slice(b"only a few bytes");
    let err = Request::decode(&with_size(frame.clone())).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Truncated {
            message: "Twrite",
            field: "data"
        }
    );
    // ... or claiming fewer bytes than it carries.
    frame[19..23].copy_from_slice(&4u32.to_le_bytes());
    assert!(matches!(
        Request::decode(&with_size(frame)),
        Err(DecodeError::TrailingBytes { extra: 12, .. })
    ));

    // Rread and Rreaddir likewise.
    for ty in [msg::RREAD, msg::RREADDIR] {
        let mut frame = vec![0, 0, 0, 0, ty, 1, 0];
        frame.extend_from_slice(&u32::MAX.to_le_bytes());
        frame.extend_from_slice(b"xyz");
        assert!(matches!(
            Response::decode(&with_size(frame)),
            Err(DecodeError::Truncated { field: "data", .. })
        ));
    }
}

#[test]
fn string_lengths_past_the_end_are_rejected() {
    let mut frame = vec![0, 0, 0, 0, msg::TMKDIR, 1, 0];
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.extend_from_slice(&u16::MAX.to_le_bytes());
    frame.extend_from_slice(b"short");
    let err = Request::decode(&with_size(frame)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Truncated {
            message: "Tmkdir",
            field: "name"
        }
    );
    assert_eq!(err.to_string(), "Tmkdir body ends inside field `name`");
}
