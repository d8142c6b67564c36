//! Holes that safe code could once reach: each test builds the case and checks that nothing is lost,
//! read back as another value, or dropped twice. The sanitizer suites run them too.

mod common;

use core::marker::PhantomPinned;

use common::{Noisy, drops};
use pinit::{InPlaceInit, init_by, pin_data, pin_init, pin_init_by};

#[derive(Debug, PartialEq, Eq)]
struct Refused;

impl From<pinit::AllocError> for Refused {
    fn from(_: pinit::AllocError) -> Self {
        Refused
    }
}

#[pin_data]
struct Pinned {
    name: Noisy,
    #[pin]
    _pin: PhantomPinned,
}

#[test]
fn a_forgotten_pinned_proof_and_an_error_still_drop_the_value() {
    let r = Box::try_pin_init(pin_init_by::<Pinned, Refused, _>(|slot| {
        let done = slot.write(Pinned {
            name: Noisy("forgotten"),
            _pin: PhantomPinned,
        });
        core::mem::forget(done);
        Err(Refused)
    }));
    assert_eq!(r.err(), Some(Refused));
    assert_eq!(drops(), ["forgotten"]);
}

#[test]
fn a_forgotten_pinned_proof_and_a_panic_still_drop_the_value() {
    let r = std::panic::catch_unwind(|| {
        Box::try_pin_init(pin_init_by::<Pinned, Refused, _>(|slot| {
            let done = slot.write(Pinned {
                name: Noisy("panicked"),
                _pin: PhantomPinned,
            });
            core::mem::forget(done);
            panic!("after the write")
        }))
    });
    assert!(r.is_err());
    assert_eq!(drops(), ["panicked"]);
}

#[test]
fn a_kept_proof_and_an_error_drop_the_value_once() {
    let r = Box::try_init(init_by::<Noisy, Refused, _>(|slot| {
        let done = slot.write(Noisy("once"));
        drop(done);
        Err(Refused)
    }));
    assert_eq!(r.err(), Some(Refused));
    assert_eq!(drops(), ["once"]);
}

#[test]
fn a_forgotten_unpinned_proof_and_an_error_still_drop_the_value() {
    let r = Box::try_init(init_by::<Noisy, Refused, _>(|slot| {
        core::mem::forget(slot.write(Noisy("unpinned")));
        Err(Refused)
    }));
    assert_eq!(r.err(), Some(Refused));
    assert_eq!(drops(), ["unpinned"]);
}

/// The explicit discriminant is an expression of the enum's own integer type: `!0 / 16` is 15 as a `u8`
/// (and would be 0 as an `i32`), so `Next` is 16.
#[pin_data]
#[repr(u8)]
#[derive(Debug, PartialEq, Eq)]
enum Typed {
    First { x: u32 } = !0 / 16,
    Next(u32),
    Last = 200,
}

#[test]
fn discriminants_are_computed_in_the_enum_s_own_type() {
    let first = Box::pin_init(pin_init!(enum Typed::First { x: 1 })).unwrap();
    assert_eq!(*first, Typed::First { x: 1 });
    let next = Box::pin_init(pin_init!(enum Typed::Next { 0: 7 })).unwrap();
    assert_eq!(*next, Typed::Next(7));
    let last = Box::pin_init(pin_init!(enum Typed::Last {})).unwrap();
    assert_eq!(*last, Typed::Last);
}

/// A user trait with the name of one of `#[pin_data]`'s own helpers keeps meaning the user's trait in a
/// variant's field.
#[allow(dead_code)]
mod shadowing {
    use pinit::{InPlaceInit, pin_data, pin_init};

    pub trait ImplementPinnedDropInsteadOfDrop {
        fn id(&self) -> u32;
    }

    pub struct Seven;
    impl ImplementPinnedDropInsteadOfDrop for Seven {
        fn id(&self) -> u32 {
            7
        }
    }
    impl Drop for Seven {
        fn drop(&mut self) {}
    }

    #[pin_data]
    #[repr(u8)]
    pub enum Holder {
        Empty,
        Full {
            item: Box<dyn ImplementPinnedDropInsteadOfDrop>,
        },
    }

    #[test]
    fn a_user_trait_named_like_a_helper_stays_the_user_s() {
        let h = Box::pin_init(pin_init!(enum Holder::Full { item: Box::new(Seven) })).unwrap();
        match &*h {
            Holder::Full { item } => assert_eq!(item.id(), 7),
            Holder::Empty => panic!("built as the other variant"),
        }
    }
}
