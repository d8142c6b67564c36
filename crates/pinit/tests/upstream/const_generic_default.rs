// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `tests/const-generic-default.rs` of pinned-init 0.0.10
// (https://github.com/Rust-for-Linux/pin-init, Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! A `#[pin_data]` struct with a defaulted const generic, built on the stack with `init!`, its length
//! given by the binding's type.

use pinit::*;

#[pin_data]
struct Array<const N: usize = 0> {
    array: [u8; N],
}

#[test]
fn create_array() {
    stack_pin_init!(let array: Array<1024> = init!(Array { array <- init_zeroed() }));
    assert_eq!(array.array.len(), 1024);
    assert!(array.array.iter().all(|&b| b == 0));
}
