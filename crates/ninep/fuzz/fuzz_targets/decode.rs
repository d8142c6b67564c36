//! Feeds arbitrary bytes to every decoder: none may panic, and any frame that decodes must
//! re-encode to exactly the same bytes.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ninep::{DirentIter, FrameCodec, Request, Response};
use tokio_util::codec::Decoder;

/// The msize the first input byte selects, so the size limit itself is fuzzed too.
fn msize(selector: u8) -> u32 {
    match selector % 4 {
        0 => u32::MAX,
        1 => 8192,
        2 => 64,
        _ => 7,
    }
}

fn check(frame: &Bytes, msize: u32) {
    if let Ok((tag, request)) = Request::decode_limited(frame, msize) {
        let mut again = Vec::new();
        request
            .encode(tag, &mut again)
            .expect("a decoded request encodes");
        assert_eq!(&again[..], &frame[..], "request re-encodes differently");
    }
    if let Ok((tag, response)) = Response::decode_limited(frame, msize) {
        let mut again = Vec::new();
        response
            .encode(tag, &mut again)
            .expect("a decoded response encodes");
        assert_eq!(&again[..], &frame[..], "response re-encodes differently");
        if let Response::Readdir { data } = response {
            for entry in DirentIter::new(data) {
                if entry.is_err() {
                    break;
                }
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let limit = msize(selector);
    let bytes = Bytes::copy_from_slice(rest);
    check(&bytes, limit);

    // The same bytes as a stream: every frame the codec cuts out is decoded too.
    let mut codec = FrameCodec::new(limit);
    let mut buf = BytesMut::from(rest);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        assert!(frame.len() >= ninep::HEADER_LEN);
        assert!(frame.len() as u64 <= u64::from(limit));
        check(&frame, limit);
    }
    DirentIter::new(bytes).for_each(drop);
});
