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

fn assert_unpin<T: Unpin>() {}

fn main() {
    assert_unpin::<Lock>();
}
