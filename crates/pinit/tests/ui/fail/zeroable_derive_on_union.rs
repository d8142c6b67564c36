#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Zeroable)]
union U {
    a: u32,
}

fn main() {}
