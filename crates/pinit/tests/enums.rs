//! Enum variants built in place (`#[pin_data]` enums with a primitive representation).

mod common;

use core::marker::PhantomPinned;
use std::sync::Arc;

use common::{Failed, Noisy, drops, fails};
use pinit::{InPlaceInit, init_zeroed, pin_data, pin_init};

/// Variants differ a lot in size on purpose: the large one is built in place.
#[allow(clippy::large_enum_variant)]
#[pin_data]
#[repr(u8)]
enum Message {
    Empty,
    Small {
        id: u8,
    },
    Large {
        id: u32,
        name: Noisy,
        payload: [u8; 1 << 20],
    },
    Pinned {
        #[pin]
        anchor: PhantomPinned,
        tag: Noisy,
    } = 9,
}

fn describe(m: &Message) -> String {
    match m {
        Message::Empty => "empty".into(),
        Message::Small { id } => format!("small {id}"),
        Message::Large { id, name, payload } => {
            format!("large {id} {} {}", name.0, payload[1 << 19])
        }
        Message::Pinned { anchor, tag } => format!("pinned {} {anchor:?}", tag.0),
    }
}

#[test]
fn every_variant_can_be_built_in_place() {
    let e = Box::pin_init(pin_init!(enum Message::Empty {})).unwrap();
    assert_eq!(describe(&e), "empty");
    let s = Box::pin_init(pin_init!(enum Message::Small { id: 4 })).unwrap();
    assert_eq!(describe(&s), "small 4");
    let l = Arc::pin_init(pin_init!(enum Message::Large {
        id: 7,
        name: Noisy("large"),
        payload <- init_zeroed(),
    }))
    .unwrap();
    assert_eq!(describe(&l), "large 7 large 0");
    let p =
        Box::pin_init(pin_init!(enum Message::Pinned { anchor: PhantomPinned, tag: Noisy("p") }))
            .unwrap();
    assert_eq!(describe(&p), "pinned p PhantomPinned");
    drop((l, p));
    let mut dropped = drops();
    dropped.sort_unstable();
    assert_eq!(dropped, ["large", "p"]);
}

#[test]
fn a_failing_variant_field_drops_the_built_ones() {
    let r = Box::try_pin_init(pin_init!(enum Message::Large {
        id: 1,
        name: Noisy("first"),
        payload <- fails("payload"),
    }? Failed));
    assert_eq!(r.err(), Some(Failed("payload")));
    assert_eq!(drops(), ["first"]);
}

#[test]
fn variants_may_refer_to_earlier_fields() {
    let m = Box::pin_init(pin_init!(enum Message::Large {
        id: 3,
        name: Noisy(if *id == 3 { "three" } else { "other" }),
        payload: [1; 1 << 20],
    }))
    .unwrap();
    assert_eq!(describe(&m), "large 3 three 1");
}

#[test]
fn cfg_on_variant_fields_keeps_the_layout() {
    #[pin_data]
    #[repr(u16)]
    enum Cfgd {
        A {
            #[cfg(not(test))]
            absent: u64,
            present: u8,
            #[cfg(test)]
            also: u32,
        },
    }
    let c = Box::pin_init(pin_init!(enum Cfgd::A {
        #[cfg(not(test))]
        absent: 1,
        present: 2,
        #[cfg(test)]
        also: 3,
    }))
    .unwrap();
    let Cfgd::A { present, also } = &*c;
    assert_eq!((*present, *also), (2, 3));
}

/// Tuple variants; `Mixed` has a small field before a large-aligned one, so its layout has padding that a
/// wrong projection would get wrong.
#[pin_data]
#[repr(u16)]
enum Packet {
    Header(u8, u64),
    Mixed(u8, #[pin] PhantomPinned, Noisy, u64, Noisy),
    Body(Box<[u8; 3]>),
    Nothing(),
}

#[test]
fn tuple_variants_are_built_in_place() {
    let h = Box::pin_init(pin_init!(enum Packet::Header { 0: 7, 1: u64::MAX - 1 })).unwrap();
    assert!(matches!(*h, Packet::Header(7, x) if x == u64::MAX - 1));
    let m = Arc::pin_init(pin_init!(enum Packet::Mixed {
        0: 1,
        1: PhantomPinned,
        2: Noisy("two"),
        3: 0x0102_0304_0506_0708,
        4: Noisy("four"),
    }))
    .unwrap();
    match &*m {
        Packet::Mixed(a, _, two, b, four) => {
            assert_eq!(
                (*a, two.0, *b, four.0),
                (1, "two", 0x0102_0304_0506_0708, "four")
            );
        }
        _ => panic!("wrong variant"),
    }
    drop(m);
    assert_eq!(drops(), ["two", "four"]);
    let b = Box::pin_init(pin_init!(enum Packet::Body { 0: Box::new([1, 2, 3]) })).unwrap();
    assert!(matches!(&*b, Packet::Body(bytes) if **bytes == [1, 2, 3]));
    let n = Box::pin_init(pin_init!(enum Packet::Nothing {})).unwrap();
    assert!(matches!(&*n, Packet::Nothing()));
}

/// A generic enum whose variants each use only some of its parameters.
#[pin_data]
#[repr(u8)]
enum Either<L, R> {
    Left(L),
    Right { value: R },
}

#[test]
fn generic_tuple_variants() {
    let l =
        Box::pin_init(pin_init!(enum Either::<String, u8>::Left { 0: "l".to_owned() })).unwrap();
    assert!(matches!(&*l, Either::Left(s) if s == "l"));
    let r = Box::pin_init(pin_init!(enum Either::<String, u8>::Right { value: 3 })).unwrap();
    assert!(matches!(&*r, Either::Right { value: 3 }));
}

#[test]
fn a_failing_tuple_variant_drops_its_built_fields_in_reverse() {
    let r = Box::try_pin_init(pin_init!(enum Packet::Mixed {
        0: 1,
        1: PhantomPinned,
        2: Noisy("two"),
        3: 9,
        4 <- fails("four"),
    }? Failed));
    assert_eq!(r.err(), Some(Failed("four")));
    assert_eq!(drops(), ["two"]);
}

#[test]
fn variant_fields_may_name_the_enum_itself() {
    #[pin_data]
    #[repr(u8)]
    enum Tree<T>
    where
        Option<Box<Tree<T>>>: Sized,
    {
        Leaf(T),
        Branch {
            left: Box<Tree<T>>,
            right: Option<Box<Self>>,
            #[pin]
            _pin: PhantomPinned,
        },
    }

    let t = Box::pin_init(pin_init!(enum Tree::Branch {
        left: Box::new(Tree::Leaf(1u8)),
        right: None,
        _pin: PhantomPinned,
    }))
    .unwrap();
    let Tree::Branch { left, right, .. } = &*t else {
        panic!("not a branch")
    };
    assert!(matches!(**left, Tree::Leaf(1)) && right.is_none());
}
