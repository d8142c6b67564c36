#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
struct S {
    #[pin]
    p: PhantomPinned,
}

fn main() {
    let mut v: Vec<S> = Vec::new();
    v.push_init(pin_init!(S { p: PhantomPinned })).unwrap();
}
