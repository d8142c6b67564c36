//! Memory the controller may still reach is never freed: a dead controller's DMA is stopped
//! before its rings, PRP lists and buffers go (or they are leaked when it cannot be stopped),
//! a timed-out admin command keeps its memory until the controller is disabled, and sizes
//! derived from options and capabilities cannot wrap. The model records every page freed while
//! it still referred to it with Bus Master on (`Model::freed_while_reachable`).

use std::time::{Duration, Instant};

use nvme::command::{admin, io};
use nvme::model::{DmaLayout, Effect, Fault, Model, ModelConfig, NamespaceConfig, Target};
use nvme::{
    Completion, Controller, DmaMemory, Error, MAX_TRANSFER_LIMIT, Options, QueuePair, Request,
};

fn options() -> Options {
    Options {
        io_timeout: Duration::from_millis(20),
        admin_timeout: Duration::from_millis(200),
        ..Options::default()
    }
}

fn model() -> Model {
    Model::new(ModelConfig {
        timeout_units: 1,
        ..ModelConfig::default()
    })
}

/// Polls until one request completes (bounded, so a hang fails the test instead of stalling).
fn next_completion(qp: &mut QueuePair<Model>) -> Completion<nvme::model::ModelDma> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut done = None;
    while done.is_none() {
        assert!(Instant::now() < deadline, "no completion");
        qp.poll(|c| done = Some(c));
    }
    done.unwrap()
}

/// A 64 KiB read (data pages and a PRP list page) held in the controller, and then the
/// controller's registers read all-ones: gone from the driver's view, still mastering the bus.
fn kill_mid_io(
    model: &Model,
    ctrl: &Controller<Model>,
) -> (QueuePair<Model>, Completion<nvme::model::ModelDma>) {
    let mut qp = ctrl.queue_pair().unwrap();
    model.inject(Fault {
        target: Target::Io(Some(io::READ)),
        effect: Effect::Hang,
    });
    let buf = qp.alloc_buffer(64 << 10).unwrap();
    qp.submit(Request::read(1, 0, 128, buf).with_tag(1))
        .unwrap();
    qp.flush();
    model.stop_responding();
    let done = next_completion(&mut qp);
    assert!(
        matches!(done.result, Err(Error::ControllerDead)),
        "{:?}",
        done.result
    );
    assert!(ctrl.is_dead());
    (qp, done)
}

#[test]
fn a_dead_controller_is_stopped_before_anything_it_knew_is_freed() {
    let model = model();
    let ctrl = Controller::new(model.clone(), options()).unwrap();
    let (qp, done) = kill_mid_io(&model, &ctrl);
    assert!(!model.bus_master(), "the driver cleared Bus Master");
    assert!(
        done.buffer.is_some(),
        "once the device is stopped, the buffer is safe to hand back"
    );
    drop(done);
    drop(qp);
    drop(ctrl);
    assert_eq!(model.freed_while_reachable(), Vec::<u64>::new());
    assert_eq!(model.mapped_dma_pages(), 0, "and then everything is freed");
}

#[test]
fn a_dead_controller_that_cannot_be_stopped_has_its_memory_leaked_not_freed() {
    let model = model();
    model.refuse_stop_dma();
    let ctrl = Controller::new(model.clone(), options()).unwrap();
    let (qp, done) = kill_mid_io(&model, &ctrl);
    assert!(model.bus_master());
    assert!(
        done.buffer.is_none(),
        "the buffer the device may write is leaked"
    );
    drop(qp);
    drop(ctrl);
    assert_eq!(model.freed_while_reachable(), Vec::<u64>::new());
    // The I/O rings, the PRP lists, the data buffer and the admin rings all stay allocated.
    assert!(
        model.mapped_dma_pages() > 16 + 2,
        "{}",
        model.mapped_dma_pages()
    );
}

#[test]
fn an_identify_that_times_out_keeps_its_page_until_the_controller_is_disabled() {
    let model = model();
    model.inject(Fault {
        target: Target::Admin(admin::IDENTIFY),
        effect: Effect::Hang,
    });
    let err = Controller::new(model.clone(), options()).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert_eq!(model.freed_while_reachable(), Vec::<u64>::new());
    assert_eq!(
        model.mapped_dma_pages(),
        0,
        "freed once the controller was disabled"
    );
}

