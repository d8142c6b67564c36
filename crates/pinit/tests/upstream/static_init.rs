// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `examples/static_init.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! A `static` whose pinned value is built in place on first use, by a hand-written `PinInit` impl.

use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;
use core::ops::Deref;
use std::thread;

use pinit::*;

use super::mutex::*;

pub struct StaticInit<T, I> {
    cell: UnsafeCell<MaybeUninit<T>>,
    init: Cell<Option<I>>,
    lock: SpinLock,
    present: Cell<bool>,
}

unsafe impl<T: Sync, I> Sync for StaticInit<T, I> {}
unsafe impl<T: Send, I> Send for StaticInit<T, I> {}

impl<T, I: PinInit<T>> StaticInit<T, I> {
    pub const fn new(init: I) -> Self {
        Self {
            cell: UnsafeCell::new(MaybeUninit::uninit()),
            init: Cell::new(Some(init)),
            lock: SpinLock::new(),
            present: Cell::new(false),
        }
    }
}

impl<T, I: PinInit<T>> Deref for StaticInit<T, I> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only read `present` under the lock: another thread may be initialising.
        let _guard = self.lock.acquire();
        if !self.present.get() {
            let slot = self.cell.get().cast::<T>();
            if let Some(init) = self.init.take() {
                // The static's memory never moves and is never freed, so the value stays pinned.
                match unsafe { init.__pinned_init(slot) } {
                    Ok(()) => self.present.set(true),
                    Err(never) => match never {},
                }
            }
        }
        unsafe { (*self.cell.get()).assume_init_ref() }
    }
}

pub struct CountInit;

unsafe impl PinInit<CMutex<usize>> for CountInit {
    unsafe fn __pinned_init(
        self,
        slot: *mut CMutex<usize>,
    ) -> Result<(), core::convert::Infallible> {
        let init = CMutex::new(0);
        unsafe { init.__pinned_init(slot) }
    }
}

pub static COUNT: StaticInit<CMutex<usize>, CountInit> = StaticInit::new(CountInit);

#[test]
fn the_static_is_built_once_and_shared() {
    let threads = 6;
    let rounds = 100;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..rounds {
                    *COUNT.lock() += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
    assert_eq!(*COUNT.lock(), threads * rounds);
}
