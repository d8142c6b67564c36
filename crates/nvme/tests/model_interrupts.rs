//! Interrupt mode against the model: each I/O completion queue raises its own vector, a queue
//! pair sleeps on it instead of spinning, and polling mode stays the default.

use std::time::Duration;

use nvme::model::{Model, ModelConfig};
use nvme::{Controller, Options, Request};

fn controller(interrupts: bool) -> Controller<Model> {
    let options = Options {
        interrupts,
        ..Options::default()
    };
    Controller::new(Model::new(ModelConfig::default()), options).expect("bring-up")
}

#[test]
fn each_queue_pair_is_woken_by_its_own_vector() {
    let ctrl = controller(true);
    assert!(ctrl.interrupts());
    let mut one = ctrl.queue_pair().unwrap();
    let mut two = ctrl.queue_pair().unwrap();
    let (irq_one, irq_two) = (one.interrupt().unwrap(), two.interrupt().unwrap());
    assert_eq!(irq_one.clear(), 0);
    assert_eq!(irq_two.clear(), 0);

    let buffer = one.alloc_buffer(4096).unwrap();
    one.submit(Request::read(1, 0, 8, buffer).with_tag(5))
        .map_err(|r| r.error)
        .unwrap();
    // Nothing reaches the controller before the doorbell, so nothing fires.
    assert!(
        !one.interrupt()
            .unwrap()
            .wait(Some(Duration::from_millis(1)))
            .unwrap()
    );
    one.flush();
    assert!(
        one.interrupt()
            .unwrap()
            .wait(Some(Duration::from_secs(5)))
            .unwrap(),
        "the completion raised queue one's vector"
    );
    assert!(!two.interrupt().unwrap().wait(Some(Duration::ZERO)).unwrap());
    assert_eq!(one.interrupt().unwrap().clear(), 1);
    let mut tags = Vec::new();
    one.poll(|c| {
        assert!(c.result.is_ok());
        tags.push(c.tag);
    });
    assert_eq!(tags, [5]);

    // The blocking helpers sleep on the vector between polls.
    two.write(1, 8, &[0x5a; 512], false).unwrap();
    assert!(two.interrupt().unwrap().clear() >= 1);
    let mut back = [0u8; 512];
    two.read(1, 8, &mut back).unwrap();
    assert_eq!(back, [0x5a; 512]);
    two.wait_for_completions(Duration::from_millis(1)).unwrap();
}

#[test]
fn polling_is_the_default_and_has_no_vectors() {
    let ctrl = controller(false);
    assert!(!ctrl.interrupts());
    let mut qp = ctrl.queue_pair().unwrap();
    assert!(qp.interrupt().is_none());
    qp.write(1, 0, &[1; 512], false).unwrap();
    // Without interrupts, waiting returns at once.
    qp.wait_for_completions(Duration::from_secs(60)).unwrap();
}