#[test]
fn a_queue_creation_that_times_out_keeps_its_rings_until_the_controller_stops() {
    let model = model();
    let ctrl = Controller::new(model.clone(), options()).unwrap();
    model.inject(Fault {
        target: Target::Admin(admin::CREATE_CQ),
        effect: Effect::Hang,
    });
    let err = ctrl.queue_pair().unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert_eq!(model.freed_while_reachable(), Vec::<u64>::new());
    // The controller keeps working, and the parked rings go at shutdown.
    let mut qp = ctrl.queue_pair().unwrap();
    qp.write(1, 0, &[7; 512], false).unwrap();
    drop(qp);
    drop(ctrl);
    assert_eq!(model.freed_while_reachable(), Vec::<u64>::new());
    assert_eq!(model.mapped_dma_pages(), 0);
}

#[test]
fn huge_transfers_and_deep_queues_keep_every_slot_on_its_own_list_pages() {
    // Without a clamp and checked sizes, the PRP list space of this configuration wraps and
    // slot 614's list lands on slot 0's pages.
    let model = Model::new(ModelConfig {
        mdts: 0,
        dma_layout: DmaLayout::Contiguous,
        namespaces: vec![NamespaceConfig {
            blocks: 32 * 1024,
            lba_shift: 9,
        }],
        ..ModelConfig::default()
    });
    let options = Options {
        queue_depth: 1842,
        max_transfer: 0xd50e_2d07_8140_6000,
        ..options()
    };
    let ctrl = Controller::new(model.clone(), options).unwrap();
    assert_eq!(ctrl.max_transfer(), MAX_TRANSFER_LIMIT);
    let mut qp = ctrl.queue_pair().unwrap();
    assert_eq!(qp.depth(), 1842);
    let media: Vec<u8> = (0..640 * 32 * 512).map(|i| (i / 512 % 251) as u8).collect();
    qp.write(1, 0, &media, false).unwrap();
    // 640 reads of 16 KiB (five pages at a 2 KiB offset: a PRP list each), all in flight.
    for tag in 0..640u64 {
        let buf = qp.alloc_buffer(5 * 4096).unwrap();
        let req = Request::read(1, tag * 32, 32, buf).at_offset(2048);
        qp.submit(req.with_tag(tag)).unwrap();
    }
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done < 640 {
        assert!(Instant::now() < deadline);
        done += qp.poll(|c| {
            c.result.unwrap();
            let mut got = vec![0; 32 * 512];
            c.buffer.unwrap().read(2048, &mut got);
            let at = c.tag as usize * 32 * 512;
            assert!(
                got == media[at..at + got.len()],
                "read {} got another's data",
                c.tag
            );
        });
    }
    assert_eq!(model.stats().reads, 640);
}

#[test]
fn options_out_of_range_are_a_clear_error() {
    for (options, what) in [
        (
            Options {
                io_timeout: Duration::MAX,
                ..Options::default()
            },
            "io_timeout",
        ),
        (
            Options {
                admin_timeout: Duration::ZERO,
                ..Options::default()
            },
            "admin_timeout",
        ),
        (
            Options {
                queue_depth: 0,
                ..Options::default()
            },
            "queue_depth",
        ),
    ] {
        let err = Controller::new(Model::new(ModelConfig::default()), options).unwrap_err();
        assert!(matches!(err, Error::InvalidOptions(_)), "{err}");
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn the_registers_stay_readable_but_not_writable_from_outside() {
    let model = model();
    let ctrl = Controller::new(model, options()).unwrap();
    let csts = ctrl.platform().read32(nvme::regs::CSTS).unwrap();
    assert_eq!(csts & nvme::regs::CSTS_RDY, nvme::regs::CSTS_RDY);
    assert!(ctrl.platform().read64(nvme::regs::CAP).is_some());
    // Bad offsets are refused, not a panic: misaligned, doorbells, past the end.
    assert_eq!(ctrl.platform().read32(2), None);
    assert_eq!(ctrl.platform().read32(nvme::regs::DOORBELL_BASE), None);
    assert_eq!(ctrl.platform().read32(usize::MAX - 3), None);
}
