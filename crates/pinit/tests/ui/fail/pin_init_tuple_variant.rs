#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
#[repr(u8)]
enum E {
    A(u8),
    B { x: u8 },
}

fn main() {
    let _ = pin_init!(enum E::A { 0: 1 });
}
