//! Bulk reads and writes: large payloads (moved by `splice(2)` on sockets) arrive intact at any
//! offset, whatever else is in flight.

mod common;

use common::*;
use ninep::Client;

/// Bytes that differ at every offset, so a misplaced page shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

/// Reads `len` bytes at `offset` as a client does: asking again after a short read, stopping at
/// end of file.
async fn read_all(c: &Client, fid: u32, offset: u64, len: usize, count: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        let want = count.min((len - out.len()) as u32);
        let data = c.read(fid, offset + out.len() as u64, want).await.unwrap();
        assert!(data.len() <= want as usize, "more than asked for");
        if data.is_empty() {
            break;
        }
        out.extend_from_slice(&data);
    }
    out
}

/// Both kinds of export, on disk (reads on the blocking pool) and in memory (reads inline),
/// over a unix socket (where Rread payloads are spliced), and an export in memory over TCP
/// (where Twrite payloads are).
async fn harnesses() -> [Harness; 3] {
    [
        Harness::start().await,
        Harness::in_memory().await,
        Harness::tcp().await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_reads_return_the_file_at_any_offset() {
    for h in harnesses().await {
        large_reads_at_any_offset(h).await;
    }
}

async fn large_reads_at_any_offset(h: Harness) {
    let len = 3 * 1024 * 1024 + 12_345;
    let content = pattern(len);
    std::fs::write(h.export().join("big"), &content).unwrap();
    let c = h.client().await;
    let f = walk_to(&c, "big").await.unwrap();
    c.lopen(f, O_RDONLY).await.unwrap();
    let most = MSIZE - ninep::P9_IOHDRSZ;
    for offset in [
        0,
        1,
        4095,
        4096,
        4097,
        1 << 20,
        (2 << 20) + 7,
        len as u64 - 5000,
    ] {
        for count in [most, 40_000, 32 * 1024, 1000] {
            let want = (len - offset as usize).min(3 * most as usize);
            let got = read_all(&c, f, offset, want, count).await;
            let expected = &content[offset as usize..offset as usize + want];
            assert!(
                got == expected,
                "offset {offset}, count {count}: {} bytes differ",
                got.iter().zip(expected).filter(|(a, b)| a != b).count()
            );
        }
    }
    // One request gets every byte asked for that the file has, even starting inside a page
    // (a spliced payload then needs one more page than its length suggests).
    for offset in [
        1,
        100,
        4095,
        4097,
        (1 << 20) + 24,
        len as u64 - most as u64 - 3,
    ] {
        let data = c.read(f, offset, most).await.unwrap();
        let start = offset as usize;
        assert_eq!(data.len(), most as usize, "short read at offset {offset}");
        assert!(
            data == content[start..start + most as usize],
            "offset {offset}"
        );
    }
    // At and past the end of the file: nothing.
    assert!(c.read(f, len as u64, most).await.unwrap().is_empty());
    assert!(c.read(f, len as u64 + 10, most).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_reads_and_flushes_never_mix_payloads() {
    for h in harnesses().await {
        concurrent_reads_and_flushes(h).await;
    }
}

async fn concurrent_reads_and_flushes(h: Harness) {
    let len = 4 << 20;
    let content = std::sync::Arc::new(pattern(len));
    std::fs::write(h.export().join("big"), &*content).unwrap();
    let c = h.client().await;
    let f = walk_to(&c, "big").await.unwrap();
    c.lopen(f, O_RDONLY).await.unwrap();
    for round in 0..20u64 {
        let mut readers = Vec::new();
        for i in 0..12u64 {
            let (c, content) = (c.clone(), content.clone());
            let offset = (round * 7919 + i * 262_147) % (len as u64 - 300_000);
            readers.push(tokio::spawn(async move {
                let data = c.read(f, offset, 300_000).await.unwrap();
                assert!(!data.is_empty());
                let at = offset as usize;
                assert!(data[..] == content[at..at + data.len()], "read at {offset}");
            }));
        }
        // Requests given up half-way leave their pipes behind: later reads must not see
        // their bytes.
        for i in 0..4u64 {
            let offset = i * 1_000_003;
            let pending = c
                .start(&ninep::Request::Read {
                    fid: f,
                    offset,
                    count: 900_000,
                })
                .unwrap();
            if i % 2 == 0 {
                tokio::task::yield_now().await;
            }
            c.flush(pending.tag()).await.unwrap();
            match pending.wait().await {
                Ok(ninep::Response::Read { data }) => {
                    let at = offset as usize;
                    assert!(data[..] == content[at..at + data.len()], "read at {offset}");
                }
                Err(ninep::ClientError::Flushed) => {}
                other => panic!("flushed read: {other:?}"),
            }
        }
        for r in readers {
            r.await.unwrap();
        }
    }
    let again = read_all(&c, f, 0, len, MSIZE - ninep::P9_IOHDRSZ).await;
    assert!(again == *content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_writes_land_whole() {
    for h in harnesses().await {
        large_writes(h).await;
    }
}

async fn large_writes(h: Harness) {
    let c = h.client().await;
    let f = create_file(&c, "out", b"").await;
    let chunk = (MSIZE - ninep::P9_IOHDRSZ) as usize;
    // Into a new file, then over it again with other bytes (an overwrite of an in-memory file
    // is written inline, an extending write on the blocking pool), in unaligned pieces.
    let content = pattern(5 << 20);
    write_concurrently(&c, f, &content, chunk - 4093).await;
    assert!(std::fs::read(h.export().join("out")).unwrap() == content);
    let mut other = content.clone();
    other.reverse();
    write_concurrently(&c, f, &other[..content.len() - 1000], chunk - 1).await;
    let mut expected = other[..content.len() - 1000].to_vec();
    expected.extend_from_slice(&content[content.len() - 1000..]);
    assert!(std::fs::read(h.export().join("out")).unwrap() == expected);
}

/// Writes `content` from offset 0 in pieces of `piece` bytes, all in flight at once.
async fn write_concurrently(c: &Client, f: u32, content: &[u8], piece: usize) {
    let mut writes = Vec::new();
    for (i, part) in content.chunks(piece).enumerate() {
        let c = c.clone();
        let part = bytes::Bytes::copy_from_slice(part);
        let offset = (i * piece) as u64;
        writes.push(tokio::spawn(async move {
            assert_eq!(
                c.write(f, offset, part.clone()).await.unwrap(),
                part.len() as u32
            );
        }));
    }
    for w in writes {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_large_writes_leave_nothing_behind_for_later_writes() {
    for h in harnesses().await {
        flushed_writes(h).await;
    }
}

async fn flushed_writes(h: Harness) {
    let c = h.client().await;
    let f = create_file(&c, "out", b"").await;
    let chunk = 700_000;
    let rounds = 8;
    let content = pattern(rounds * chunk);
    for round in 0..rounds {
        // A write given up at once, far from the checked range: whether it landed or not,
        // none of its bytes may end up in the next write.
        let junk = ninep::Request::Write {
            fid: f,
            offset: (100 * chunk) as u64,
            data: bytes::Bytes::from(vec![0xEE; chunk]),
        };
        let pending = c.start(&junk).unwrap();
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        c.flush(pending.tag()).await.unwrap();
        match pending.wait().await {
            Ok(ninep::Response::Write { count }) => assert_eq!(count as usize, chunk),
            Err(ninep::ClientError::Flushed) => {}
            other => panic!("flushed write: {other:?}"),
        }
        let at = round * chunk;
        let part = bytes::Bytes::copy_from_slice(&content[at..at + chunk]);
        assert_eq!(c.write(f, at as u64, part).await.unwrap(), chunk as u32);
    }
    let got = std::fs::read(h.export().join("out")).unwrap();
    assert!(got[..rounds * chunk] == content[..], "written bytes differ");
}
