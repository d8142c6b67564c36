// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `tests/ring_buf.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! A self-referential ring buffer: its head and tail point into its own storage, elements are pushed with
//! (fallible) initialisers and taken out without passing through the stack.

use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::ptr::{self, addr_of_mut};
use std::sync::Arc;

use pinit::*;

use super::error::Error;
use super::mutex::CMutex;

#[pin_data(PinnedDrop)]
pub struct RingBuffer<T, const SIZE: usize> {
    buffer: [MaybeUninit<T>; SIZE],
    head: *mut T,
    tail: *mut T,
    #[pin]
    _pin: PhantomPinned,
}

#[pinned_drop]
impl<T, const SIZE: usize> PinnedDrop for RingBuffer<T, SIZE> {
    fn drop(self: Pin<&mut Self>) {
        let this = unsafe { self.get_unchecked_mut() };
        while !ptr::eq(this.tail, this.head) {
            unsafe { this.tail.drop_in_place() };
            this.tail = unsafe { this.advance(this.tail) };
        }
    }
}

impl<T, const SIZE: usize> RingBuffer<T, SIZE> {
    pub fn new() -> impl PinInit<Self> {
        assert!(SIZE > 0);
        pin_init!(&this in Self {
            // The elements may stay uninitialised.
            buffer <- unsafe { init_from_closure(|_| Ok::<_, Infallible>(())) },
            head: unsafe { addr_of_mut!((*this.as_ptr()).buffer).cast::<T>() },
            tail: unsafe { addr_of_mut!((*this.as_ptr()).buffer).cast::<T>() },
            _pin: PhantomPinned,
        })
    }

    pub fn push(self: Pin<&mut Self>, value: impl Init<T>) -> bool {
        match self.try_push(value) {
            Ok(pushed) => pushed,
            Err(never) => match never {},
        }
    }

    /// `Ok(false)` when full; the initialiser's error otherwise.
    pub fn try_push<E>(self: Pin<&mut Self>, value: impl Init<T, E>) -> Result<bool, E> {
        let this = unsafe { self.get_unchecked_mut() };
        let next_head = unsafe { this.advance(this.head) };
        if ptr::eq(next_head, this.tail) {
            return Ok(false);
        }
        unsafe { value.__init(this.head)? };
        this.head = next_head;
        Ok(true)
    }

    pub fn pop(self: Pin<&mut Self>) -> Option<T> {
        let this = unsafe { self.get_unchecked_mut() };
        if ptr::eq(this.head, this.tail) {
            return None;
        }
        let value = unsafe { this.tail.read() };
        this.tail = unsafe { this.advance(this.tail) };
        Some(value)
    }

    /// The oldest element as an initialiser that moves it straight into its next place.
    pub fn pop_no_stack(self: Pin<&mut Self>) -> Option<impl Init<T> + '_> {
        let this = unsafe { self.get_unchecked_mut() };
        if ptr::eq(this.head, this.tail) {
            return None;
        }
        let take = |slot: *mut T| {
            unsafe { ptr::copy_nonoverlapping(this.tail, slot, 1) };
            this.tail = unsafe { this.advance(this.tail) };
            Ok(())
        };
        Some(unsafe { init_from_closure(take) })
    }

    /// The slot after `ptr`, wrapping around.
    ///
    /// # Safety
    ///
    /// `ptr` points into `self.buffer`.
    unsafe fn advance(&mut self, ptr: *mut T) -> *mut T {
        let origin = addr_of_mut!(self.buffer).cast::<T>();
        let next = unsafe { ptr.add(1) };
        if unsafe { next.offset_from(origin) } >= SIZE as isize {
            origin
        } else {
            next
        }
    }
}

#[test]
fn on_stack() -> Result<(), Infallible> {
    stack_pin_init!(let buf = RingBuffer::<u8, 64>::new());
    assert_eq!(buf.as_mut().pop(), None);
    assert!(buf.as_mut().push(10));
    assert!(buf.as_mut().push(42));
    assert_eq!(buf.as_mut().pop(), Some(10));
    assert_eq!(buf.as_mut().pop(), Some(42));
    assert_eq!(buf.as_mut().pop(), None);
    assert!(buf.as_mut().push(42));
    assert!(buf.as_mut().push(24));
    assert_eq!(buf.as_mut().pop(), Some(42));
    assert!(buf.as_mut().push(25));
    assert_eq!(buf.as_mut().pop(), Some(24));
    assert_eq!(buf.as_mut().pop(), Some(25));
    for i in 0..63 {
        assert!(buf.as_mut().push(i));
    }
    assert!(!buf.as_mut().push(42));
    for i in 0..63 {
        let value = buf.as_mut().pop_no_stack().expect("63 values");
        stack_pin_init!(let value = value);
        assert_eq!(*value, i);
    }
    assert_eq!(buf.as_mut().pop(), None);
    Ok(())
}

