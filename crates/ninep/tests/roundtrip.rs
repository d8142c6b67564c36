//! Every message encodes and decodes back to itself, with the byte layout of the Linux client.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use common::*;
use ninep::{Request, Response, request_name, response_name};

#[test]
fn every_request_round_trips() {
    for (i, request) in sample_requests().into_iter().enumerate() {
        let tag = i as u16 * 257;
        let frame = encode_request(tag, &request);
        assert_eq!(frame.len(), request.encoded_len().unwrap(), "{request:?}");
        let size = u32::from_le_bytes(frame[..4].try_into().unwrap());
        assert_eq!(size as usize, frame.len());
        assert_eq!(frame[4], request.ty());
        assert_eq!(Request::decode(&frame), Ok((tag, request)));
    }
}

#[test]
fn every_response_round_trips() {
    for (i, response) in sample_responses().into_iter().enumerate() {
        let tag = 0xffff - i as u16;
        let frame = encode_response(tag, &response);
        assert_eq!(frame.len(), response.encoded_len().unwrap(), "{response:?}");
        assert_eq!(frame[4], response.ty());
        assert_eq!(Response::decode(&frame), Ok((tag, response)));
    }
}

#[test]
fn samples_cover_every_message_type() {
    let requests: BTreeSet<u8> = sample_requests().iter().map(Request::ty).collect();
    let responses: BTreeSet<u8> = sample_responses().iter().map(Response::ty).collect();
    let all_requests: BTreeSet<u8> = (0..=255).filter(|t| request_name(*t).is_some()).collect();
    let all_responses: BTreeSet<u8> = (0..=255).filter(|t| response_name(*t).is_some()).collect();
    assert_eq!(requests, all_requests);
    assert_eq!(responses, all_responses);
    assert_eq!(all_requests.len(), 28);
    assert_eq!(all_responses.len(), 29, "28 replies plus Rlerror");
    for t in &all_requests {
        assert!(all_responses.contains(&(t + 1)), "reply to {t} is T+1");
    }
}

#[test]
fn tversion_bytes_match_the_linux_client() {
    // What v9fs sends first: size 21, type 100, tag NOTAG, msize 8192, "9P2000.L".
    let frame = encode_request(
        ninep::NOTAG,
        &Request::Version {
            msize: 8192,
            version: b(b"9P2000.L"),
        },
    );
    let expected: &[u8] = b"\x15\x00\x00\x00\x64\xff\xff\x00\x20\x00\x00\x08\x009P2000.L";
    assert_eq!(&frame[..], expected);
}

#[test]
fn twalk_and_rgetattr_layouts() {
    let frame = encode_request(
        1,
        &Request::Walk {
            fid: 0x0a0b0c0d,
            newfid: 2,
            wnames: vec![b(b"ab"), b(b"c")],
        },
    );
    let expected: &[u8] =
        b"\x18\x00\x00\x00\x6e\x01\x00\x0d\x0c\x0b\x0a\x02\x00\x00\x00\x02\x00\x02\x00ab\x01\x00c";
    assert_eq!(&frame[..], expected);
    // Rgetattr is fixed-size: 7 + valid 8 + qid 13 + 3*4 + 5*8 + 8 timestamps*8 + 2*8.
    let attr = encode_response(0, &sample_responses()[13]);
    assert_eq!(attr[4], ninep::consts::msg::RGETATTR);
    assert_eq!(attr.len(), 7 + 8 + 13 + 12 + 40 + 64 + 16);
}

#[test]
fn decoded_names_and_payloads_borrow_the_frame() {
    let frame = encode_request(
        3,
        &Request::Write {
            fid: 1,
            offset: 0,
            data: Bytes::from(vec![0xab; 4096]),
        },
    );
    let (_, Request::Write { data, .. }) = Request::decode(&frame).unwrap() else {
        panic!("not a Twrite");
    };
    let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    assert!(
        frame_range.contains(&(data.as_ptr() as usize)),
        "payload was copied"
    );
}

