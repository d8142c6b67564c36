//! Injected faults: every one ends in recovery or a clear error, never a hang, a lost or a
//! duplicated completion.

use std::time::Duration;

use nvme::command::{admin, io};
use nvme::model::{Effect, Fault, Model, ModelConfig, Target};
use nvme::status::{sc, sct};
use nvme::{Controller, DmaMemory, Error, Options, Request, Status};

fn options() -> Options {
    Options {
        io_timeout: Duration::from_millis(20),
        admin_timeout: Duration::from_millis(200),
        ..Options::default()
    }
}

fn setup() -> (Model, Controller<Model>) {
    let model = Model::new(ModelConfig {
        timeout_units: 1,
        ..ModelConfig::default()
    });
    let ctrl = Controller::new(model.clone(), options()).expect("bring-up");
    (model, ctrl)
}

fn io_fault(opcode: u8, effect: Effect) -> Fault {
    Fault {
        target: Target::Io(Some(opcode)),
        effect,
    }
}

#[test]
fn a_do_not_retry_error_reaches_the_caller_with_its_status() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    let media_error = Status {
        sct: sct::MEDIA,
        sc: 0x81,
        dnr: true,
    };
    model.inject(io_fault(io::READ, Effect::Fail(media_error)));
    let err = qp.read(1, 0, &mut [0; 512]).unwrap_err();
    assert_eq!(err.status(), Some(media_error));
    assert!(matches!(
        err,
        Error::Command {
            opcode: io::READ,
            ..
        }
    ));
    qp.read(1, 0, &mut [0; 512]).unwrap();
}

#[test]
fn a_retryable_error_is_retried_and_succeeds() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    let transient = Status::generic(sc::INTERNAL_ERROR, false);
    model.inject(io_fault(io::WRITE, Effect::Fail(transient)));
    qp.write(1, 5, &[9; 512], false).unwrap();
    assert_eq!(model.media(1, 5 * 512, 512).unwrap(), vec![9; 512]);
    assert_eq!(model.stats().writes, 1);
}

#[test]
fn retries_run_out_into_the_last_error() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    let transient = Status::generic(sc::INTERNAL_ERROR, false);
    for _ in 0..4 {
        model.inject(io_fault(io::FLUSH, Effect::Fail(transient)));
    }
    let err = qp.flush_cache(1).unwrap_err();
    assert_eq!(err.status(), Some(transient));
    qp.flush_cache(1).unwrap();
}

#[test]
fn a_lost_completion_is_aborted_then_reset_and_resubmitted() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    model.inject(io_fault(io::WRITE, Effect::LoseCompletion));
    qp.write(1, 1, &[4; 512], false).unwrap();
    let stats = model.stats();
    // The controller says it has nothing to abort; the driver cannot tell a lost completion
    // from a command still using its buffer, so it resets before resubmitting.
    assert_eq!(stats.aborts, 1);
    assert_eq!(stats.resets, 1);
    assert_eq!(stats.writes, 2);
    assert_eq!(qp.in_flight(), 0);
    assert_eq!(model.media(1, 512, 512).unwrap(), vec![4; 512]);
}

#[test]
fn a_hung_command_is_aborted_and_resubmitted() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    model.inject(io_fault(io::READ, Effect::Hang));
    qp.write(1, 3, &[6; 512], false).unwrap();
    let mut back = [0; 512];
    qp.read(1, 3, &mut back).unwrap();
    assert_eq!(back, [6; 512]);
    let stats = model.stats();
    assert_eq!(stats.aborts, 1);
    assert_eq!(stats.reads, 1);
    assert_eq!(stats.resets, 0);
}

