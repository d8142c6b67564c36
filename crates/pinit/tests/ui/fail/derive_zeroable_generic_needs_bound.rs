#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Zeroable)]
struct Wrap<T>(T);

fn zero<T>() -> Wrap<T> {
    Wrap::zeroed()
}

fn main() {}
