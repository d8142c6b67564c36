#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data]
struct Lock {
    #[pin]
    waiters: PhantomPinned,
    count: u32,
}

fn main() {
    let _ = pin_init!(Lock { waiters: PhantomPinned, count: 1, count: 2 });
}
