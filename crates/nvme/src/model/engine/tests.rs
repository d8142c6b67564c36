//! The model refuses what a controller must refuse.

use super::*;
use crate::command::{admin, io};
use crate::model::{DmaLayout, ModelConfig};
use crate::status::{csc, sc};

fn engine(config: ModelConfig) -> Engine {
    let mut e = Engine::new(config, Bus::new());
    e.queues_granted = Some(4);
    e
}

fn status(outcome: Outcome) -> Option<(u8, u8)> {
    match outcome {
        Outcome::Done { status, .. } => status.map(|s| (s.sct, s.sc)),
        _ => panic!("the command did not complete"),
    }
}

fn queue_cmd(opcode: u8, qid: u16, entries: u32, cdw11: u32, prp1: u64) -> Sqe {
    let mut sqe = Sqe::new(opcode, 0);
    sqe.set_cdw(10, (entries - 1) << 16 | qid as u32);
    sqe.set_cdw(11, cdw11);
    sqe.set_prps(prp1, 0);
    sqe
}

#[test]
fn queue_creation_checks_size_id_contiguity_and_order() {
    let mut e = engine(ModelConfig {
        mqes: 15,
        ..ModelConfig::default()
    });
    let cq = |qid, entries, pc| queue_cmd(admin::CREATE_CQ, qid, entries, pc, 0x10_0000);
    let too_big = status(e.execute_admin(&cq(1, 17, 1)));
    assert_eq!(
        too_big,
        Some((sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_SIZE))
    );
    let bad_id = status(e.execute_admin(&cq(5, 16, 1)));
    assert_eq!(bad_id, Some((sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_ID)));
    let not_contiguous = status(e.execute_admin(&cq(1, 16, 0)));
    assert_eq!(not_contiguous, Some((sct::GENERIC, sc::INVALID_FIELD)));
    let sq_first = queue_cmd(admin::CREATE_SQ, 1, 16, 1 << 16 | 1, 0x20_0000);
    let no_cq = status(e.execute_admin(&sq_first));
    assert_eq!(no_cq, Some((sct::COMMAND_SPECIFIC, csc::INVALID_CQ)));
    assert_eq!(status(e.execute_admin(&cq(1, 16, 1))), None);
    assert_eq!(status(e.execute_admin(&sq_first)), None);
    let delete_cq = queue_cmd(admin::DELETE_CQ, 1, 1, 0, 0);
    let in_use = status(e.execute_admin(&delete_cq));
    assert_eq!(
        in_use,
        Some((sct::COMMAND_SPECIFIC, csc::INVALID_QUEUE_DELETION))
    );
    let delete_sq = queue_cmd(admin::DELETE_SQ, 1, 1, 0, 0);
    assert_eq!(status(e.execute_admin(&delete_sq)), None);
    assert_eq!(status(e.execute_admin(&delete_cq)), None);
}

#[test]
fn number_of_queues_is_set_once_per_reset() {
    let mut e = engine(ModelConfig::default());
    e.queues_granted = None;
    let mut sqe = Sqe::new(admin::SET_FEATURES, 0);
    sqe.set_cdw(10, 0x07);
    sqe.set_cdw(11, 99 << 16 | 99);
    let Outcome::Done { dw0, status: None } = e.execute_admin(&sqe) else {
        panic!("Set Features failed");
    };
    assert_eq!(dw0, 7 << 16 | 7);
    let again = status(e.execute_admin(&sqe));
    assert_eq!(again, Some((sct::GENERIC, sc::COMMAND_SEQUENCE_ERROR)));
}

#[test]
fn io_is_checked_for_namespace_range_mdts_and_prp_alignment() {
    let mut e = engine(ModelConfig {
        mdts: 1,
        dma_layout: DmaLayout::Contiguous,
        ..ModelConfig::default()
    });
    let read = |nsid, lba, blocks: u32, prp1| {
        let mut sqe = Sqe::new(io::READ, nsid);
        sqe.set_slba(lba);
        sqe.set_cdw(12, blocks - 1);
        sqe.set_prps(prp1, 0);
        sqe
    };
    let ns = status(e.execute_io(&read(2, 0, 1, 0x1000)));
    assert_eq!(ns, Some((sct::GENERIC, sc::INVALID_NAMESPACE)));
    let end = e.config.namespaces[0].blocks;
    let past = status(e.execute_io(&read(1, end - 1, 2, 0x1000)));
    assert_eq!(past, Some((sct::GENERIC, sc::LBA_OUT_OF_RANGE)));
    // MDTS 1 with 4 KiB pages: 8 KiB at most.
    let big = status(e.execute_io(&read(1, 0, 17, 0x1000)));
    assert_eq!(big, Some((sct::GENERIC, sc::INVALID_FIELD)));
    let odd = status(e.execute_io(&read(1, 0, 1, 0x1002)));
    assert_eq!(odd, Some((sct::GENERIC, sc::PRP_OFFSET_INVALID)));
    // Unmapped memory: the transfer fails instead of touching anything.
    let unmapped = status(e.execute_io(&read(1, 0, 1, 0x1000)));
    assert_eq!(unmapped, Some((sct::GENERIC, sc::DATA_TRANSFER_ERROR)));
    let buf = e.bus.alloc(4096, DmaLayout::Contiguous);
    use crate::platform::DmaMemory;
    let ok = status(e.execute_io(&read(1, 0, 8, buf.bus_addr(0))));
    assert_eq!(ok, None);
    let mut bad_prp2 = read(1, 0, 16, buf.bus_addr(0));
    bad_prp2.set_prps(buf.bus_addr(0), buf.bus_addr(0) + 512);
    let misaligned = status(e.execute_io(&bad_prp2));
    assert_eq!(misaligned, Some((sct::GENERIC, sc::PRP_OFFSET_INVALID)));
}

#[test]
fn a_command_id_still_outstanding_is_a_conflict() {
    let mut e = engine(ModelConfig::default());
    e.held.push(Held {
        sqid: 1,
        cid: 5,
        pages: Vec::new(),
    });
    let mut sqe = Sqe::new(io::FLUSH, 1);
    sqe.set_cid(5);
    e.sqs[1] = Some(Sq {
        base: 0,
        entries: 4,
        cqid: 1,
        head: 0,
    });
    let bus = Arc::clone(&e.bus);
    let sq = bus.alloc(4096, DmaLayout::Contiguous);
    let cq = bus.alloc(4096, DmaLayout::Contiguous);
    use crate::platform::DmaMemory;
    sq.write(0, &sqe.to_bytes());
    if let Some(q) = e.sqs[1].as_mut() {
        q.base = sq.bus_addr(0);
    }
    e.cqs[1] = Some(Cq {
        base: cq.bus_addr(0),
        entries: 4,
        head: 0,
        tail: 0,
        phase: true,
        vector: None,
        waiting: VecDeque::new(),
    });
    e.csts = regs::CSTS_RDY;
    e.sq_doorbell(1, 1);
    let mut dw = [0u8; 16];
    cq.read(0, &mut dw);
    let cqe = Cqe::from_dwords(std::array::from_fn(|i| {
        u32::from_le_bytes([dw[4 * i], dw[4 * i + 1], dw[4 * i + 2], dw[4 * i + 3]])
    }));
    assert_eq!(cqe.cid, 5);
    assert_eq!(Status::from_field(cqe.status).map(|s| s.sc), Some(0x03));
    assert_eq!(e.stats.flushes, 0);
}
