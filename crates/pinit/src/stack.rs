//! `StackInit`: a pinned stack slot for `stack_pin_init!` / `stack_try_pin_init!`.

use core::marker::PhantomPinned;
use core::mem::MaybeUninit;
use core::pin::Pin;

use crate::PinInit;

/// Stack memory for one `T` that drops the value (in place) if it was initialised.
///
/// Used through [`stack_pin_init!`](crate::stack_pin_init); it must be pinned before use, which the macros do.
#[derive(Debug)]
pub struct StackInit<T> {
    value: MaybeUninit<T>,
    is_init: bool,
    _pin: PhantomPinned,
}

impl<T> Drop for StackInit<T> {
    fn drop(&mut self) {
        if self.is_init {
            // SAFETY: `is_init` is set only after an initialiser succeeded; the value is dropped once, in place.
            unsafe { self.value.assume_init_drop() };
        }
    }
}

impl<T> StackInit<T> {
    /// An empty slot.
    pub const fn uninit() -> Self {
        Self {
            value: MaybeUninit::uninit(),
            is_init: false,
            _pin: PhantomPinned,
        }
    }

    /// Runs a fallible initialiser into the pinned slot.
    pub fn try_init<E>(self: Pin<&mut Self>, init: impl PinInit<T, E>) -> Result<Pin<&mut T>, E> {
        // SAFETY: the slot is never moved out of its pin; we only write into it.
        let this = unsafe { self.get_unchecked_mut() };
        if this.is_init {
            this.is_init = false;
            // SAFETY: the old value was initialised; it is dropped in place before being replaced.
            unsafe { this.value.assume_init_drop() };
        }
        // SAFETY: the memory is valid for a `T` and holds nothing that needs dropping.
        unsafe { init.__pinned_init(this.value.as_mut_ptr())? };
        this.is_init = true;
        // SAFETY: the initialiser succeeded, so the value is initialised.
        let value = unsafe { this.value.assume_init_mut() };
        // SAFETY: the value is inside a pinned slot, so it never moves.
        Ok(unsafe { Pin::new_unchecked(value) })
    }

    /// Runs an infallible initialiser into the pinned slot.
    pub fn init(self: Pin<&mut Self>, init: impl PinInit<T>) -> Pin<&mut T> {
        match self.try_init(init) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }
}
