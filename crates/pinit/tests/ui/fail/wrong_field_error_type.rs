#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[derive(Debug)]
struct DiskError;
#[derive(Debug)]
struct NetError;

struct Conn {
    id: u32,
}

fn id() -> impl Init<u32, DiskError> {
    init_scope(|| Ok(value(1)))
}

fn main() {
    let _ = init!(Conn { id <- id() }? NetError);
}