#[test]
fn rread_header_fast_path_matches_the_generic_encoder() {
    let payload = b"some file data".to_vec();
    let mut fast = Vec::new();
    ninep::put_rread_header(&mut fast, 9, payload.len() as u32).unwrap();
    assert_eq!(fast.len(), ninep::RREAD_HEADER_LEN);
    fast.extend_from_slice(&payload);
    let generic = encode_response(
        9,
        &Response::Read {
            data: Bytes::from(payload),
        },
    );
    assert_eq!(fast, generic.to_vec());
}

#[test]
fn twrite_header_fast_path_matches_the_generic_encoder() {
    let payload = vec![1u8, 2, 3, 4, 5];
    let mut fast = Vec::new();
    ninep::put_twrite_header(&mut fast, 4, 11, 99, payload.len() as u32).unwrap();
    fast.extend_from_slice(&payload);
    let generic = encode_request(
        4,
        &Request::Write {
            fid: 11,
            offset: 99,
            data: Bytes::from(payload),
        },
    );
    assert_eq!(fast, generic.to_vec());
}

#[test]
fn encoding_rejects_what_the_wire_cannot_carry() {
    let long = Bytes::from(vec![b'x'; 65536]);
    let mut buf = vec![0xee];
    let err = Request::Mkdir {
        dfid: 1,
        name: long.clone(),
        mode: 0,
        gid: 0,
    }
    .encode(1, &mut buf)
    .unwrap_err();
    assert_eq!(err, ninep::EncodeError::StringTooLong(65536));
    assert_eq!(buf, vec![0xee], "a failed encode writes nothing");

    let err = Request::Walk {
        fid: 1,
        newfid: 2,
        wnames: vec![b(b"a"); 17],
    }
    .encode(1, &mut buf)
    .unwrap_err();
    assert_eq!(err, ninep::EncodeError::TooManyWalkElements(17));
    let err = Response::Walk {
        wqids: vec![qid(1); 17],
    }
    .encoded_len()
    .unwrap_err();
    assert_eq!(err, ninep::EncodeError::TooManyWalkElements(17));

    // The longest legal string still encodes.
    let max = Bytes::from(vec![b'y'; 65535]);
    let frame = encode_response(
        1,
        &Response::Readlink {
            target: max.clone(),
        },
    );
    assert_eq!(
        Response::decode(&frame),
        Ok((1, Response::Readlink { target: max }))
    );
    assert_eq!(buf, vec![0xee]);
}

#[test]
fn names_are_reported_for_diagnostics() {
    assert_eq!(sample_requests()[4].name(), "Twalk");
    assert_eq!(sample_responses()[0].name(), "Rlerror");
    assert_eq!(request_name(ninep::consts::msg::RLERROR), None);
    assert_eq!(response_name(ninep::consts::msg::TVERSION), None);
}

#[test]
fn a_fixed_buffer_too_small_for_the_frame_is_an_error_not_a_panic() {
    let mut storage = [0u8; 10];
    let mut slice = &mut storage[..];
    let err = Request::Clunk { fid: 1 }.encode(1, &mut slice).unwrap_err();
    assert_eq!(
        err,
        ninep::EncodeError::BufferTooSmall {
            needed: 11,
            available: 10
        }
    );
    assert_eq!(storage, [0; 10], "nothing was written");

    let mut storage = [0u8; 11];
    let mut slice = &mut storage[..];
    Request::Clunk { fid: 1 }.encode(1, &mut slice).unwrap();
    assert_eq!(storage, [11, 0, 0, 0, 120, 1, 0, 1, 0, 0, 0]);

    let mut storage = [0u8; 12];
    let mut slice = &mut storage[..];
    assert!(ninep::put_rread_header(&mut slice, 1, 2).is_err());

    let mut storage = [0u8; 30];
    let mut slice = &mut storage[..];
    let mut w = ninep::DirentWriter::new(&mut slice, 1000);
    assert!(w.push(&qid(1), 1, 0, b"abc").unwrap());
    assert!(!w.push(&qid(2), 2, 0, b"d").unwrap(), "the buffer is full");
}
