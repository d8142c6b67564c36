#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
struct P {
    #[pin]
    #[pin]
    a: PhantomPinned,
}

fn main() {}
