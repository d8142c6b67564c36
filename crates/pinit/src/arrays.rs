//! Arrays and runtime-length slices built element by element, each element by its own initialiser.

use crate::traits::ClosureInit;
use crate::{Init, PinInit};

/// Drops the first `done` elements starting at `first` unless forgotten: undoes a half-built array.
pub(crate) struct PartialSlice<T> {
    pub(crate) first: *mut T,
    pub(crate) done: usize,
}

impl<T> Drop for PartialSlice<T> {
    fn drop(&mut self) {
        let built = core::ptr::slice_from_raw_parts_mut(self.first, self.done);
        // SAFETY: exactly the first `done` elements were initialised and nothing else drops them.
        unsafe { core::ptr::drop_in_place(built) };
    }
}

/// Initialises `len` elements at `first` with `make(i)`; on error or panic drops those already built.
///
/// # Safety
///
/// `first` is valid for writes of `len` elements and they hold nothing to drop; `pinned` says whether
/// the elements stay pinned (else `make` must return unpinned initialisers, which the callers ensure).
pub(crate) unsafe fn init_elements<T, E, I: PinInit<T, E>>(
    first: *mut T,
    len: usize,
    mut make: impl FnMut(usize) -> I,
) -> Result<(), E> {
    let mut partial = PartialSlice { first, done: 0 };
    for i in 0..len {
        let init = make(i);
        // SAFETY: `i < len`, so the element is inside the caller's memory.
        let element = unsafe { first.add(i) };
        // SAFETY: the element is writable and not yet initialised (the caller's contract).
        unsafe { init.__pinned_init(element)? };
        partial.done = i + 1;
    }
    core::mem::forget(partial);
    Ok(())
}

/// An initialiser for `[T; N]` calling `make(i)` for each element's initialiser, in order.
///
/// ```
/// use pinit::{InPlaceInit, init_array_from_fn, value};
/// let squares = Box::init(init_array_from_fn(|i| value((i * i) as u64))).unwrap();
/// let squares: Box<[u64; 1000]> = squares;
/// assert_eq!(squares[999], 998_001);
/// ```
pub fn init_array_from_fn<I, const N: usize, T, E>(
    make: impl FnMut(usize) -> I,
) -> impl Init<[T; N], E>
where
    I: Init<T, E>,
{
    let run = move |slot: *mut [T; N], _| {
        // SAFETY: the slot holds `N` writable elements; `I: Init`, so they need no pinning.
        unsafe { init_elements(slot.cast::<T>(), N, make) }
    };
    ClosureInit::new(run, false)
}

/// The pinned form of [`init_array_from_fn`]: elements may be pinned initialisers.
///
/// ```
/// use pinit::{InPlaceInit, pin_data, pin_init, pin_init_array_from_fn};
/// #[pin_data]
/// struct Slot { #[pin] id: usize }
/// let slots = Box::pin_init(pin_init_array_from_fn::<_, 4, _, _>(|i| pin_init!(Slot { id: i }))).unwrap();
/// assert_eq!(slots[3].id, 3);
/// ```
pub fn pin_init_array_from_fn<I, const N: usize, T, E>(
    make: impl FnMut(usize) -> I,
) -> impl PinInit<[T; N], E>
where
    I: PinInit<T, E>,
{
    let run = move |slot: *mut [T; N], _| {
        // SAFETY: the slot holds `N` writable elements, pinned together with the array.
        unsafe { init_elements(slot.cast::<T>(), N, make) }
    };
    PinOnly(ClosureInit::new(run, false), core::marker::PhantomData)
}

/// Hides the `Init` impl of a closure initialiser whose elements need pinning.
struct PinOnly<I, T: ?Sized>(I, core::marker::PhantomData<fn(*mut T)>);

// SAFETY: forwards to the wrapped initialiser, which keeps the `PinInit` contract.
unsafe impl<T: ?Sized, E, I: PinInit<T, E>> PinInit<T, E> for PinOnly<I, T> {
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.__pinned_init(slot) }
    }
}
