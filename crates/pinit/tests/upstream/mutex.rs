// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `examples/mutex.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! A mutex whose waiters queue on an intrusive list of stack-pinned entries (the pattern of the kernel's
//! `Mutex`), built in place around a pinned initialiser of the protected value.

use core::cell::{Cell, UnsafeCell};
use core::marker::PhantomPinned;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, Builder, Thread};

use pinit::*;

use super::linked_list::*;

/// Guards the mutex's own state.
pub struct SpinLock {
    held: AtomicBool,
}

impl SpinLock {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self {
            held: AtomicBool::new(false),
        }
    }

    pub fn acquire(&self) -> SpinLockGuard<'_> {
        while self
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.held.load(Ordering::Relaxed) {
                thread::yield_now();
            }
        }
        SpinLockGuard(self)
    }
}

pub struct SpinLockGuard<'a>(&'a SpinLock);

impl Drop for SpinLockGuard<'_> {
    fn drop(&mut self) {
        self.0.held.store(false, Ordering::Release);
    }
}

#[pin_data]
pub struct CMutex<T> {
    #[pin]
    wait_list: ListHead,
    spin_lock: SpinLock,
    locked: Cell<bool>,
    #[pin]
    data: UnsafeCell<T>,
}

impl<T> CMutex<T> {
    /// A mutex around the value `val` builds (a plain value is an initialiser too).
    pub fn new(val: impl PinInit<T>) -> impl PinInit<Self> {
        pin_init!(CMutex {
            wait_list <- ListHead::new(),
            spin_lock: SpinLock::new(),
            locked: Cell::new(false),
            data <- unsafe {
                pin_init_from_closure(|slot: *mut UnsafeCell<T>| val.__pinned_init(slot.cast::<T>()))
            },
        })
    }

    pub fn lock(&self) -> Pin<CMutexGuard<'_, T>> {
        let mut spin = self.spin_lock.acquire();
        if self.locked.get() {
            // Queue up on the stack until the holder wakes us.
            stack_pin_init!(let wait_entry = WaitEntry::insert_new(&self.wait_list));
            while self.locked.get() {
                drop(spin);
                thread::park();
                spin = self.spin_lock.acquire();
            }
            drop(wait_entry);
        }
        self.locked.set(true);
        unsafe {
            Pin::new_unchecked(CMutexGuard {
                mtx: self,
                _pin: PhantomPinned,
            })
        }
    }
}

unsafe impl<T: Send> Send for CMutex<T> {}
unsafe impl<T: Send> Sync for CMutex<T> {}

pub struct CMutexGuard<'a, T> {
    mtx: &'a CMutex<T>,
    _pin: PhantomPinned,
}

impl<T> Drop for CMutexGuard<'_, T> {
    fn drop(&mut self) {
        let spin = self.mtx.spin_lock.acquire();
        self.mtx.locked.set(false);
        if let Some(first) = self.mtx.wait_list.next() {
            // `WaitEntry` is `repr(C)` with the list head first.
            let entry = first.as_ptr().cast::<WaitEntry>();
            unsafe { (*entry).thread.unpark() };
        }
        drop(spin);
    }
}

impl<T> Deref for CMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        unsafe { &*self.mtx.data.get() }
    }
}

impl<T> DerefMut for CMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        unsafe { &mut *self.mtx.data.get() }
    }
}

#[pin_data]
#[repr(C)]
struct WaitEntry {
    #[pin]
    wait_list: ListHead,
    thread: Thread,
}

impl WaitEntry {
    fn insert_new(list: &ListHead) -> impl PinInit<Self> + '_ {
        pin_init!(Self {
            thread: thread::current(),
            wait_list <- ListHead::insert_prev(list),
        })
    }
}

#[test]
fn threads_take_turns() {
    let mtx: Pin<Arc<CMutex<usize>>> = Arc::pin_init(CMutex::new(0)).unwrap();
    let threads = 8;
    let rounds = 200;
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let mtx = mtx.clone();
            Builder::new()
                .name(format!("worker {i}"))
                .spawn(move || {
                    for _ in 0..rounds {
                        *mtx.lock() += 1;
                    }
                })
                .expect("spawn")
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
    assert_eq!(*mtx.lock(), threads * rounds);
}
