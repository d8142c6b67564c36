//! `pin_init!` / `init!` field forms, with drop order on error and panic.

mod common;

use core::marker::PhantomPinned;
use core::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use common::{Failed, Noisy, drops, fails};
use pinit::{InPlaceInit, Zeroable, init, init_zeroed, pin_data, pin_init};

#[pin_data]
struct Three {
    a: Noisy,
    #[pin]
    b: Noisy,
    c: Noisy,
    #[pin]
    _pin: PhantomPinned,
}

#[test]
fn builds_every_field_in_order() {
    let t = Box::pin_init(pin_init!(Three {
        a: Noisy("a"),
        b: Noisy("b"),
        c: Noisy("c"),
        _pin: PhantomPinned,
    }))
    .unwrap();
    assert_eq!((t.a.0, t.b.0, t.c.0), ("a", "b", "c"));
    assert!(drops().is_empty());
    drop(t);
    assert_eq!(drops(), ["a", "b", "c"]);
}

#[test]
fn error_drops_initialised_fields_in_reverse() {
    let r = Box::try_pin_init(pin_init!(Three {
        a: Noisy("a"),
        b: Noisy("b"),
        c <- fails("c"),
        _pin: PhantomPinned,
    }? Failed));
    assert_eq!(r.err(), Some(Failed("c")));
    assert_eq!(drops(), ["b", "a"]);
}

#[test]
fn question_mark_in_a_value_stops_early() {
    let parse = |s: &str| s.parse::<u8>().map_err(|_| Failed("parse"));
    let r = Arc::try_pin_init(pin_init!(Three {
        a: Noisy("a"),
        b: Noisy(if parse("300")? > 0 { "b" } else { "-" }),
        c: Noisy("c"),
        _pin: PhantomPinned,
    }? Failed));
    assert_eq!(r.err(), Some(Failed("parse")));
    assert_eq!(drops(), ["a"]);
}

fn explode() -> Noisy {
    panic!("boom")
}

#[test]
fn panic_drops_initialised_fields_in_reverse() {
    let r = std::panic::catch_unwind(|| {
        Rc::pin_init(pin_init!(Three {
            a: Noisy("a"),
            b: Noisy("b"),
            c: explode(),
            _pin: PhantomPinned,
        }))
    });
    assert!(r.is_err());
    assert_eq!(drops(), ["b", "a"]);
}

#[test]
fn initialised_fields_are_visible_to_later_ones() {
    #[pin_data]
    struct Sums {
        #[pin]
        base: u64,
        twice: u64,
        thrice: u64,
    }
    let s = Box::pin_init(pin_init!(Sums {
        base: 7,
        twice: *base * 2,
        _: {
            let pinned: Pin<&mut u64> = base;
            assert_eq!(*pinned, 7);
        },
        thrice: *twice + 7,
    }))
    .unwrap();
    assert_eq!((s.base, s.twice, s.thrice), (7, 14, 21));
}

#[test]
fn code_blocks_run_between_fields() {
    struct Pair {
        x: u32,
        y: u32,
    }
    let mut order = Vec::new();
    let order_ref = &mut order;
    let p = Box::init(init!(Pair {
        _: { order_ref.push("before x") },
        x: 1,
        _: { order_ref.push("between") },
        y: *x + 1,
    }))
    .unwrap();
    assert_eq!((p.x, p.y), (1, 2));
    assert_eq!(order, ["before x", "between"]);
}

