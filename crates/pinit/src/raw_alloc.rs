//! Raw, fallible heap allocation that frees itself unless handed over: the base of the `Box` constructors.

use alloc::alloc::{Layout, alloc, alloc_zeroed, dealloc};
use core::ptr::NonNull;

use crate::AllocError;

/// Memory for one layout, freed on drop (also on unwind) unless [`RawAlloc::into_raw`] takes it.
pub(crate) struct RawAlloc {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl RawAlloc {
    /// Allocates `layout` (zero-filled if `zeroed`); zero-sized layouts get a dangling, aligned pointer.
    pub(crate) fn new(layout: Layout, zeroed: bool) -> Result<Self, AllocError> {
        if layout.size() == 0 {
            // `Layout` guarantees a non-zero power-of-two alignment, so this address is non-null and aligned
            // (a pointer without provenance, as `NonNull::dangling`: nothing is accessed through it).
            let ptr = NonNull::new(core::ptr::without_provenance_mut(layout.align()))
                .ok_or(AllocError)?;
            return Ok(Self { ptr, layout });
        }
        let raw = if zeroed {
            // SAFETY: `layout` has a non-zero size.
            unsafe { alloc_zeroed(layout) }
        } else {
            // SAFETY: `layout` has a non-zero size.
            unsafe { alloc(layout) }
        };
        let ptr = NonNull::new(raw).ok_or(AllocError)?;
        Ok(Self { ptr, layout })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Gives up ownership: the caller now frees the memory (normally through `Box::from_raw`).
    pub(crate) fn into_raw(self) -> *mut u8 {
        let ptr = self.ptr.as_ptr();
        core::mem::forget(self);
        ptr
    }
}

impl Drop for RawAlloc {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: `ptr` came from the global allocator with this very layout and was not handed over.
            unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
        }
    }
}