#[derive(PartialEq, Eq, Debug)]
pub struct EvenU64 {
    info: String,
    data: u64,
}

impl EvenU64 {
    pub fn new2(value: u64) -> impl Init<Self, Error> {
        try_init!(Self {
            info: "Hello world!".to_owned(),
            data: if value % 2 == 0 { value } else { return Err(Error) },
        }? Error)
    }

    pub fn new(value: u64) -> impl Init<Self, ()> {
        try_init!(Self {
            info: "Hello world!".to_owned(),
            data: if value % 2 == 0 {
                value
            } else {
                return Err(());
            },
        }?())
    }
}

#[test]
fn even_stack() {
    stack_try_pin_init!(let val = EvenU64::new(0));
    assert_eq!(
        val.as_deref_mut(),
        Ok(&mut EvenU64 {
            info: "Hello world!".to_owned(),
            data: 0
        })
    );
    stack_try_pin_init!(let val = EvenU64::new(1));
    assert_eq!(val, Err(()));
}

#[test]
fn even_failing() {
    assert!(matches!(Box::try_pin_init(EvenU64::new2(3)), Err(Error)));
    assert!(matches!(Box::try_init(EvenU64::new2(3)), Err(Error)));
    assert!(matches!(Arc::try_pin_init(EvenU64::new2(5)), Err(Error)));
    assert!(matches!(Arc::try_init(EvenU64::new2(5)), Err(Error)));
}

#[test]
fn with_failing_inner() {
    let mut buf = Box::pin_init(RingBuffer::<EvenU64, 4>::new()).unwrap();
    assert_eq!(buf.as_mut().try_push(EvenU64::new(0)), Ok(true));
    assert_eq!(buf.as_mut().try_push(EvenU64::new(1)), Err(()));
    assert_eq!(buf.as_mut().try_push(EvenU64::new(2)), Ok(true));
    assert_eq!(buf.as_mut().try_push(EvenU64::new(3)), Err(()));
    assert_eq!(buf.as_mut().try_push(EvenU64::new(4)), Ok(true));
    assert_eq!(buf.as_mut().try_push(EvenU64::new(6)), Ok(false));
    for data in [0, 2, 4] {
        assert_eq!(
            buf.as_mut().pop(),
            Some(EvenU64 {
                info: "Hello world!".to_owned(),
                data
            })
        );
    }
    assert_eq!(buf.as_mut().pop(), None);
    // Two left in the buffer are dropped with it.
    assert_eq!(buf.as_mut().try_push(EvenU64::new(8)), Ok(true));
    assert_eq!(buf.as_mut().try_push(EvenU64::new(10)), Ok(true));
}

#[allow(dead_code)]
#[derive(Debug)]
struct BigStruct {
    buf: [u8; 1024 * 1024],
    oth: MaybeUninit<u8>,
}

#[test]
fn big_struct() {
    let x = Arc::init(init!(BigStruct {
        buf <- init_zeroed(),
        oth <- init_zeroed(),
    }));
    assert_eq!(x.unwrap().buf[1024 * 1024 - 1], 0);
    let x = Box::init(init!(BigStruct {
        buf <- init_zeroed(),
        oth <- init_zeroed(),
    }));
    assert_eq!(x.unwrap().buf[0], 0);
}

#[test]
fn with_big_struct() {
    let buf = Arc::pin_init(CMutex::new(RingBuffer::<BigStruct, 64>::new())).unwrap();
    let mut buf = buf.lock();
    for _ in 0..63 {
        assert_eq!(
            buf.as_mut().try_push(init!(BigStruct {
                buf <- init_zeroed(),
                oth <- uninit::<_, Infallible>(),
            })),
            Ok(true)
        );
    }
    assert_eq!(
        buf.as_mut().try_push(init!(BigStruct {
            buf <- init_zeroed(),
            oth <- uninit::<_, Infallible>(),
        })),
        Ok(false)
    );
    for _ in 0..63 {
        assert!(buf.as_mut().pop_no_stack().is_some());
    }
}

/// Out of memory comes back as an error from `Box` (pinit's `Arc` aborts instead: stable Rust has no
/// fallible `Arc` allocation).
#[test]
fn too_big_pinned() {
    assert!(matches!(
        Box::pin_init(RingBuffer::<u8, { 1024 * 1024 * 1024 * 1024 }>::new()),
        Err(AllocError)
    ));
}
