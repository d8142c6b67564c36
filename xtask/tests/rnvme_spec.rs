//! The protocol half of `rnvme` (`kernel/rnvme/nvme_spec.rs`) compiled for the host: it uses nothing
//! of the kernel, so its encoding, decoding and PRP building are tested here, fast, without a guest.

#[allow(dead_code)]
#[path = "../../kernel/rnvme/nvme_spec.rs"]
mod nvme_spec;
// What `nvme_spec` builds on: the user-space driver's command module, through the same link the
// kernel build follows.
#[allow(dead_code, clippy::wrong_self_convention)]
#[path = "../../kernel/rnvme/nvme_command.rs"]
mod nvme_command;
#[allow(dead_code)]
#[path = "../../kernel/rnvme/nvme_status.rs"]
mod nvme_status;

use nvme_spec::{
    Cap, Command, IdController, IdNamespace, PAGE, PRPS_PER_PAGE, Prp2, PrpError, blk_status,
    build_prps, completion_status,
};

/// PRPs for `segments` carrying `length` bytes, with the list entries.
fn prps(segments: &[(u64, u64)], length: u64) -> Result<(u64, Prp2, Vec<u64>), PrpError> {
    let mut list = Vec::new();
    let (prp1, prp2) = build_prps(segments.iter().copied(), length, |i, a| {
        assert_eq!(i, list.len());
        list.push(a);
    })?;
    Ok((prp1, prp2, list))
}

#[test]
fn one_page_needs_only_prp1_even_at_an_offset() {
    assert_eq!(prps(&[(0x10000, 4096)], 4096).unwrap().0, 0x10000);
    assert_eq!(prps(&[(0x10000, 4096)], 4096).unwrap().1, Prp2::None);
    assert_eq!(prps(&[(0x10200, 512)], 512).unwrap().1, Prp2::None);
    // 3.5 KiB from offset 0x200 ends exactly at the page boundary.
    assert_eq!(prps(&[(0x10200, 0xe00)], 0xe00).unwrap().1, Prp2::None);
}

#[test]
fn two_pages_put_the_second_in_prp2_and_more_use_a_list() {
    // Offset 0x200 and 4 KiB: crosses one boundary, so two pages.
    assert_eq!(
        prps(&[(0x10200, 4096)], 4096).unwrap().1,
        Prp2::Page(0x11000)
    );
    // 8 KiB page-aligned: two pages.
    assert_eq!(
        prps(&[(0x20000, 8192)], 8192).unwrap().1,
        Prp2::Page(0x21000)
    );
    // 8 KiB from an offset: three pages, a list of two.
    let (prp1, prp2, list) = prps(&[(0x20800, 8192)], 8192).unwrap();
    assert_eq!((prp1, prp2), (0x20800, Prp2::List(2)));
    assert_eq!(list, [0x21000, 0x22000]);
    // 512 KiB spread over segments that meet on page boundaries.
    let segments = [(0x100000, 0x3000), (0x500000, 0x7d000), (0x900000, 0x1000)];
    let (prp1, prp2, list) = prps(&segments, 0x81000).unwrap();
    assert_eq!((prp1, prp2), (0x100000, Prp2::List(0x80)));
    assert_eq!(&list[..3], [0x101000, 0x102000, 0x500000]);
    assert_eq!(list[list.len() - 1], 0x900000);
}

#[test]
fn segments_that_break_the_prp_rules_are_refused() {
    // A middle segment starting inside a page.
    assert_eq!(
        prps(&[(0x10000, 4096), (0x20200, 4096)], 8192).unwrap_err(),
        PrpError::Misaligned
    );
    // The first segment ending inside a page with more to come.
    assert_eq!(
        prps(&[(0x10000, 2048), (0x20000, 4096)], 6144).unwrap_err(),
        PrpError::Misaligned
    );
    // Fewer bytes than the transfer.
    assert_eq!(prps(&[(0x10000, 4096)], 8192).unwrap_err(), PrpError::Short);
    assert_eq!(prps(&[], 512).unwrap_err(), PrpError::Short);
    // More pages than one list page holds.
    let huge = (PRPS_PER_PAGE as u64 + 2) * PAGE;
    assert_eq!(
        prps(&[(0x100000, huge)], huge).unwrap_err(),
        PrpError::TooLong
    );
}

