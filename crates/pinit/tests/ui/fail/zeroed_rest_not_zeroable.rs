#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct NotZero {
    a: u32,
    b: &'static u8,
}

fn main() {
    let _ = init!(NotZero { a: 1, ..Zeroable::zeroed() });
}
