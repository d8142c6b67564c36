#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
struct S {
    #[pin]
    p: PhantomPinned,
}

fn main() {
    let _ = init_by(|slot: Slot<'_, S>| slot.init(pin_init!(S { p: PhantomPinned })));
}
