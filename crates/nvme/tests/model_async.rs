//! The `Future` adapter, driven by a minimal executor that polls every future in turn.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use nvme::async_io::AsyncQueuePair;
use nvme::model::{Model, ModelConfig};
use nvme::{Controller, DmaMemory, Error, Options, Request};

/// Polls all futures until every one is ready; results in input order.
fn join_all<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    for _ in 0..1_000_000 {
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none()
                && let Poll::Ready(v) = Pin::new(&mut *f).poll(&mut cx)
            {
                *slot = Some(v);
            }
        }
        if out.iter().all(Option::is_some) {
            return out.into_iter().flatten().collect();
        }
    }
    panic!("futures did not finish");
}

#[test]
fn many_futures_share_one_queue_pair_beyond_its_depth() {
    let model = Model::new(ModelConfig {
        mqes: 7,
        ..ModelConfig::default()
    });
    let ctrl = Controller::new(model.clone(), Options::default()).unwrap();
    let aqp = AsyncQueuePair::new(ctrl.queue_pair().unwrap());
    let writes: Vec<_> = (0..30u64)
        .map(|i| {
            let buf = aqp.alloc_buffer(512).unwrap();
            buf.write(0, &[i as u8; 512]);
            aqp.run(Request::write(1, i, 1, buf, false).with_tag(1000 + i))
        })
        .collect();
    for (i, c) in join_all(writes).into_iter().enumerate() {
        c.result.unwrap();
        assert_eq!(c.tag, 1000 + i as u64);
    }
    let reads: Vec<_> = (0..30u64)
        .map(|i| aqp.run(Request::read(1, i, 1, aqp.alloc_buffer(512).unwrap()).with_tag(i)))
        .collect();
    for c in join_all(reads) {
        c.result.unwrap();
        let mut got = [0; 512];
        c.buffer.unwrap().read(0, &mut got);
        assert_eq!(got, [c.tag as u8; 512]);
    }
    assert_eq!(model.stats().writes, 30);
}

#[test]
fn a_refused_request_resolves_to_its_error_and_buffer() {
    let model = Model::new(ModelConfig::default());
    let ctrl = Controller::new(model, Options::default()).unwrap();
    let aqp = AsyncQueuePair::new(ctrl.queue_pair().unwrap());
    let buf = aqp.alloc_buffer(512).unwrap();
    let out = join_all(vec![aqp.run(Request::read(1, u64::MAX - 1, 1, buf))]);
    assert!(matches!(out[0].result, Err(Error::InvalidRequest(_))));
    assert!(out[0].buffer.is_some());
}

#[test]
fn dropping_a_future_in_flight_frees_its_tag() {
    let model = Model::new(ModelConfig {
        mqes: 3,
        ..ModelConfig::default()
    });
    let ctrl = Controller::new(model, Options::default()).unwrap();
    let aqp = AsyncQueuePair::new(ctrl.queue_pair().unwrap());
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10 {
        let mut f = aqp.run(Request::flush(1));
        // The first poll submits; the model completes it, but the future is dropped unread.
        let _ = Pin::new(&mut f).poll(&mut cx);
        drop(f);
    }
    let out = join_all((0..3).map(|_| aqp.run(Request::flush(1))).collect());
    assert!(out.iter().all(|c| c.result.is_ok()));
    assert_eq!(aqp.into_inner().in_flight(), 0);
}
