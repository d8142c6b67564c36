// Modelled on a compile-fail case of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).
use pinit::pin_data;

#[pin_data]
#[pin_data]
struct Twice {
    #[pin]
    a: usize,
}

fn main() {}
