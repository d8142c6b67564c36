// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `tests/zeroing.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! `..Zeroable::init_zeroed()` together with `&this in`, on a `#[pin_data]` + `#[derive(Zeroable)]` struct.

use core::marker::PhantomPinned;
use core::ptr::addr_of_mut;

use pinit::*;

const MARKS: usize = 64;

#[pin_data]
#[derive(Zeroable)]
pub struct Foo {
    buf: [u8; 1024 * 1024],
    marks: [*mut u8; MARKS],
    pos: usize,
    #[pin]
    _pin: PhantomPinned,
}

impl Foo {
    pub fn new() -> impl PinInit<Self> {
        pin_init!(&this in Self {
            marks: {
                let ptr = this.as_ptr();
                let ptr = unsafe { addr_of_mut!((*ptr).buf) }.cast::<u8>();
                [ptr; MARKS]
            },
            ..Zeroable::init_zeroed()
        })
    }
}

#[test]
fn the_rest_is_zero_and_the_marks_point_inside() {
    let foo = Box::pin_init(Foo::new()).unwrap();
    assert_eq!((foo.pos, foo.buf[1024 * 1024 - 1]), (0, 0));
    assert!(
        foo.marks
            .iter()
            .all(|&m| core::ptr::eq(m, foo.buf.as_ptr()))
    );
}
