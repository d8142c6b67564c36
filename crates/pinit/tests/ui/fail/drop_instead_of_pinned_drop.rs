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

impl Drop for Lock {
    fn drop(&mut self) {}
}

fn main() {}
