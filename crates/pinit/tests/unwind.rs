//! Every place an initialiser can run, stopped part-way by an error and by a panic: the parts built so far
//! are dropped exactly once (fields newest first, slice elements in order) and nothing else is. The
//! sanitizer and valgrind suites run this file too, so a leaked allocation or a double free fails there.

mod common;

use core::marker::PhantomPinned;
use core::pin::Pin;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;

use common::{Failed, Noisy, drops};
use pinit::{
    InPlaceInit, InPlaceInitSlice, Init, PinInit, UniqueArc, UniqueRc, VecExt, init, init_by,
    pin_data, pin_init, stack_try_pin_init,
};

#[pin_data]
struct Four {
    a: Noisy,
    #[pin]
    b: Noisy,
    c: Noisy,
    d: Noisy,
    #[pin]
    _pin: PhantomPinned,
}

/// How the third field stops the initialiser.
#[derive(Clone, Copy)]
enum Stop {
    Error,
    Panic,
}

fn third(stop: Stop) -> Result<Noisy, Failed> {
    match stop {
        Stop::Error => Err(Failed("c")),
        Stop::Panic => panic!("c"),
    }
}

fn pinned(stop: Stop) -> impl PinInit<Four, Failed> {
    pin_init!(Four {
        a: Noisy("a"),
        b: Noisy("b"),
        c: third(stop)?,
        d: Noisy("d"),
        _pin: PhantomPinned,
    }? Failed)
}

fn unpinned(stop: Stop) -> impl Init<Four, Failed> {
    init!(Four {
        a: Noisy("a"),
        b: Noisy("b"),
        c: third(stop)?,
        d: Noisy("d"),
        _pin: PhantomPinned,
    }? Failed)
}

/// Runs `build` with `stop`, checks how it ended, and returns the drop log.
fn stopped<R>(stop: Stop, build: impl FnOnce(Stop) -> Result<R, Failed>) -> Vec<&'static str> {
    let outcome = catch_unwind(AssertUnwindSafe(|| build(stop).map(drop)));
    match (stop, outcome) {
        (Stop::Error, Ok(Err(e))) => assert_eq!(e, Failed("c")),
        (Stop::Panic, Err(_)) => {}
        _ => panic!("the initialiser did not stop as asked"),
    }
    drops()
}

const FIELDS_BUILT: [&str; 2] = ["b", "a"];

#[test]
fn fields_in_every_container_are_undone_on_error_and_panic() {
    for stop in [Stop::Error, Stop::Panic] {
        assert_eq!(
            stopped(stop, |s| Box::try_pin_init(pinned(s))),
            FIELDS_BUILT
        );
        assert_eq!(stopped(stop, |s| Box::try_init(unpinned(s))), FIELDS_BUILT);
        assert_eq!(
            stopped(stop, |s| Arc::try_pin_init(pinned(s))),
            FIELDS_BUILT
        );
        assert_eq!(stopped(stop, |s| Arc::try_init(unpinned(s))), FIELDS_BUILT);
        assert_eq!(stopped(stop, |s| Rc::try_pin_init(pinned(s))), FIELDS_BUILT);
        assert_eq!(stopped(stop, |s| Rc::try_init(unpinned(s))), FIELDS_BUILT);
        assert_eq!(
            stopped(stop, |s| UniqueArc::try_init(unpinned(s))),
            FIELDS_BUILT
        );
        assert_eq!(
            stopped(stop, |s| UniqueRc::try_pin_init(pinned(s))),
            FIELDS_BUILT
        );
        let on_stack = |s| -> Result<(), Failed> {
            stack_try_pin_init!(let v: Four = pinned(s));
            v.map(drop)
        };
        assert_eq!(stopped(stop, on_stack), FIELDS_BUILT);
        let mut v: Vec<Four> = Vec::new();
        assert_eq!(
            stopped(stop, |s| v.try_push_init(unpinned(s))),
            FIELDS_BUILT
        );
        assert!(v.is_empty());
    }
}

/// Element `i` of a slice: the third one stops.
fn element(stop: Stop, i: usize) -> impl Init<Noisy, Failed> {
    init_by(move |slot| {
        if i == 2 {
            third(stop).map(drop)?;
        }
        Ok(slot.write(Noisy(["0", "1", "2", "3"][i])))
    })
}

#[test]
fn slices_in_every_container_are_undone_on_error_and_panic() {
    let built = ["0", "1"];
    for stop in [Stop::Error, Stop::Panic] {
        let make = move |i| element(stop, i);
        assert_eq!(
            stopped(stop, |_| Box::<[Noisy]>::try_init_slice(4, make)),
            built
        );
        assert_eq!(
            stopped(stop, |_| Arc::<[Noisy]>::try_init_slice(4, make)),
            built
        );
        assert_eq!(
            stopped(stop, |_| Rc::<[Noisy]>::try_init_slice(4, make)),
            built
        );
        assert_eq!(
            stopped(stop, |_| Box::<[Noisy]>::try_pin_init_slice(4, make)),
            built
        );
        assert_eq!(
            stopped(stop, |_| Box::<[Noisy; 4]>::try_init(
                pinit::init_array_from_fn(make)
            )),
            built
        );
    }
}

#[test]
fn a_finished_value_is_dropped_once_with_all_its_fields() {
    let b: Result<Pin<Box<Four>>, Failed> =
        Box::try_pin_init(pinned(Stop::Error).pin_chain(|_| Ok(())));
    assert!(b.is_err());
    assert_eq!(drops(), FIELDS_BUILT);
    let whole = Box::try_init(init!(Four {
        a: Noisy("a"),
        b: Noisy("b"),
        c: Noisy("c"),
        d: Noisy("d"),
        _pin: PhantomPinned,
    }? Failed))
    .unwrap();
    assert!(drops().is_empty());
    drop(whole);
    assert_eq!(drops(), ["a", "b", "c", "d"]);
}