#[test]
fn a_failed_abort_leads_to_a_controller_reset_and_resubmission() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    let mut other = ctrl.queue_pair().unwrap();
    model.inject(io_fault(io::WRITE, Effect::Hang));
    model.inject(Fault {
        target: Target::Admin(admin::ABORT),
        effect: Effect::LoseCompletion,
    });
    qp.write(1, 8, &[2; 1024], true).unwrap();
    assert_eq!(model.media(1, 8 * 512, 1024).unwrap(), vec![2; 1024]);
    let stats = model.stats();
    assert_eq!(stats.resets, 1);
    assert_eq!(stats.aborts, 1);
    // The other queue pair recreates its queues on next use and keeps working.
    let mut back = [0; 1024];
    other.read(1, 8, &mut back).unwrap();
    assert_eq!(back, [2; 1024]);
    assert_eq!(model.stats().live_io_sqs, 2);
}

#[test]
fn controller_fatal_status_leads_to_a_reset_and_resubmission() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    model.set_fatal();
    qp.write(1, 20, &[8; 512], false).unwrap();
    assert_eq!(model.media(1, 20 * 512, 512).unwrap(), vec![8; 512]);
    assert_eq!(model.stats().resets, 1);
}

#[test]
fn an_explicit_reset_keeps_queue_pairs_usable() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    qp.write(1, 0, &[1; 512], false).unwrap();
    ctrl.reset().unwrap();
    qp.write(1, 1, &[2; 512], false).unwrap();
    assert_eq!(model.stats().resets, 1);
    assert_eq!(model.media(1, 512, 512).unwrap(), vec![2; 512]);
}

#[test]
fn a_device_that_stops_answering_gives_errors_not_hangs() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    qp.write(1, 0, &[1; 512], false).unwrap();
    model.stop_responding();
    let err = qp.read(1, 0, &mut [0; 512]).unwrap_err();
    assert!(matches!(err, Error::ControllerDead), "{err}");
    let err = qp.write(1, 0, &[1; 512], false).unwrap_err();
    assert!(matches!(err, Error::ControllerDead), "{err}");
    assert!(matches!(ctrl.queue_pair(), Err(Error::ControllerDead)));
    assert!(matches!(ctrl.reset(), Err(Error::ControllerDead)));
    drop(qp);
    drop(ctrl);
}

#[test]
fn bring_up_of_a_silent_device_fails_cleanly() {
    let model = Model::new(ModelConfig::default());
    model.stop_responding();
    assert!(matches!(
        Controller::new(model, options()),
        Err(Error::ControllerDead)
    ));
}

#[test]
fn bring_up_with_fatal_status_fails_cleanly() {
    let model = Model::new(ModelConfig {
        timeout_units: 1,
        ..ModelConfig::default()
    });
    model.set_fatal();
    // A fatal status before enabling is cleared by the disable; the controller comes up.
    let ctrl = Controller::new(model.clone(), options()).unwrap();
    assert_eq!(ctrl.namespaces().len(), 1);
}

#[test]
fn mixed_faults_under_load_lose_and_duplicate_nothing() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    model.inject(io_fault(io::WRITE, Effect::LoseCompletion));
    model.inject(io_fault(io::READ, Effect::Hang));
    model.inject(io_fault(
        io::WRITE,
        Effect::Fail(Status::generic(sc::INTERNAL_ERROR, false)),
    ));
    model.inject(io_fault(
        io::READ,
        Effect::Fail(Status::generic(sc::LBA_OUT_OF_RANGE, true)),
    ));
    let mut seen = vec![0u32; 40];
    let mut failures = 0;
    for tag in 0..40u64 {
        let buf = qp.alloc_buffer(512).unwrap();
        buf.write(0, &[tag as u8; 512]);
        let req = if tag % 2 == 0 {
            Request::write(1, tag, 1, buf, false)
        } else {
            Request::read(1, tag, 1, buf)
        };
        qp.submit(req.with_tag(tag)).unwrap();
    }
    let mut done = 0;
    while done < 40 {
        done += qp.poll(|c| {
            seen[c.tag as usize] += 1;
            assert!(c.buffer.is_some());
            if c.result.is_err() {
                failures += 1;
            }
        });
    }
    assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    assert_eq!(failures, 1);
    for _ in 0..100 {
        assert_eq!(qp.poll(|_| panic!("a duplicate completion")), 0);
    }
    for tag in (0..40u64).step_by(2) {
        assert_eq!(
            model.media(1, tag * 512, 512).unwrap(),
            vec![tag as u8; 512]
        );
    }
}

