#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
struct Outer {
    #[pin]
    pinned: Inner,
    unpinned: Inner,
}

#[pin_data]
struct Inner {
    #[pin]
    _p: PhantomPinned,
}

fn inner() -> impl PinInit<Inner> {
    pin_init!(Inner { _p: PhantomPinned })
}

fn main() {
    let _ = pin_init!(Outer { pinned <- inner(), unpinned <- inner() });
}
