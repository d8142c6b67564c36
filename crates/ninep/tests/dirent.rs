//! Rreaddir entry packing: whole entries only, built in place.

mod common;

use bytes::Bytes;
use common::qid;
use ninep::consts::dirent_type;
use ninep::{DecodeError, DirentIter, ReaddirFrame, Response, dirent_len};

#[test]
fn entry_length_is_qid_offset_type_and_name() {
    assert_eq!(dirent_len(b""), 24);
    assert_eq!(dirent_len(b"file.txt"), 13 + 8 + 1 + 2 + 8);
}

#[test]
fn readdir_frame_packs_entries_in_place_and_stops_at_the_budget() {
    let names: Vec<String> = (0..100).map(|i| format!("entry-{i:03}")).collect();
    let budget = 10 * dirent_len(b"entry-000") + 5;
    let mut buf = b"previous frame".to_vec();
    let mut frame = ReaddirFrame::begin(&mut buf, 42, budget as u32);
    let mut pushed = 0;
    for (i, name) in names.iter().enumerate() {
        if !frame
            .entries()
            .push(
                &qid(i as u64),
                i as u64 + 1,
                dirent_type::REG,
                name.as_bytes(),
            )
            .unwrap()
        {
            break;
        }
        pushed += 1;
    }
    assert_eq!(pushed, 10);
    let len = frame.finish();
    assert_eq!(
        &buf[..14],
        b"previous frame",
        "bytes before the frame are untouched"
    );
    let frame = Bytes::from(buf).slice(14..);
    assert_eq!(frame.len(), len);
    let (tag, Response::Readdir { data }) = Response::decode(&frame).unwrap() else {
        panic!("not an Rreaddir");
    };
    assert_eq!(tag, 42);
    let entries: Vec<_> = DirentIter::new(data).map(Result::unwrap).collect();
    assert_eq!(entries.len(), 10);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.name, names[i].as_bytes());
        assert_eq!(e.offset, i as u64 + 1);
        assert_eq!(e.qid, qid(i as u64));
        assert_eq!(e.ty, dirent_type::REG);
    }
}

#[test]
fn a_refused_entry_writes_nothing_and_a_smaller_one_may_still_fit() {
    let mut buf = Vec::new();
    let mut w = ninep::DirentWriter::new(&mut buf, dirent_len(b"ab"));
    assert!(!w.fits(b"abc"));
    assert!(!w.push(&qid(1), 1, 0, b"abc").unwrap());
    assert!(w.is_empty());
    assert!(w.push(&qid(1), 1, 0, b"ab").unwrap());
    assert!(!w.push(&qid(2), 2, 0, b"").unwrap());
    assert_eq!(buf.len(), dirent_len(b"ab"));
}

#[test]
fn a_name_too_long_for_9p_is_an_error() {
    let mut buf = Vec::new();
    let mut w = ninep::DirentWriter::new(&mut buf, usize::MAX);
    assert!(w.push(&qid(1), 1, 0, &vec![b'n'; 70_000]).is_err());
    assert!(buf.is_empty());
}

#[test]
fn a_truncated_entry_yields_one_error_then_ends() {
    let mut buf = Vec::new();
    let mut w = ninep::DirentWriter::new(&mut buf, 1000);
    w.push(&qid(1), 1, 0, b"whole").unwrap();
    w.push(&qid(2), 2, 0, b"cut").unwrap();
    buf.truncate(buf.len() - 2);
    let mut it = DirentIter::new(Bytes::from(buf));
    assert_eq!(it.next().unwrap().unwrap().name, &b"whole"[..]);
    assert_eq!(
        it.next().unwrap(),
        Err(DecodeError::Truncated {
            message: "Rreaddir entry",
            field: "name"
        })
    );
    assert!(it.next().is_none());
}
