//! DMA memory that its owner can still give up for good (leak) or hand on (park) when a
//! controller that may still use it cannot be stopped.

use std::ops::Deref;

/// Memory owned by one value (a ring, a queue pair's PRP lists). It is taken out only while its
/// owner is being dropped or abandoned, so every access before that finds it.
pub(crate) struct Retained<D>(Option<D>);

impl<D> Retained<D> {
    pub(crate) fn new(mem: D) -> Self {
        Retained(Some(mem))
    }

    /// Takes the memory out, to leak or park it; the owner must not use it afterwards.
    pub(crate) fn take(&mut self) -> Option<D> {
        self.0.take()
    }
}

impl<D> Deref for Retained<D> {
    type Target = D;

    fn deref(&self) -> &D {
        self.0
            .as_ref()
            .expect("DMA memory is only taken from an owner that is being dropped")
    }
}
