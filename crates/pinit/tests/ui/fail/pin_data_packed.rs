#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
#[repr(packed)]
struct P {
    a: u8,
    b: u32,
}

fn main() {}
