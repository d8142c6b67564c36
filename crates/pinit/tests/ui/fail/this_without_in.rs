#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct S {
    me: *const S,
}

fn main() {
    let _ = init!(&this S { me: this.as_ptr() });
}
