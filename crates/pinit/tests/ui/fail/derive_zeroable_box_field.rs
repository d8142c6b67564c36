#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Zeroable)]
struct Holder {
    a: u32,
    b: Box<u8>,
}

fn main() {}
