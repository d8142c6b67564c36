//! Reading frames from an async stream with an msize bound.

mod common;

use common::*;
use ninep::{DecodeError, FrameError, FrameReader, Incoming, Request, TwriteHeader};
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

/// A Twrite of `len` payload bytes with a recognisable pattern.
fn large_write(tag: u16, len: usize, seed: u8) -> bytes::Bytes {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    encode_request(
        tag,
        &Request::Write {
            fid: 1,
            offset: 0,
            data: data.into(),
        },
    )
}

/// Small frames and large Twrites (one larger than any pipe below) in turn.
fn mixed_frames() -> Vec<bytes::Bytes> {
    vec![
        encode_request(1, &Request::Clunk { fid: 1 }),
        large_write(2, 200_000, 1),
        large_write(3, 70_000, 2),
        encode_request(4, &Request::Clunk { fid: 4 }),
        large_write(5, 1_000_000, 3),
        encode_request(6, &Request::Clunk { fid: 6 }),
    ]
}

#[tokio::test]
async fn large_frames_between_small_ones_arrive_whole_however_the_stream_is_cut() {
    // Large frames take their own buffer; the bytes after one must still reach the next frame.
    for pipe in [7, 4096, 300_000] {
        let (mut tx, rx) = tokio::io::duplex(pipe);
        let frames = mixed_frames();
        let sent = frames.concat();
        let writer = tokio::spawn(async move { tx.write_all(&sent).await.unwrap() });
        let mut reader = FrameReader::new(rx, 1 << 20);
        for expected in &frames {
            let frame = reader.next_frame().await.unwrap().unwrap();
            assert!(frame == expected[..], "frame differs (pipe {pipe})");
        }
        writer.await.unwrap();
        assert!(reader.next_frame().await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_stream_ending_inside_a_large_frame_is_an_error() {
    let (mut tx, rx) = tokio::io::duplex(1 << 16);
    let frame = large_write(1, 500_000, 0);
    let writer = tokio::spawn(async move {
        tx.write_all(&frame[..300_000]).await.unwrap();
    });
    let mut reader = FrameReader::new(rx, 1 << 20);
    assert!(matches!(
        reader.next_frame().await,
        Err(FrameError::Truncated(300_000))
    ));
    writer.await.unwrap();
}

#[tokio::test]
async fn a_cancelled_read_of_a_large_frame_loses_nothing() {
    let (mut tx, rx) = tokio::io::duplex(1 << 16);
    let frame = large_write(1, 500_000, 9);
    let mut reader = FrameReader::new(rx, 1 << 20);
    let head = frame.slice(..200_000);
    let writer = tokio::spawn(async move {
        tx.write_all(&head).await.unwrap();
        tx
    });
    // Less than the frame is sent: the read waits for the rest, and is given up.
    let waited =
        tokio::time::timeout(std::time::Duration::from_millis(200), reader.next_frame()).await;
    assert!(waited.is_err(), "the frame cannot be complete yet");
    let mut tx = writer.await.unwrap();
    let rest = frame.slice(200_000..);
    let writer = tokio::spawn(async move { tx.write_all(&rest).await.unwrap() });
    let got = reader.next_frame().await.unwrap().unwrap();
    assert!(got == frame[..], "the frame was not reassembled");
    writer.await.unwrap();
}

#[tokio::test]
async fn large_frames_stay_intact_while_later_ones_are_read() {
    // Frames are handed out while the reader goes on: a buffer must not be reused while a
    // frame that lives in it is still held.
    let (mut tx, rx) = tokio::io::duplex(1 << 16);
    let frames: Vec<bytes::Bytes> = (0..24)
        .map(|i| large_write(i, 100_000 + 4099 * i as usize, i as u8))
        .collect();
    let sent = frames.concat();
    let writer = tokio::spawn(async move { tx.write_all(&sent).await.unwrap() });
    let mut reader = FrameReader::new(rx, 1 << 20);
    let mut held = Vec::new();
    for (i, expected) in frames.iter().enumerate() {
        held.push(reader.next_frame().await.unwrap().unwrap());
        if i % 3 == 2 {
            // Let some go back to the pool while others are kept.
            held.remove(0);
        }
        assert!(held.last().unwrap() == &expected[..]);
    }
    writer.await.unwrap();
    for frame in &held {
        let tag = Request::decode(frame).unwrap().0;
        assert!(
            frame == &frames[tag as usize][..],
            "frame {tag} was overwritten"
        );
    }
}

/// Reads the next item as `next_incoming` hands it over and puts a cut Twrite back together
/// from its parts and the stream, the way a server taking the payload itself would.
async fn next_whole<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    partials: &mut usize,
) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    match reader.next_incoming().await.unwrap()? {
        Incoming::Frame(frame) => Some(frame.to_vec()),
        Incoming::PartialWrite {
            header,
            received,
            rest,
        } => {
            *partials += 1;
            assert_eq!(received.len() + rest, header.count as usize);
            let mut frame = Vec::new();
            ninep::put_twrite_header(
                &mut frame,
                header.tag,
                header.fid,
                header.offset,
                header.count,
            )
            .unwrap();
            frame.extend_from_slice(&received);
            let mut tail = vec![0; rest];
            reader.get_mut().read_exact(&mut tail).await.unwrap();
            frame.extend_from_slice(&tail);
            Some(frame)
        }
    }
}

#[tokio::test]
async fn large_writes_can_be_handed_over_before_their_payload_arrives() {
    for pipe in [7, 4096, 300_000] {
        let (mut tx, rx) = tokio::io::duplex(pipe);
        let mut frames = mixed_frames();
        frames.push(large_write(7, 60_000, 4));
        let sent = frames.concat();
        let writer = tokio::spawn(async move { tx.write_all(&sent).await.unwrap() });
        let mut reader = FrameReader::new(rx, 1 << 20);
        let mut partials = 0;
        for expected in &frames {
            let frame = next_whole(&mut reader, &mut partials).await.unwrap();
            assert!(frame == expected[..], "frame differs (pipe {pipe})");
        }
        writer.await.unwrap();
        assert!(next_whole(&mut reader, &mut partials).await.is_none());
        // The 1 MB write cannot fit in the pipe, so it is always cut.
        assert!(
            partials >= 1,
            "no write was handed over early (pipe {pipe})"
        );
    }
}

#[tokio::test]
async fn a_large_write_whose_count_disagrees_with_its_size_comes_whole_to_be_refused() {
    let (mut tx, rx) = tokio::io::duplex(4096);
    let mut frame = large_write(9, 100_000, 0).to_vec();
    // count (bytes 19..23) one less than the payload the size declares.
    frame[19..23].copy_from_slice(&99_999u32.to_le_bytes());
    let sent = frame.clone();
    let writer = tokio::spawn(async move { tx.write_all(&sent).await.unwrap() });
    let mut reader = FrameReader::new(rx, 1 << 20);
    match reader.next_incoming().await.unwrap().unwrap() {
        Incoming::Frame(whole) => {
            assert!(whole == frame[..]);
            assert!(Request::decode(&whole).is_err());
        }
        Incoming::PartialWrite { .. } => panic!("a malformed Twrite was cut"),
    }
    writer.await.unwrap();
}

#[test]
fn a_twrite_header_is_checked_against_its_size_type_and_msize() {
    let frame = large_write(3, 1000, 0);
    let header = TwriteHeader::parse(&frame, 1 << 20).unwrap();
    assert_eq!(
        header,
        TwriteHeader {
            tag: 3,
            fid: 1,
            offset: 0,
            count: 1000
        }
    );
    assert!(matches!(
        TwriteHeader::parse(&frame[..22], 1 << 20),
        Err(DecodeError::ShortHeader(22))
    ));
    assert!(matches!(
        TwriteHeader::parse(&frame, 1000),
        Err(DecodeError::TooLarge { .. })
    ));
    let mut wrong = frame.to_vec();
    wrong[19..23].copy_from_slice(&1001u32.to_le_bytes());
    assert!(matches!(
        TwriteHeader::parse(&wrong, 1 << 20),
        Err(DecodeError::WriteCount {
            size: 1023,
            count: 1001
        })
    ));
    let read = encode_request(
        3,
        &Request::Read {
            fid: 1,
            offset: 0,
            count: 10,
        },
    );
    let mut padded = read.to_vec();
    padded.resize(23, 0);
    assert!(matches!(
        TwriteHeader::parse(&padded, 1 << 20),
        Err(DecodeError::UnknownType(_))
    ));
}
