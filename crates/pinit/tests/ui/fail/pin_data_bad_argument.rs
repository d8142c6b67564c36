#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data(Drop)]
struct P {
    a: u8,
}

fn main() {}
