// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `examples/linked_list.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! A circular, intrusive doubly linked list whose heads link themselves in while being initialised, in a
//! `Box` or on the stack, and unlink themselves when dropped.

use core::cell::Cell;
use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::{self, NonNull};

use pinit::*;

use super::error::Error;

#[pin_data(PinnedDrop)]
#[repr(C)]
#[derive(Debug)]
pub struct ListHead {
    next: Link,
    prev: Link,
    #[pin]
    pin: PhantomPinned,
}

impl ListHead {
    /// A list of one: both links point back at the head itself.
    pub fn new() -> impl PinInit<Self, Infallible> {
        try_pin_init!(&this in Self {
            next: unsafe { Link::new_unchecked(this) },
            prev: unsafe { Link::new_unchecked(this) },
            pin: PhantomPinned,
        }? Infallible)
    }

    /// A head inserted right after `list`.
    pub fn insert_next(list: &ListHead) -> impl PinInit<Self, Infallible> + '_ {
        try_pin_init!(&this in Self {
            prev: list.next.prev().replace(unsafe { Link::new_unchecked(this) }),
            next: list.next.replace(unsafe { Link::new_unchecked(this) }),
            pin: PhantomPinned,
        }? Infallible)
    }

    /// A head inserted right before `list`.
    pub fn insert_prev(list: &ListHead) -> impl PinInit<Self, Infallible> + '_ {
        try_pin_init!(&this in Self {
            next: list.prev.next().replace(unsafe { Link::new_unchecked(this) }),
            prev: list.prev.replace(unsafe { Link::new_unchecked(this) }),
            pin: PhantomPinned,
        }? Infallible)
    }

    /// The next head, or `None` when this one is alone.
    pub fn next(&self) -> Option<NonNull<Self>> {
        if ptr::eq(self.next.as_ptr(), self) {
            None
        } else {
            Some(self.next.0.get())
        }
    }

    /// How many heads the ring holds.
    pub fn size(&self) -> usize {
        let mut count = 1;
        let mut at = self.next.as_ptr();
        while !ptr::eq(at, self) {
            at = unsafe { (*at).next.as_ptr() };
            count += 1;
        }
        count
    }
}

#[pinned_drop]
impl PinnedDrop for ListHead {
    fn drop(self: Pin<&mut Self>) {
        if !ptr::eq(self.next.as_ptr(), &*self) {
            let next = unsafe { &*self.next.as_ptr() };
            let prev = unsafe { &*self.prev.as_ptr() };
            next.prev.set(&self.prev);
            prev.next.set(&self.next);
        }
    }
}

/// A pointer to a neighbouring head.
#[repr(transparent)]
#[derive(Clone, Debug)]
struct Link(Cell<NonNull<ListHead>>);

impl Link {
    /// # Safety
    ///
    /// The links must form a consistent ring: the head this one points to points back at its owner.
    unsafe fn new_unchecked(ptr: NonNull<ListHead>) -> Self {
        Self(Cell::new(ptr))
    }

    fn next(&self) -> &Link {
        unsafe { &(*self.0.get().as_ptr()).next }
    }

    fn prev(&self) -> &Link {
        unsafe { &(*self.0.get().as_ptr()).prev }
    }

    fn replace(&self, other: Link) -> Link {
        unsafe { Link::new_unchecked(self.0.replace(other.0.get())) }
    }

    fn as_ptr(&self) -> *const ListHead {
        self.0.get().as_ptr()
    }

    fn set(&self, other: &Link) {
        self.0.set(other.0.get());
    }
}

#[test]
fn heads_link_themselves_in_and_out() -> Result<(), Error> {
    let a = Box::pin_init(ListHead::new())?;
    assert_eq!(a.size(), 1);
    assert!(a.next().is_none());
    {
        stack_pin_init!(let b = ListHead::insert_next(&a));
        stack_pin_init!(let c = ListHead::insert_next(&a));
        stack_pin_init!(let d = ListHead::insert_next(&b));
        let e = Box::pin_init(ListHead::insert_prev(&b))?;
        assert_eq!(
            (a.size(), b.size(), c.size(), d.size(), e.size()),
            (5, 5, 5, 5, 5)
        );
        // a -> c -> e -> b -> d -> a
        let order: Vec<*const ListHead> = {
            let mut seen = vec![&*a as *const ListHead];
            let mut at = a.next().map(|n| n.as_ptr().cast_const());
            while let Some(p) = at.filter(|p| !ptr::eq(*p, &*a)) {
                seen.push(p);
                at = unsafe { (*p).next() }.map(|n| n.as_ptr().cast_const());
            }
            seen
        };
        let expected: Vec<*const ListHead> = vec![&*a, &*c, &*e, &*b, &*d];
        assert_eq!(order, expected);
        drop(e);
        assert_eq!(a.size(), 4);
    }
    assert_eq!(a.size(), 1);
    Ok(())
}
