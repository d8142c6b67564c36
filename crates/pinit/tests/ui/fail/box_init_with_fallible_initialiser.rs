#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct Cfg {
    port: u16,
}

fn main() {
    let _ = Box::init(init!(Cfg { port: 1 }? std::num::ParseIntError));
}
