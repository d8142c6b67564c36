#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

struct Port {
    n: u16,
}

fn main() {
    let _ = init!(Port { n: "80".parse::<u16>()? });
}
