//! Raw I/O commands (`QueuePair::io_passthru`, `nvme-tool io-passthru`) against the model: data both
//! ways through PRP lists, the controller's status for what it refuses, the driver's own refusals.

use nvme::model::{Model, ModelConfig};
use nvme::status::{sc, sct};
use nvme::{Controller, Error, IoPassthru, Options, Request};

fn controller() -> (Model, Controller<Model>) {
    let model = Model::new(ModelConfig::default());
    let ctrl = Controller::new(model.clone(), Options::default()).unwrap();
    (model, ctrl)
}

fn status_of(e: Error) -> (u8, u8) {
    match e {
        Error::Command { status, .. } => (status.sct, status.sc),
        other => panic!("expected a command status, got {other:?}"),
    }
}

/// Read (0x02) or Write (0x01) of `blocks` 512-byte blocks at `lba` of namespace 1.
fn rw(opcode: u8, lba: u64, blocks: u32, to_device: bool) -> IoPassthru {
    IoPassthru {
        opcode,
        nsid: 1,
        cdw: [lba as u32, (lba >> 32) as u32, blocks - 1, 0, 0, 0],
        data_len: blocks as usize * 512,
        to_device,
    }
}

#[test]
fn raw_writes_and_reads_move_data_through_prp_lists() {
    let (model, ctrl) = controller();
    let mut qp = ctrl.queue_pair().unwrap();
    // 40 KiB: ten pages, so the data pointer is a PRP list.
    let data: Vec<u8> = (0..40 << 10).map(|i: usize| (i * 7 % 251) as u8).collect();
    let before = model.stats();
    let (dw0, read) = qp.io_passthru(&rw(0x01, 16, 80, true), &data).unwrap();
    assert_eq!((dw0, read.len()), (0, 0));
    let after = model.stats();
    assert_eq!(after.writes - before.writes, 1, "one command, never split");
    assert_eq!(after.largest_transfer, data.len());
    assert!(after.most_prp_list_pages >= 1);
    // What the raw write put there, the driver's own read sees, and so does a raw read.
    let mut back = vec![0; data.len()];
    qp.read(1, 16, &mut back).unwrap();
    assert_eq!(back, data);
    let (_, read) = qp.io_passthru(&rw(0x02, 16, 80, false), &[]).unwrap();
    assert_eq!(read, data);
    // A command with no data: Flush.
    let flush = IoPassthru {
        opcode: 0x00,
        nsid: 1,
        ..IoPassthru::default()
    };
    assert_eq!(qp.io_passthru(&flush, &[]).unwrap(), (0, Vec::new()));
}

#[test]
fn the_controllers_refusals_are_statuses_and_the_queue_pair_goes_on() {
    let (_, ctrl) = controller();
    let mut qp = ctrl.queue_pair().unwrap();
    let unknown = IoPassthru {
        opcode: 0x7f,
        nsid: 1,
        ..IoPassthru::default()
    };
    let err = qp.io_passthru(&unknown, &[]).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_OPCODE));
    let past_the_end = rw(0x02, u64::from(u32::MAX), 1, false);
    let err = qp.io_passthru(&past_the_end, &[]).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::LBA_OUT_OF_RANGE));
    let no_namespace = IoPassthru {
        nsid: 9,
        ..rw(0x02, 0, 1, false)
    };
    let err = qp.io_passthru(&no_namespace, &[]).unwrap_err();
    assert_eq!(status_of(err), (sct::GENERIC, sc::INVALID_NAMESPACE));
    qp.write(1, 0, &[5; 512], false).unwrap();
    let (_, read) = qp.io_passthru(&rw(0x02, 0, 1, false), &[]).unwrap();
    assert_eq!(read, [5; 512]);
}

#[test]
fn the_driver_refuses_what_it_cannot_send() {
    let (_, ctrl) = controller();
    let mut qp = ctrl.queue_pair().unwrap();
    let too_long = IoPassthru {
        data_len: qp.max_transfer() + 512,
        ..rw(0x02, 0, 1, false)
    };
    assert!(matches!(
        qp.io_passthru(&too_long, &[]),
        Err(Error::InvalidRequest(_))
    ));
    // Writing more than was given.
    assert!(matches!(
        qp.io_passthru(&rw(0x01, 0, 2, true), &[1; 512]),
        Err(Error::InvalidRequest(_))
    ));
    // Not while other requests are in flight.
    let buffer = qp.alloc_buffer(512).unwrap();
    qp.submit(Request::read(1, 0, 1, buffer)).unwrap();
    assert!(matches!(
        qp.io_passthru(&rw(0x02, 0, 1, false), &[]),
        Err(Error::InvalidRequest(_))
    ));
    let mut done = 0;
    while done == 0 {
        done = qp.poll(|c| c.result.unwrap());
    }
    assert!(qp.io_passthru(&rw(0x02, 0, 1, false), &[]).is_ok());
}
