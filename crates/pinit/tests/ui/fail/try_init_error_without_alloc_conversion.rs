#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Debug)]
struct MyError;

struct Cfg {
    port: u16,
}

fn main() {
    let _ = Box::try_init(init!(Cfg { port: 1 }? MyError));
}
