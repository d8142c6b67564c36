#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
#[repr(u8)]
enum E {
    A { x: u8, y: u16 },
}

fn main() {
    let _ = pin_init!(enum E::B { x: 1 });
}
