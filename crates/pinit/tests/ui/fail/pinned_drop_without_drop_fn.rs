#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data(PinnedDrop)]
struct Lock {
    #[pin]
    waiters: PhantomPinned,
}

#[pinned_drop]
impl PinnedDrop for Lock {}

fn main() {}
