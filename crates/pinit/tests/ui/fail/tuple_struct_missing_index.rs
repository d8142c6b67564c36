#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct T(u8, u16);

fn main() {
    let _ = init!(T { 0: 1 });
}
