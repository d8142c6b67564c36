#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct Holder<T> {
    item: T,
}

fn main() {
    let _ = init!(Holder::<u8> { item: 300u16 });
}
