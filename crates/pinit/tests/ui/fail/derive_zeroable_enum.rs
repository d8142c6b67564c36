#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Zeroable)]
enum E {
    A,
    B,
}

fn main() {}
