#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
#[repr(u8)]
enum E {
    #[cfg(any())]
    Gone { x: u8 },
    Kept { y: u8 },
}

fn main() {}
