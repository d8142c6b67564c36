//! A tuple variant's fields are named by index and checked like any field: a wrong type is refused.
use pinit::*;

#[pin_data]
#[repr(u8)]
enum E {
    A(u8, u32),
    B { x: u8 },
}

fn main() {
    let _ = pin_init!(enum E::A { 0: 1, 1: "two" });
}
