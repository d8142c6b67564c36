#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct S {
    a: Vec<u8>,
    b: usize,
}

fn main() {
    let _ = init!(S { b: a.len(), a: Vec::new() });
}
