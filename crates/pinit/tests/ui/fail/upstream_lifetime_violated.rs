// Modelled on a compile-fail case of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).
// An initialiser that borrows a local cannot outlive it.
use pinit::{Init, init};

struct Reading {
    value: i32,
}

fn read(source: &i32) -> impl Init<Reading> + use<'_> {
    init!(Reading { value: *source })
}

fn main() {
    let pending;
    {
        let sensor = 42;
        pending = read(&sensor);
    }
    let _ = pinit::InPlaceInit::init(pending).map(|b: Box<Reading>| b.value);
}