#[test]
fn tuple_structs_use_indices() {
    #[pin_data]
    struct Wrapper(#[pin] u32, Noisy);
    let w = Box::pin_init(pin_init!(Wrapper {
        0: 5,
        1: Noisy("w")
    }))
    .unwrap();
    assert_eq!(w.0, 5);
    drop(w);
    assert_eq!(drops(), ["w"]);
    struct Plain(u8, u16);
    let p = Box::init(init!(Plain { 0: 1, 1 <- pinit::init_zeroed() })).unwrap();
    assert_eq!((p.0, p.1), (1, 0));
}

#[test]
fn cfg_on_fields_is_honoured() {
    struct Conf {
        always: u8,
        #[cfg(test)]
        in_tests: u8,
        #[cfg(not(test))]
        never: u8,
    }
    let c = Box::init(init!(Conf {
        always: 1,
        #[cfg(test)]
        in_tests: 2,
        #[cfg(not(test))]
        never: 3,
    }))
    .unwrap();
    assert_eq!((c.always, c.in_tests), (1, 2));
}

#[test]
fn generic_structs_infer_their_parameters() {
    #[pin_data]
    struct Holder<T, const N: usize>
    where
        T: Copy,
    {
        #[pin]
        items: [T; N],
        len: usize,
    }
    let h = Box::pin_init(pin_init!(Holder {
        items: [3u16; 4],
        len: 4
    }))
    .unwrap();
    assert_eq!(h.items.iter().map(|&x| usize::from(x)).sum::<usize>(), 12);
    let h: Pin<Box<Holder<u8, 2>>> =
        Box::pin_init(pin_init!(Holder { items <- init_zeroed(), len: 2 })).unwrap();
    assert_eq!(h.items, [0, 0]);
    let h: Pin<Box<Holder<i8, 3>>> = Box::pin_init(pin_init!(Holder::<i8, _> {
        items: [1; 3],
        len: 3
    }))
    .unwrap();
    assert_eq!(h.items, [1; 3]);
    let h = Box::pin_init(pin_init!(Holder::<u32, 2> {
        items: [5; 2],
        len: 2
    }))
    .unwrap();
    assert_eq!(h.items, [5, 5]);
    let h = Box::pin_init(pin_init!(Holder::<Option<u8>, { 1 + 1 }> {
        items: [None; 2],
        len: 0
    }))
    .unwrap();
    assert_eq!(h.items, [None, None]);
}

#[test]
fn zeroed_rest_keeps_named_fields() {
    #[derive(Zeroable)]
    struct Regs {
        ctrl: u32,
        status: u32,
        pad: [u8; 24],
        next: Option<Box<u8>>,
    }
    let r = Box::init(init!(Regs {
        status: 9,
        ..Zeroable::zeroed()
    }))
    .unwrap();
    assert_eq!(
        (r.ctrl, r.status, r.pad, r.next.is_none()),
        (0, 9, [0; 24], true)
    );
    let on_stack: Regs = Zeroable::zeroed();
    assert_eq!(on_stack.ctrl, 0);
}

#[test]
fn shorthand_fields_move_locals_in() {
    struct Named {
        name: String,
        id: u32,
    }
    let name = String::from("disk");
    let id = 4;
    let n = Box::init(init!(Named { name, id })).unwrap();
    assert_eq!((n.name.as_str(), n.id), ("disk", 4));
}

#[test]
fn projection_pins_only_pinned_fields() {
    let mut t = Box::pin_init(pin_init!(Three {
        a: Noisy("a"),
        b: Noisy("b"),
        c: Noisy("c"),
        _pin: PhantomPinned,
    }))
    .unwrap();
    let p = t.as_mut().project();
    let _: &mut Noisy = p.a;
    let _: Pin<&mut Noisy> = p.b;
    p.c.0 = "c2";
    drop(t);
    assert_eq!(drops(), ["a", "b", "c2"]);
}

#[test]
fn declarations_with_lifetimes_bounds_and_complex_field_types() {
    use std::collections::HashMap;

    #[pin_data]
    pub(crate) struct Borrowing<'a, T: Clone + 'a, const N: usize = 2>
    where
        T: Default,
    {
        #[pin]
        pub(crate) first: &'a T,
        callback: fn(u8, u16) -> Option<(u8, u16)>,
        pub index: HashMap<u8, Vec<T>>,
        copies: [T; N],
    }

    fn swap(a: u8, b: u16) -> Option<(u8, u16)> {
        Some((a, b))
    }

    let value = String::from("x");
    let first = &value; // the initialiser's closure moves what it captures: capture the reference
    let b: Pin<Box<Borrowing<'_, String>>> = Box::pin_init(pin_init!(Borrowing {
        first,
        callback: swap,
        index: HashMap::from([(1, vec![String::from("y")])]),
        copies <- pinit::init_array_from_fn(|_| pinit::value(String::new())),
    }))
    .unwrap();
    assert_eq!(
        (
            b.first.as_str(),
            (b.callback)(1, 2),
            b.index[&1][0].as_str()
        ),
        ("x", Some((1, 2)), "y")
    );
    assert_eq!(b.copies.len(), 2);
}

#[test]
fn cfg_on_pin_data_fields_is_honoured() {
    #[pin_data]
    struct Conf {
        #[pin]
        always: u8,
        #[cfg(test)]
        #[pin]
        in_tests: u16,
        #[cfg(not(test))]
        never: NotConstructible,
    }
    #[cfg(not(test))]
    enum NotConstructible {}
    let mut c = Box::pin_init(pin_init!(Conf {
        always: 1,
        #[cfg(test)]
        in_tests: 2,
        #[cfg(not(test))]
        never: unreachable!(),
    }))
    .unwrap();
    let p = c.as_mut().project();
    assert_eq!((*p.always, *p.in_tests), (1, 2));
}

#[test]
fn a_pinned_field_removed_by_cfg_does_not_make_the_struct_unpin_bound() {
    fn unpin_value<T: Unpin>(value: T) -> T {
        value
    }
    #[pin_data]
    struct Conf {
        #[pin]
        n: u8,
        #[cfg(not(test))]
        #[pin]
        pinned: core::marker::PhantomPinned,
    }
    // Compiles only because the `PhantomPinned` field is configured out.
    let c = unpin_value(Conf { n: 4 });
    assert_eq!(c.n, 4);
}

/// Named through a path that the rewriting of a type's own name must leave alone.
#[pin_data]
struct Other {
    next: Option<Box<crate::Other>>,
    up: *const self::Other,
}

#[test]
fn field_types_and_bounds_may_name_the_type_itself() {
    use core::ptr;

    #[pin_data]
    struct Node<'a, T: Clone, const N: usize>
    where
        Option<Box<Node<'a, T, N>>>: Sized,
    {
        next: *mut Node<'a, T, N>,
        prev: *const Self,
        children: Vec<Node<'a, T, N>>,
        #[pin]
        item: [&'a T; N],
        path: Option<Box<crate::Other>>,
    }

    #[pin_data]
    struct Link(*mut Link, #[pin] PhantomPinned, Option<Box<Self>>);

    let value = 7u8;
    let first = &value; // the initialiser's closure moves what it captures: capture the reference
    let n = Box::pin_init(pin_init!(&this in Node {
        next: this.as_ptr(),
        prev: ptr::null(),
        children: Vec::new(),
        item: [first; 2],
        path: None,
    }))
    .unwrap();
    assert!(ptr::eq(n.next, &*n));
    assert!(n.prev.is_null() && n.children.is_empty() && n.path.is_none());
    assert_eq!(*n.item[1], 7);

    let mut l = Box::pin_init(pin_init!(Link {
        0: ptr::null_mut(),
        1: PhantomPinned,
        2: None,
    }))
    .unwrap();
    assert!(l.0.is_null() && l.2.is_none());
    assert!(l.as_mut().project().2.is_none());

    let o = Box::init(init!(Other {
        next: None,
        up: ptr::null(),
    }))
    .unwrap();
    assert!(o.next.is_none() && o.up.is_null());
}
