#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

fn main() {
    let mut slot = core::mem::MaybeUninit::<u32>::uninit();
    let _ = (&mut slot).write_pin_init(value::<u32, ()>(1));
}
