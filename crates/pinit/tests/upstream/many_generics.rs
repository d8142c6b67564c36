// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `tests/many_generics.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! `#[pin_data(PinnedDrop)]` with lifetimes, bounds between them, a `?Sized` parameter, a const generic
//! with a default and a where clause; then built with `pin_init!`.

use core::marker::PhantomPinned;
use core::pin::Pin;
use std::cell::Cell;

use pinit::*;

trait Bar<'a, const ID: usize = 0> {
    fn bar(&mut self);
}

#[pin_data(PinnedDrop)]
struct Foo<'a, 'b: 'a, T: Bar<'b> + ?Sized + 'a, const SIZE: usize = 0>
where
    T: Bar<'a, 1>,
{
    array: [u8; 1024 * 1024],
    r: &'b mut [&'a mut T; SIZE],
    #[pin]
    _pin: PhantomPinned,
}

#[pinned_drop]
impl<'a, 'b: 'a, T: Bar<'b> + ?Sized + 'a, const SIZE: usize> PinnedDrop for Foo<'a, 'b, T, SIZE>
where
    T: Bar<'a, 1>,
{
    fn drop(self: Pin<&mut Self>) {
        let me = unsafe { Pin::get_unchecked_mut(self) };
        for t in &mut *me.r {
            Bar::<'a, 1>::bar(*t);
        }
    }
}

struct Counter<'c>(&'c Cell<u32>);

impl<'a, 'c, const ID: usize> Bar<'a, ID> for Counter<'c> {
    fn bar(&mut self) {
        self.0.set(self.0.get() + 1 + ID as u32);
    }
}

#[test]
fn the_pinned_drop_runs_with_every_generic() {
    let count = Cell::new(0);
    let (mut x, mut y) = (Counter(&count), Counter(&count));
    let mut refs = [&mut x, &mut y];
    let r = &mut refs; // the initialiser moves what it captures
    let init = pin_init!(Foo {
        array <- init_zeroed(),
        r,
        _pin: PhantomPinned,
    });
    let foo: Pin<Box<Foo<'_, '_, Counter<'_>, 2>>> = Box::pin_init(init).unwrap();
    assert_eq!(foo.array[0], 0);
    drop(foo);
    // Each of the two counters was bumped by `1 + ID` with `ID = 1`.
    assert_eq!(count.get(), 4);
}
