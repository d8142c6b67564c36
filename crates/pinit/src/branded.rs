//! Safe hand-written initialisers: a lifetime-branded slot that can only be finished by initialising it.
//!
//! The closure given to [`init_by`] / [`pin_init_by`] receives a [`Slot`] whose lifetime `'brand` is unique to
//! that call, and must return the matching [`Done`]. The only ways to get a `Done<'brand>` are to write a
//! value or run an initialiser into that very slot, so no `unsafe` is needed and a forgotten or foreign slot
//! does not type-check.

use core::cell::Cell;
use core::marker::PhantomData;
use core::pin::Pin;

use crate::traits::ClosureInit;
use crate::{Init, PinInit};

/// An invariant lifetime: `'brand` cannot be widened or narrowed to match another slot's.
type Brand<'brand> = PhantomData<fn(&'brand ()) -> &'brand ()>;

/// Whether the slot of one `init_by`/`pin_init_by` call holds a value that no proof owns any more.
///
/// Writing the slot sets it; dropping the proof (which drops the value) clears it. If the closure then fails
/// or panics while it is set, the proof was forgotten and the value is dropped here: an initialiser that
/// wrote its slot never leaves it behind on a failure path (for a pinned value, freeing its memory without
/// dropping it would break the pinning guarantee).
struct Written<T> {
    ptr: *mut T,
    set: Cell<bool>,
}

impl<T> Drop for Written<T> {
    fn drop(&mut self) {
        if self.set.get() {
            // SAFETY: `set` means the slot holds a value and no live proof will drop it.
            unsafe { core::ptr::drop_in_place(self.ptr) };
        }
    }
}

impl<T> Written<T> {
    fn new(ptr: *mut T) -> Self {
        Self {
            ptr,
            set: Cell::new(false),
        }
    }

    /// The slot was initialised and the proof `done` is returned with `Ok`: keep the value.
    fn keep(self) {
        core::mem::forget(self);
    }
}

/// Uninitialised memory for a `T`, to be filled exactly once.
#[derive(Debug)]
pub struct Slot<'brand, T> {
    ptr: *mut T,
    written: &'brand Cell<bool>,
    _brand: Brand<'brand>,
}

/// Proof that the slot with the same brand now holds a `T`. Dropping it (by returning an error after
/// initialising) drops the value again.
#[derive(Debug)]
pub struct Done<'brand, T> {
    ptr: *mut T,
    written: &'brand Cell<bool>,
    _brand: Brand<'brand>,
}

impl<T> Drop for Done<'_, T> {
    fn drop(&mut self) {
        self.written.set(false);
        // SAFETY: a `Done` exists only for an initialised slot; it is forgotten when the value is kept.
        unsafe { core::ptr::drop_in_place(self.ptr) };
    }
}

impl<'brand, T> Slot<'brand, T> {
    /// Moves `value` into the slot.
    pub fn write(self, value: T) -> Done<'brand, T> {
        // SAFETY: the slot is valid for writes and uninitialised (it is consumed here, so written once).
        unsafe { self.ptr.write(value) };
        self.written.set(true);
        Done {
            ptr: self.ptr,
            written: self.written,
            _brand: PhantomData,
        }
    }

    /// Runs an unpinned initialiser into the slot.
    pub fn init<E>(self, init: impl Init<T, E>) -> Result<Done<'brand, T>, E> {
        // SAFETY: the slot is valid for writes and uninitialised; on error it stays uninitialised.
        unsafe { init.__init(self.ptr)? };
        self.written.set(true);
        Ok(Done {
            ptr: self.ptr,
            written: self.written,
            _brand: PhantomData,
        })
    }
}

impl<T> Done<'_, T> {
    /// The initialised value, for adjustments before returning.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: the slot is initialised and exclusively ours while `self` is borrowed.
        unsafe { &mut *self.ptr }
    }
}

/// Uninitialised memory for a `T` that will be pinned, to be filled exactly once.
#[derive(Debug)]
pub struct PinSlot<'brand, T> {
    ptr: *mut T,
    written: &'brand Cell<bool>,
    _brand: Brand<'brand>,
}

/// Proof that the pinned slot with the same brand now holds a `T`.
#[derive(Debug)]
pub struct PinDone<'brand, T> {
    ptr: *mut T,
    written: &'brand Cell<bool>,
    _brand: Brand<'brand>,
}

