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
    let mut b = Box::pin_init(pin_init!(Lock { waiters: PhantomPinned, count: 0 })).unwrap();
    let _: &mut Lock = b.as_mut().get_mut();
}
