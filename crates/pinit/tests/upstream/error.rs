// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `examples/error.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! The error type the other programs share. `From<Infallible>` lets `?` take infallible results;
//! `From<AllocError>` lets allocation failures through (pinned-init uses `core::alloc::AllocError`, which
//! is nightly-only; pinit has its own).

use core::convert::Infallible;

use pinit::AllocError;

#[derive(Debug, PartialEq, Eq)]
pub struct Error;

impl From<Infallible> for Error {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

impl From<AllocError> for Error {
    fn from(_: AllocError) -> Self {
        Error
    }
}

#[test]
fn errors_convert() {
    assert_eq!(Error::from(AllocError), Error);
}
