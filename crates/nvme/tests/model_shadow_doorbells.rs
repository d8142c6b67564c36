//! Shadow doorbells (Doorbell Buffer Config) against the model, which takes an I/O queue's
//! doorbell value from the shadow page and ignores the register's: I/O only works if the
//! driver keeps the shadow page up to date.

use nvme::model::{Model, ModelConfig};
use nvme::{Controller, Options};

fn setup(config: ModelConfig, options: Options) -> (Model, Controller<Model>) {
    let model = Model::new(config);
    let ctrl = Controller::new(model.clone(), options).expect("bring-up");
    (model, ctrl)
}

/// Writes and reads back `rounds` blocks through every queue pair, wrapping the rings.
fn round_trip(ctrl: &Controller<Model>, queues: usize, rounds: u64) {
    let mut pairs: Vec<_> = (0..queues).map(|_| ctrl.queue_pair().unwrap()).collect();
    for lba in 0..rounds {
        for (q, qp) in pairs.iter_mut().enumerate() {
            let block = [(lba as u8) ^ (q as u8 * 16); 512];
            let at = lba * queues as u64 + q as u64;
            qp.write(1, at, &block, false).unwrap();
            let mut back = [0u8; 512];
            qp.read(1, at, &mut back).unwrap();
            assert_eq!(back, block, "block {at}");
        }
    }
}

#[test]
fn io_doorbells_go_through_the_shadow_page_when_offered() {
    let (model, ctrl) = setup(ModelConfig::default(), Options::default());
    assert!(ctrl.shadow_doorbells());
    assert_eq!(model.stats().shadow_doorbell_configs, 1);
    // More commands than a queue has entries, so both rings wrap.
    let depth = ctrl.queue_pair().unwrap().depth() as u64;
    round_trip(&ctrl, 2, depth * 2 + 3);
    let stats = model.stats();
    assert!(
        stats.shadow_doorbell_reads >= 2 * (depth * 2 + 3),
        "{stats:?}"
    );
}

#[test]
fn registers_alone_without_the_option_or_the_feature() {
    let off = Options {
        shadow_doorbells: false,
        ..Options::default()
    };
    let (model, ctrl) = setup(ModelConfig::default(), off);
    assert!(!ctrl.shadow_doorbells());
    round_trip(&ctrl, 1, 40);
    assert_eq!(model.stats().shadow_doorbell_configs, 0);
    assert_eq!(model.stats().shadow_doorbell_reads, 0);

    let unsupported = ModelConfig {
        shadow_doorbells: false,
        ..ModelConfig::default()
    };
    let (model, ctrl) = setup(unsupported, Options::default());
    assert!(!ctrl.info().supports_doorbell_buffer());
    round_trip(&ctrl, 1, 40);
    assert_eq!(model.stats().shadow_doorbell_configs, 0);
}

#[test]
fn a_reset_configures_the_cleared_shadow_pages_again() {
    let (model, ctrl) = setup(ModelConfig::default(), Options::default());
    let mut qp = ctrl.queue_pair().unwrap();
    qp.write(1, 3, &[7; 512], false).unwrap();
    ctrl.reset().unwrap();
    assert_eq!(model.stats().shadow_doorbell_configs, 2);
    // The queue pair recreates its queues, starting from zero in the shadow page too.
    let mut back = [0u8; 512];
    qp.read(1, 3, &mut back).unwrap();
    assert_eq!(back, [7; 512]);
    drop(qp);
    // A new queue pair on the same queue ID starts from zeroed entries.
    round_trip(&ctrl, 1, 10);
}

/// Queue pairs on threads of their own store to the shared shadow pages at the same time (no
/// lock between them). First, half of them open their queues (each clearing its own entries)
/// while the other half runs I/O, with no reset, so that an entry lost to another queue's
/// writes leaves the model waiting for a doorbell until the I/O timeout and its Abort. Then
/// they ride out two resets made from the main thread, which clear the pages under them. Every
/// block reads back as written, and no command needed an Abort.
#[test]
fn queue_pairs_on_their_own_threads_share_the_shadow_pages() {
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    const THREADS: usize = 4;
    const ROUNDS: u64 = 400;
    let pattern =
        |phase: u64, round: u64, t: u64| [(round as u8) ^ (t as u8 * 64) ^ (phase as u8 * 32); 512];
    let lba = |phase: u64, round: u64, t: u64| (phase * ROUNDS + round) * THREADS as u64 + t;
    let options = Options {
        io_timeout: Duration::from_secs(2),
        ..Options::default()
    };
    let (model, ctrl) = setup(ModelConfig::default(), options);
    assert!(ctrl.shadow_doorbells());
    let resets_before = model.stats().resets;
    let progress = AtomicUsize::new(0);
    let staggered = Barrier::new(THREADS);
    let halfway = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (ctrl, progress, staggered, halfway) = (&ctrl, &progress, &staggered, &halfway);
            s.spawn(move || {
                if t % 2 == 0 {
                    staggered.wait();
                }
                let mut qp = ctrl.queue_pair().unwrap();
                for phase in 0..2 {
                    for round in 0..ROUNDS {
                        let (at, block) =
                            (lba(phase, round, t as u64), pattern(phase, round, t as u64));
                        qp.write(1, at, &block, false).unwrap();
                        let mut back = [0u8; 512];
                        qp.read(1, at, &mut back).unwrap();
                        assert_eq!(back, block, "thread {t}, block {at}");
                        if phase == 1 {
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                        if phase == 0 && t % 2 == 1 && round == 10 {
                            staggered.wait();
                        }
                    }
                    if phase == 0 {
                        halfway.wait();
                    }
                }
            });
        }
        halfway.wait();
        let stats = model.stats();
        assert_eq!(
            (stats.aborts, stats.resets),
            (0, resets_before),
            "{stats:?}"
        );
        // Two resets while the queue pairs are busy.
        for goal in [THREADS * ROUNDS as usize / 4, THREADS * ROUNDS as usize / 2] {
            while progress.load(Ordering::Relaxed) < goal {
                std::thread::yield_now();
            }
            ctrl.reset().unwrap();
        }
    });
    let stats = model.stats();
    assert_eq!(stats.aborts, 0, "{stats:?}");
    assert_eq!(stats.resets, resets_before + 2, "{stats:?}");
    assert!(
        stats.shadow_doorbell_reads >= 4 * THREADS as u64 * ROUNDS,
        "{stats:?}"
    );
    // Every block is still there, read through one queue pair.
    let mut qp = ctrl.queue_pair().unwrap();
    for phase in 0..2 {
        for round in 0..ROUNDS {
            for t in 0..THREADS as u64 {
                let mut back = [0u8; 512];
                qp.read(1, lba(phase, round, t), &mut back).unwrap();
                assert_eq!(
                    back,
                    pattern(phase, round, t),
                    "block {}",
                    lba(phase, round, t)
                );
            }
        }
    }
}
