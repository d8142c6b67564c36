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
