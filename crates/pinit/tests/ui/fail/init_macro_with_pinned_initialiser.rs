#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
struct Inner {
    #[pin]
    _p: PhantomPinned,
}

struct Outer {
    inner: Inner,
}

fn main() {
    let _ = init!(Outer { inner <- pin_init!(Inner { _p: PhantomPinned }) });
}
