// Fields of a packed struct may be misaligned: writing them through pointers, and handing later fields
// `&mut` references to earlier ones, would be undefined behaviour.
use pinit::{InPlaceInit, init};

#[repr(packed)]
struct Packed {
    a: u8,
    b: u64,
}

fn main() {
    let _ = Box::init(init!(Packed { a: 1, b: 2 }));
}
