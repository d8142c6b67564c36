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
impl PinnedDrop for Lock {
    fn drop(self: Pin<&mut Self>) {}
}

fn main() {
    let mut l = Box::pin_init(pin_init!(Lock { waiters: PhantomPinned })).unwrap();
    PinnedDrop::drop(l.as_mut(), OnlyCallFromDrop::new());
}
