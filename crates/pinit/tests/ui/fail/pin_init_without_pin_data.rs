#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct Plain {
    a: u32,
}

fn main() {
    let _ = pin_init!(Plain { a: 1 });
}
