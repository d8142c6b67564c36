//! Shared helpers: values that record their drops, and initialisers that fail or panic on demand.

#![allow(dead_code)]

use std::cell::RefCell;

use pinit::{Init, init_from_closure};

thread_local! {
    static LOG: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Records its name when dropped.
#[derive(Debug)]
pub struct Noisy(pub &'static str);

impl Drop for Noisy {
    fn drop(&mut self) {
        LOG.with(|l| l.borrow_mut().push(self.0));
    }
}

/// Takes and clears the drop log of this thread.
pub fn drops() -> Vec<&'static str> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// The error used by the failing initialisers.
#[derive(Debug, PartialEq, Eq)]
pub struct Failed(pub &'static str);

impl From<pinit::AllocError> for Failed {
    fn from(_: pinit::AllocError) -> Self {
        Failed("alloc")
    }
}

/// An initialiser that always fails with `Failed(why)`.
pub fn fails<T>(why: &'static str) -> impl Init<T, Failed> {
    // SAFETY: it never writes the slot and reports failure, so the slot stays uninitialised.
    unsafe { init_from_closure(move |_| Err(Failed(why))) }
}
