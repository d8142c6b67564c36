#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct S {
    names: [String; 3],
}

fn main() {
    let _ = init!(S { names: [String::new(); 3] });
}
