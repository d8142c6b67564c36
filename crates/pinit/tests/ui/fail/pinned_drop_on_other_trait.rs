#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct S;

#[pinned_drop]
impl Clone for S {
    fn clone(&self) -> Self {
        S
    }
}

fn main() {}
