// SPDX-License-Identifier: Apache-2.0 OR MIT
// Modelled on `examples/pthread_mutex.rs` of pinned-init 0.0.10 (https://github.com/Rust-for-Linux/pin-init,
// Copyright (c) 2023 y86-dev, MIT OR Apache-2.0).

//! A POSIX mutex, which must not move once initialised, built in place by a fallible closure initialiser
//! that reports the C library's error and cleans up on every failure path.

#![cfg(target_os = "linux")]

use core::cell::UnsafeCell;
use core::convert::Infallible;
use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use std::sync::Arc;
use std::thread;

use pinit::*;

/// The few pthread items used here (the `libc` crate's names). The types are opaque and at least as large
/// and aligned as glibc's and musl's on Linux; the initialiser is all zeros there.
#[allow(non_camel_case_types)]
mod libc {
    use core::ffi::c_int;

    #[repr(C, align(16))]
    pub struct pthread_mutex_t([u8; 64]);

    #[repr(C, align(8))]
    pub struct pthread_mutexattr_t([u8; 16]);

    pub const PTHREAD_MUTEX_INITIALIZER: pthread_mutex_t = pthread_mutex_t([0; 64]);
    pub const PTHREAD_MUTEX_NORMAL: c_int = 0;

    unsafe extern "C" {
        pub fn pthread_mutexattr_init(attr: *mut pthread_mutexattr_t) -> c_int;
        pub fn pthread_mutexattr_settype(attr: *mut pthread_mutexattr_t, kind: c_int) -> c_int;
        pub fn pthread_mutexattr_destroy(attr: *mut pthread_mutexattr_t) -> c_int;
        pub fn pthread_mutex_init(
            mutex: *mut pthread_mutex_t,
            attr: *const pthread_mutexattr_t,
        ) -> c_int;
        pub fn pthread_mutex_destroy(mutex: *mut pthread_mutex_t) -> c_int;
        pub fn pthread_mutex_lock(mutex: *mut pthread_mutex_t) -> c_int;
        pub fn pthread_mutex_unlock(mutex: *mut pthread_mutex_t) -> c_int;
    }
}

#[pin_data(PinnedDrop)]
pub struct PThreadMutex<T> {
    #[pin]
    raw: UnsafeCell<libc::pthread_mutex_t>,
    data: UnsafeCell<T>,
    #[pin]
    pin: PhantomPinned,
}

unsafe impl<T: Send> Send for PThreadMutex<T> {}
unsafe impl<T: Send> Sync for PThreadMutex<T> {}

#[pinned_drop]
impl<T> PinnedDrop for PThreadMutex<T> {
    fn drop(self: Pin<&mut Self>) {
        unsafe { libc::pthread_mutex_destroy(self.raw.get()) };
    }
}

#[derive(Debug)]
pub enum Error {
    #[allow(dead_code)]
    IO(std::io::Error),
    Alloc,
}

impl From<Infallible> for Error {
    fn from(never: Infallible) -> Self {
        match never {}
    }
}

impl From<AllocError> for Error {
    fn from(_: AllocError) -> Self {
        Self::Alloc
    }
}

/// `Err` with the OS error for a non-zero pthread return value.
fn check(ret: core::ffi::c_int) -> Result<(), Error> {
    if ret == 0 {
        Ok(())
    } else {
        Err(Error::IO(std::io::Error::from_raw_os_error(ret)))
    }
}

impl<T> PThreadMutex<T> {
    pub fn new(data: T) -> impl PinInit<Self, Error> {
        fn init_raw() -> impl PinInit<UnsafeCell<libc::pthread_mutex_t>, Error> {
            let init = |slot: *mut UnsafeCell<libc::pthread_mutex_t>| {
                let slot: *mut libc::pthread_mutex_t = slot.cast();
                let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
                let attr = attr.as_mut_ptr();
                check(unsafe { libc::pthread_mutexattr_init(attr) })?;
                let configured = check(unsafe {
                    libc::pthread_mutexattr_settype(attr, libc::PTHREAD_MUTEX_NORMAL)
                })
                .and_then(|()| {
                    unsafe { slot.write(libc::PTHREAD_MUTEX_INITIALIZER) };
                    check(unsafe { libc::pthread_mutex_init(slot, attr) })
                });
                unsafe { libc::pthread_mutexattr_destroy(attr) };
                configured
            };
            unsafe { pin_init_from_closure(init) }
        }
        try_pin_init!(Self {
            data: UnsafeCell::new(data),
            raw <- init_raw(),
            pin: PhantomPinned,
        }? Error)
    }

    pub fn lock(&self) -> PThreadMutexGuard<'_, T> {
        unsafe { libc::pthread_mutex_lock(self.raw.get()) };
        PThreadMutexGuard { mtx: self }
    }
}

pub struct PThreadMutexGuard<'a, T> {
    mtx: &'a PThreadMutex<T>,
}

impl<T> Drop for PThreadMutexGuard<'_, T> {
    fn drop(&mut self) {
        unsafe { libc::pthread_mutex_unlock(self.mtx.raw.get()) };
    }
}

impl<T> Deref for PThreadMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        unsafe { &*self.mtx.data.get() }
    }
}

impl<T> DerefMut for PThreadMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        unsafe { &mut *self.mtx.data.get() }
    }
}

#[test]
fn a_pinned_pthread_mutex_counts() {
    let mtx: Pin<Arc<PThreadMutex<usize>>> = Arc::try_pin_init(PThreadMutex::new(0)).unwrap();
    let threads = 8;
    let rounds = 1_000;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mtx = mtx.clone();
            thread::spawn(move || {
                for _ in 0..rounds {
                    *mtx.lock() += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
    assert_eq!(*mtx.lock(), threads * rounds);
    assert!(matches!(Error::from(AllocError), Error::Alloc));
}
