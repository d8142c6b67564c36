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
    stack_pin_init!(let a = pin_init!(Lock { waiters: PhantomPinned, count: 0 }));
    stack_pin_init!(let b = pin_init!(Lock { waiters: PhantomPinned, count: 1 }));
    core::mem::swap(&mut *a, &mut *b);
}
