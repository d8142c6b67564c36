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

#[pinned_drop]
impl PinnedDrop for Lock {
    fn drop(self: Pin<&mut Self>) {}
}

fn main() {}
