//! `#[cfg]` on a tuple variant's field would shift the other fields' indices: refused.
use pinit::*;

#[pin_data]
#[repr(u8)]
enum E {
    A(#[cfg(any())] u8, u16),
}

fn main() {}
