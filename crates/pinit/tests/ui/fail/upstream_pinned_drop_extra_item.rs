// Modelled on a compile-fail case of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).
use core::pin::Pin;
use pinit::{pin_data, pinned_drop};

#[pin_data(PinnedDrop)]
struct Handle {}

#[pinned_drop]
impl PinnedDrop for Handle {
    fn drop(self: Pin<&mut Self>) {}
    const EXTRA: usize = 0;
}

fn main() {}