impl<T> Drop for PinDone<'_, T> {
    fn drop(&mut self) {
        self.written.set(false);
        // SAFETY: a `PinDone` exists only for an initialised slot; dropping in place keeps the pin promise.
        unsafe { core::ptr::drop_in_place(self.ptr) };
    }
}

impl<'brand, T> PinSlot<'brand, T> {
    /// Moves `value` into the slot.
    pub fn write(self, value: T) -> PinDone<'brand, T> {
        // SAFETY: the slot is valid for writes and uninitialised (it is consumed here, so written once).
        unsafe { self.ptr.write(value) };
        self.written.set(true);
        PinDone {
            ptr: self.ptr,
            written: self.written,
            _brand: PhantomData,
        }
    }

    /// Runs a pinned initialiser into the slot.
    pub fn pin_init<E>(self, init: impl PinInit<T, E>) -> Result<PinDone<'brand, T>, E> {
        // SAFETY: the slot is valid for writes and uninitialised; it stays pinned once initialised.
        unsafe { init.__pinned_init(self.ptr)? };
        self.written.set(true);
        Ok(PinDone {
            ptr: self.ptr,
            written: self.written,
            _brand: PhantomData,
        })
    }
}

impl<T> PinDone<'_, T> {
    /// The initialised value, pinned.
    pub fn as_mut(&mut self) -> Pin<&mut T> {
        // SAFETY: the slot is initialised and exclusively ours while `self` is borrowed.
        let value = unsafe { &mut *self.ptr };
        // SAFETY: the slot is pinned memory: the value is never moved out of it.
        unsafe { Pin::new_unchecked(value) }
    }
}

/// An unpinned initialiser written as a safe closure over a branded [`Slot`].
///
/// Branches may pick different initialisers, as long as each ends in the slot:
///
/// ```
/// use pinit::{InPlaceInit, init, init_by, init_zeroed};
/// struct Page { bytes: [u8; 4096] }
/// let page = |fill: Option<u8>| init_by(move |slot| match fill {
///     Some(b) => slot.init(init!(Page { bytes: [b; 4096] })),
///     None => Ok(slot.init(init!(Page { bytes <- init_zeroed() }))?),
/// });
/// assert_eq!(Box::init(page(Some(7))).unwrap().bytes[4095], 7);
/// assert_eq!(Box::init(page(None)).unwrap().bytes[0], 0);
/// ```
pub fn init_by<T, E, F>(f: F) -> impl Init<T, E>
where
    F: for<'brand> FnOnce(Slot<'brand, T>) -> Result<Done<'brand, T>, E>,
{
    let run = move |ptr: *mut T, _| {
        let written = Written::new(ptr);
        let slot = Slot {
            ptr,
            written: &written.set,
            _brand: PhantomData,
        };
        let done = f(slot)?;
        core::mem::forget(done);
        written.keep();
        Ok(())
    };
    ClosureInit::new(run, false)
}

/// A pinned initialiser written as a safe closure over a branded [`PinSlot`].
///
/// ```
/// use core::marker::PhantomPinned;
/// use pinit::{InPlaceInit, pin_data, pin_init, pin_init_by};
/// #[pin_data]
/// struct Waiter { id: u32, #[pin] _pin: PhantomPinned }
/// let w = Box::pin_init(pin_init_by(|slot| {
///     let mut done = slot.pin_init(pin_init!(Waiter { id: 1, _pin: PhantomPinned }))?;
///     done.as_mut().project().id.clone_from(&2);
///     Ok(done)
/// }))
/// .unwrap();
/// assert_eq!(w.id, 2);
/// ```
pub fn pin_init_by<T, E, F>(f: F) -> impl PinInit<T, E>
where
    F: for<'brand> FnOnce(PinSlot<'brand, T>) -> Result<PinDone<'brand, T>, E>,
{
    let run = move |ptr: *mut T, _| {
        let written = Written::new(ptr);
        let slot = PinSlot {
            ptr,
            written: &written.set,
            _brand: PhantomData,
        };
        let done = f(slot)?;
        core::mem::forget(done);
        written.keep();
        Ok(())
    };
    PinOnlyClosure(ClosureInit::new(run, false))
}

/// Hides the `Init` impl of a closure whose value must stay pinned.
struct PinOnlyClosure<I>(I);

// SAFETY: forwards to the wrapped closure initialiser, which keeps the `PinInit` contract.
unsafe impl<T, E, F> PinInit<T, E> for PinOnlyClosure<ClosureInit<F, T, E>>
where
    F: FnOnce(*mut T, bool) -> Result<(), E>,
{
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.__pinned_init(slot) }
    }
}
