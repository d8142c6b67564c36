//! Reading frames from an async stream with an msize bound.

mod common;

use common::*;
use ninep::{FrameError, FrameReader, Request};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn frames_arrive_whole_however_the_stream_is_cut() {
    let (mut tx, rx) = tokio::io::duplex(7);
    let frames: Vec<_> = sample_requests()
        .iter()
        .enumerate()
        .map(|(i, r)| encode_request(i as u16, r))
        .collect();
    let sent = frames.clone();
    let writer = tokio::spawn(async move {
        for f in &sent {
            tx.write_all(f).await.unwrap();
        }
    });
    let mut reader = FrameReader::new(rx, 8192);
    for (i, expected) in frames.iter().enumerate() {
        let frame = reader.next_frame().await.unwrap().unwrap();
        assert_eq!(&frame, expected);
        assert_eq!(Request::decode(&frame).unwrap().0, i as u16);
    }
    writer.await.unwrap();
    assert!(
        reader.next_frame().await.unwrap().is_none(),
        "clean end of stream"
    );
}

#[tokio::test]
async fn an_oversized_frame_is_refused_before_it_is_read() {
    let (mut tx, rx) = tokio::io::duplex(64);
    // Only the header of a 1 GiB frame is ever sent.
    tx.write_all(&(1u32 << 30).to_le_bytes()).await.unwrap();
    tx.write_all(&[118, 0, 0]).await.unwrap();
    let mut reader = FrameReader::new(rx, 1 << 20);
    match reader.next_frame().await {
        Err(FrameError::TooLarge { size, msize }) => {
            assert_eq!((size, msize), (1 << 30, 1 << 20));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn a_size_below_the_header_is_refused() {
    let (mut tx, rx) = tokio::io::duplex(64);
    tx.write_all(&[3, 0, 0, 0, 100, 0, 0]).await.unwrap();
    let mut reader = FrameReader::new(rx, 8192);
    assert!(matches!(
        reader.next_frame().await,
        Err(FrameError::TooSmall(3))
    ));
}

#[tokio::test]
async fn a_stream_ending_inside_a_frame_is_an_error() {
    let (mut tx, rx) = tokio::io::duplex(64);
    let frame = encode_request(1, &ninep::Request::Clunk { fid: 9 });
    tx.write_all(&frame[..8]).await.unwrap();
    drop(tx);
    let mut reader = FrameReader::new(rx, 8192);
    assert!(matches!(
        reader.next_frame().await,
        Err(FrameError::Truncated(8))
    ));
}

#[tokio::test]
async fn the_limit_can_shrink_after_negotiation() {
    let (mut tx, rx) = tokio::io::duplex(1 << 16);
    let big = encode_request(
        1,
        &Request::Write {
            fid: 1,
            offset: 0,
            data: vec![0u8; 5000].into(),
        },
    );
    tx.write_all(&big).await.unwrap();
    tx.write_all(&big).await.unwrap();
    let mut reader = FrameReader::new(rx, 1 << 16);
    assert_eq!(reader.next_frame().await.unwrap().unwrap(), big);
    reader.set_max_size(4096);
    assert!(matches!(
        reader.next_frame().await,
        Err(FrameError::TooLarge { msize: 4096, .. })
    ));
}

#[test]
fn a_bare_header_does_not_reserve_the_whole_declared_frame() {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    let mut codec = ninep::FrameCodec::new(u32::MAX);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&u32::MAX.to_le_bytes());
    buf.extend_from_slice(&[118, 0, 0]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(
        buf.capacity() <= 512 * 1024,
        "reserved {} bytes for 7 received",
        buf.capacity()
    );
}
