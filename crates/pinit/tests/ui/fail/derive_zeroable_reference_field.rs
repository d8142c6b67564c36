#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Zeroable)]
struct Holder<'a> {
    r: &'a u8,
}

fn main() {}
