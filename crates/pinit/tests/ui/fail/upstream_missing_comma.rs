// Modelled on a compile-fail case of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).
use pinit::{pin_data, pin_init};

struct Part;

#[pin_data]
struct Whole {
    a: Part,
    b: Part,
    c: Part,
}

fn main() {
    let _ = pin_init!(Whole {
        a: Part,
        b: Part
        c: Part,
    });
}