#[test]
fn a_lost_completion_is_noticed_while_other_commands_keep_completing() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    model.inject(io_fault(io::WRITE, Effect::LoseCompletion));
    let buf = qp.alloc_buffer(512).unwrap();
    qp.submit(Request::write(1, 0, 1, buf, false).with_tag(1))
        .unwrap();
    let mut write_done = false;
    // A steady stream of flushes keeps the queue busy. The bound only guards against a hang.
    for _ in 0..10_000_000u64 {
        if qp.free_slots() > 0 {
            qp.submit(Request::flush(1).with_tag(2)).unwrap();
        }
        qp.poll(|c| {
            c.result.unwrap();
            write_done |= c.tag == 1;
        });
        if write_done {
            break;
        }
    }
    assert!(write_done);
    assert_eq!(model.stats().aborts, 1);
}

#[test]
fn resets_from_another_thread_while_queue_pairs_run_lose_no_data() {
    let model = Model::new(ModelConfig {
        timeout_units: 1,
        max_io_queues: 4,
        ..ModelConfig::default()
    });
    // Resets, not timeouts, are under test: a deadline that a loaded machine cannot miss, so a
    // command is never given up on while its thread waits for a CPU.
    let patient = Options {
        io_timeout: Duration::from_secs(5),
        ..options()
    };
    let ctrl = Controller::new(model.clone(), patient).unwrap();
    let running = std::sync::atomic::AtomicUsize::new(3);
    let resets_done = std::sync::atomic::AtomicUsize::new(0);
    // Rounds each thread has finished (`u64::MAX` once it is done).
    let progress: [std::sync::atomic::AtomicU64; 3] = Default::default();
    std::thread::scope(|scope| {
        for t in 0..3u64 {
            let mut qp = ctrl.queue_pair().unwrap();
            let (running, resets_done, model) = (&running, &resets_done, &model);
            let progress = &progress[t as usize];
            scope.spawn(move || {
                for round in 0..150u64 {
                    // Halfway, wait for a reset, so one always lands while the queue pairs run
                    // (a loaded machine can otherwise finish every round before the first).
                    while round == 75 && resets_done.load(std::sync::atomic::Ordering::SeqCst) == 0
                    {
                        std::thread::yield_now();
                    }
                    let lba = t * 4000 + (round % 50) * 8;
                    let data = vec![(t * 7 + round) as u8; 4096];
                    // A failure names the error and the state it left, to tell a lost command
                    // from a spent retry budget or a queue pair given up on.
                    let failed = |op: &str, e: Error, qp: &nvme::QueuePair<Model>| {
                        panic!(
                            "thread {t} round {round}: {op} failed: {e:?}\n{qp:?}\n{:?}",
                            model.stats()
                        )
                    };
                    if let Err(e) = qp.write(1, lba, &data, false) {
                        failed("write", e, &qp);
                    }
                    let mut back = vec![0; 4096];
                    if let Err(e) = qp.read(1, lba, &mut back) {
                        failed("read", e, &qp);
                    }
                    assert_eq!(back, data, "thread {t} round {round}");
                    progress.store(round + 1, std::sync::atomic::Ordering::SeqCst);
                }
                progress.store(u64::MAX, std::sync::atomic::Ordering::SeqCst);
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        // Each reset counts against the retry budget (3) of every command in flight, as the
        // kernel's driver counts its host-aborted retries. So the next reset waits until every
        // thread has finished a round since the last one: then no command sees more than one
        // reset, however long a loaded machine keeps its thread from running. (Unpaced, 13 resets
        // in a row once caught one command three times: `Timeout("an I/O command")`.)
        let rounds = || {
            progress
                .each_ref()
                .map(|p| p.load(std::sync::atomic::Ordering::SeqCst))
        };
        let mut resets = 0;
        while running.load(std::sync::atomic::Ordering::SeqCst) > 0 && resets < 20 {
            ctrl.reset().unwrap();
            resets += 1;
            resets_done.store(resets, std::sync::atomic::Ordering::SeqCst);
            let at_reset = rounds();
            while rounds()
                .iter()
                .zip(at_reset)
                .any(|(now, then)| *now == then && then != u64::MAX)
                && running.load(std::sync::atomic::Ordering::SeqCst) > 0
            {
                std::thread::yield_now();
            }
        }
    });
    let stats = model.stats();
    assert!(stats.resets >= 1);
    // Every queue pair deleted its queues when its thread ended.
    assert_eq!((stats.live_io_sqs, stats.live_io_cqs), (0, 0));
}

#[test]
fn a_failed_queue_creation_is_undone_and_its_id_reused() {
    let model = Model::new(ModelConfig {
        max_io_queues: 1,
        ..ModelConfig::default()
    });
    let ctrl = Controller::new(model.clone(), options()).unwrap();
    let refused = Status::generic(sc::INTERNAL_ERROR, true);
    model.inject(Fault {
        target: Target::Admin(admin::CREATE_SQ),
        effect: Effect::Fail(refused),
    });
    let err = ctrl.queue_pair().unwrap_err();
    assert_eq!(err.status(), Some(refused));
    // The CQ created first was deleted again, and the queue ID is free.
    assert_eq!(model.stats().live_io_cqs, 0);
    let mut qp = ctrl.queue_pair().unwrap();
    qp.flush_cache(1).unwrap();
}

#[test]
fn a_failing_identify_fails_bring_up_with_its_status() {
    let model = Model::new(ModelConfig::default());
    let refused = Status::generic(sc::INTERNAL_ERROR, true);
    model.inject(Fault {
        target: Target::Admin(admin::IDENTIFY),
        effect: Effect::Fail(refused),
    });
    let err = Controller::new(model.clone(), options()).unwrap_err();
    assert_eq!(err.status(), Some(refused));
    // The controller was stopped before the admin queue memory was freed.
    assert_eq!(model.stats().resets, 1);
    assert_eq!(model.mapped_dma_pages(), 0);
}

#[test]
fn a_controller_left_enabled_by_a_previous_owner_is_taken_over() {
    let model = Model::new(ModelConfig::default());
    let first = Controller::new(model.clone(), options()).unwrap();
    let mut qp = first.queue_pair().unwrap();
    qp.write(1, 0, &[3; 512], false).unwrap();
    // A process that died without shutting down: nothing is deleted or disabled.
    std::mem::forget(qp);
    std::mem::forget(first);
    let ctrl = Controller::new(model.clone(), options()).unwrap();
    assert_eq!(model.stats().resets, 1);
    let mut back = [0; 512];
    ctrl.queue_pair().unwrap().read(1, 0, &mut back).unwrap();
    assert_eq!(back, [3; 512]);
}

#[test]
fn dropping_a_queue_pair_with_a_command_stuck_in_the_controller_ends_it_first() {
    let (model, ctrl) = setup();
    let mut qp = ctrl.queue_pair().unwrap();
    model.inject(io_fault(io::READ, Effect::Hang));
    let buf = qp.alloc_buffer(4096).unwrap();
    qp.submit(Request::read(1, 0, 8, buf)).unwrap();
    qp.flush();
    assert_eq!(qp.in_flight(), 1);
    drop(qp);
    drop(ctrl);
    let stats = model.stats();
    assert_eq!((stats.live_io_sqs, stats.live_io_cqs), (0, 0));
    assert_eq!(stats.shutdowns, 1);
    assert_eq!(model.mapped_dma_pages(), 0);
}
