#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct S {
    a: u32,
}

fn main() {
    let _ = init!(S { a <- 5 });
}