#[test]
fn commands_are_encoded_as_the_spec_lays_them_out() {
    let rw = Command::read_write(true, 1, 0x1_2345_6789, 8, true)
        .with_cid(0x42)
        .with_prps(0x1000, 0x2000);
    assert_eq!(rw.dw[0], 0x0042_0001);
    assert_eq!(rw.dw[1], 1);
    assert_eq!(
        (rw.dw[6], rw.dw[7], rw.dw[8], rw.dw[9]),
        (0x1000, 0, 0x2000, 0)
    );
    assert_eq!((rw.dw[10], rw.dw[11]), (0x2345_6789, 1));
    assert_eq!(rw.dw[12], 7 | 1 << 30);
    let read = Command::read_write(false, 3, 0, 0x1_0000, false);
    assert_eq!((read.dw[0] & 0xff, read.dw[12]), (0x02, 0xffff));
    let cq = Command::create_cq(2, 128, 0xabc000, 1);
    assert_eq!(
        (cq.dw[0] & 0xff, cq.dw[10], cq.dw[11]),
        (0x05, 127 << 16 | 2, 1 << 16 | 3)
    );
    let sq = Command::create_sq(2, 128, 0xdef000);
    assert_eq!(
        (sq.dw[0] & 0xff, sq.dw[10], sq.dw[11]),
        (0x01, 127 << 16 | 2, 2 << 16 | 1)
    );
    let nq = Command::set_queue_count(2);
    assert_eq!(
        (nq.dw[0] & 0xff, nq.dw[10], nq.dw[11]),
        (0x09, 7, 1 << 16 | 1)
    );
    assert_eq!(Command::identify(2, 0, 0x5000).dw[10], 2);
    assert_eq!(Command::flush(7).dw[..2], [0, 7]);
    // Abort names the submission queue (bits 15:0) and the command (31:16) in dword 10.
    let abort = Command::abort(2, 0x55).with_cid(3);
    assert_eq!((abort.dw[0], abort.dw[10]), (0x0003_0008, 0x55 << 16 | 2));
    // Doorbell Buffer Config: the shadow page in PRP1, the event index page in PRP2.
    let dbbuf = Command::doorbell_buffer_config(0x1_0000_3000, 0x4000);
    assert_eq!(
        (dbbuf.dw[0] & 0xff, dbbuf.dw[6], dbbuf.dw[7], dbbuf.dw[8]),
        (0x7c, 0x3000, 1, 0x4000)
    );
}

#[test]
fn status_and_capabilities_are_decoded() {
    // Phase bit set, status 0: success.
    assert_eq!(completion_status(1 << 16 | 5), None);
    // LBA out of range (SCT 0, SC 0x80) and DNR: BLK_STS_TARGET.
    let lba = completion_status((0x80 | 1 << 14) << 17).unwrap();
    assert_eq!(
        (lba.sct, lba.sc, lba.dnr, blk_status(lba)),
        (0, 0x80, true, 5)
    );
    assert_eq!(
        lba.to_string(),
        "LBA out of range (type 0x0, code 0x80, do not retry)"
    );
    // An unrecovered read error (media, SCT 2): BLK_STS_MEDIUM.
    let media = completion_status((2 << 8 | 0x81) << 17).unwrap();
    assert_eq!(blk_status(media), 7);
    // Invalid opcode: BLK_STS_NOTSUPP; capacity exceeded: BLK_STS_NOSPC; others BLK_STS_IOERR.
    assert_eq!(blk_status(completion_status(0x01 << 17).unwrap()), 1);
    assert_eq!(blk_status(completion_status(0x81 << 17).unwrap()), 3);
    assert_eq!(blk_status(completion_status(0x04 << 17).unwrap()), 10);
    // QEMU's CAP: MQES 0x7ff, TO 0xf, DSTRD 0, MPSMIN 0.
    let cap = Cap::decode(0x0000_0020_0f01_07ff | 1 << 37);
    assert_eq!(cap.max_queue_entries, 0x800);
    assert_eq!(cap.timeout_ms, 8000);
    assert_eq!((cap.sq_doorbell(0), cap.cq_doorbell(0)), (0x1000, 0x1004));
    assert_eq!((cap.sq_doorbell(2), cap.cq_doorbell(2)), (0x1010, 0x1014));
    assert_eq!(cap.mps_min_shift, 12);
    assert_eq!(Cap::decode(2 << 32).doorbell_stride, 16);
}

#[test]
fn identify_structures_are_parsed() {
    let mut ctrl = vec![0u8; 4096];
    ctrl[4..12].copy_from_slice(b"deadbeef");
    ctrl[4 + 8..24].fill(b' ');
    ctrl[24..38].copy_from_slice(b"QEMU NVMe Ctrl");
    ctrl[38..64].fill(b' ');
    ctrl[77] = 7;
    ctrl[525] = 1;
    let id = IdController::parse(&ctrl).unwrap();
    assert_eq!(nvme_spec::ascii(&id.serial), b"deadbeef");
    assert_eq!(nvme_spec::ascii(&id.model), b"QEMU NVMe Ctrl");
    assert_eq!(id.max_transfer(12), Some(512 << 10));
    assert!(id.volatile_write_cache);
    assert!(!id.shadow_doorbells);
    // OACS (bytes 257:256) bit 8: Doorbell Buffer Config, as QEMU's controller reports it.
    ctrl[257] = 0x01;
    assert!(IdController::parse(&ctrl).unwrap().shadow_doorbells);
    assert!(IdController::parse(&ctrl[..100]).is_none());

    let mut ns = vec![0u8; 4096];
    ns[0..8].copy_from_slice(&524288u64.to_le_bytes());
    ns[25] = 1; // two formats
    ns[26] = 1; // the second is in use
    ns[128 + 2] = 9;
    ns[132 + 2] = 12;
    let id = IdNamespace::parse(&ns).unwrap();
    assert_eq!((id.blocks, id.lba_shift, id.metadata), (524288, 12, 0));
    ns[26] = 5; // beyond the formats listed
    assert!(IdNamespace::parse(&ns).is_none());
}
