#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Debug)]
struct Oops;

#[pin_data]
struct S {
    a: u32,
}

fn main() {
    stack_pin_init!(let s = pin_init!(S { a: 1 }? Oops));
}
