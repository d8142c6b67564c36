//! A hand-written `Unpin` would let pinned fields move: it conflicts with the one `#[pin_data]` generates.
use core::marker::PhantomPinned;

use pinit::pin_data;

#[pin_data]
struct Lock {
    #[pin]
    waiters: PhantomPinned,
}

impl Unpin for Lock {}

fn main() {}
