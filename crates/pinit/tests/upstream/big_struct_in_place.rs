// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `examples/big_struct_in_place.rs` of pinned-init 0.0.10
// (https://github.com/Rust-for-Linux/pin-init, Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! A struct of more than 1 GiB built in a `Box` without ever existing on the stack.

use pinit::*;

#[derive(Debug)]
pub struct BigStruct {
    buf: [u8; 1024 * 1024 * 1024],
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    managed_buf: ManagedBuf,
}

#[derive(Debug)]
pub struct ManagedBuf {
    buf: [u8; 1024 * 1024],
}

impl ManagedBuf {
    pub fn new() -> impl Init<Self> {
        init!(ManagedBuf { buf <- init_zeroed() })
    }
}

#[test]
fn a_gibibyte_in_place() {
    let buf: Box<BigStruct> = Box::init(init!(BigStruct {
        buf <- init_zeroed(),
        a: 7,
        b: 186,
        c: 7789,
        d: 34,
        managed_buf <- ManagedBuf::new(),
    }))
    .unwrap();
    assert_eq!(core::mem::size_of_val(&*buf), (1 << 30) + 32 + (1 << 20));
    assert_eq!((buf.a, buf.b, buf.c, buf.d), (7, 186, 7789, 34));
    assert_eq!((buf.buf[(1 << 30) - 1], buf.managed_buf.buf[0]), (0, 0));
}
