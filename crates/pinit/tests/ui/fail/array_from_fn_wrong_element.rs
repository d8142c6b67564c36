#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

fn main() {
    let _: Result<Box<[u32; 4]>, AllocError> = Box::init(init_array_from_fn(|i| value(i as u64)));
}
