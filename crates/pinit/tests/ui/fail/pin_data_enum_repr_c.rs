#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
#[repr(C)]
enum E {
    A { x: u8 },
}

fn main() {}
