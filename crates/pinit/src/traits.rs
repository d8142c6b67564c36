//! The two initialiser traits and the closure-backed initialisers everything else is built from.

use core::convert::Infallible;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::pin::Pin;

use crate::combinators::{ChainInit, ChainPinInit, MapErr};

/// An initialiser that builds a `T` in place and keeps it pinned there.
///
/// Use [`pin_init!`](crate::pin_init), [`pin_init_from_closure`] or the safe [`pin_init_by`](crate::pin_init_by)
/// to make one, and `InPlaceInit` (with the `alloc` feature) or [`stack_pin_init!`](crate::stack_pin_init) to run it.
///
/// # Safety
///
/// Implementers must make sure that when [`PinInit::__pinned_init`] returns `Ok(())` the slot holds a valid `T`,
/// and that when it returns `Err` (or unwinds) the slot holds nothing that needs dropping: everything it
/// initialised part-way has been dropped again. The slot must not move afterwards when `Ok` was returned.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pinned initialiser of `{T}` with error type `{E}`",
    label = "expected a `PinInit<{T}, {E}>`",
    note = "use `field: value` to move a value in, `field <- initialiser` to run an initialiser in place",
    note = "a `field <- initialiser` converts the initialiser's error into the enclosing error type with `From`"
)]
#[must_use = "an initialiser does nothing until it is run (for example by `Box::pin_init`)"]
pub unsafe trait PinInit<T: ?Sized, E = Infallible>: Sized {
    /// Initialises `slot`.
    ///
    /// # Safety
    ///
    /// `slot` is valid for writes, properly aligned and holds no value that needs dropping. On `Ok` the caller
    /// treats `*slot` as a pinned, initialised `T`; on `Err` as uninitialised memory.
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E>;

    /// Whether this initialiser starts by filling the whole slot with zero bytes.
    ///
    /// Allocators use it to hand out already zeroed memory (`alloc_zeroed`) and then call
    /// [`PinInit::__pinned_init_on_zeroed`], which skips the zeroing.
    fn starts_zeroed(&self) -> bool {
        false
    }

    /// Like [`PinInit::__pinned_init`], for a slot the caller already filled with zero bytes.
    ///
    /// # Safety
    ///
    /// As for [`PinInit::__pinned_init`]; additionally every byte of `*slot` is zero.
    unsafe fn __pinned_init_on_zeroed(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the caller upholds `__pinned_init`'s contract, which this one extends.
        unsafe { self.__pinned_init(slot) }
    }

    /// Runs `f` on the pinned value once it is initialised; if `f` fails the value is dropped again.
    ///
    /// ```
    /// use pinit::{InPlaceInit, PinInit, pin_data, pin_init};
    /// #[pin_data]
    /// struct Counter { #[pin] n: u32 }
    /// let b: core::pin::Pin<Box<Counter>> = Box::pin_init(pin_init!(Counter { n: 5 }).pin_chain(|c| {
    ///     *c.project().n += 1;
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// assert_eq!(b.n, 6);
    /// ```
    fn pin_chain<F>(self, f: F) -> ChainPinInit<Self, F, T, E>
    where
        F: FnOnce(Pin<&mut T>) -> Result<(), E>,
    {
        ChainPinInit::new(self, f)
    }

    /// Converts the error of this initialiser.
    ///
    /// ```
    /// use std::io;
    /// use pinit::{InPlaceInit, PinInit, pin_init_by};
    /// let fails = pin_init_by::<u32, u8, _>(|_slot| Err(7));
    /// let r: Result<core::pin::Pin<Box<u32>>, io::Error> = Box::try_pin_init(fails.map_err(|code| io::Error::other(format!("code {code}"))));
    /// assert_eq!(r.unwrap_err().to_string(), "code 7");
    /// ```
    fn map_err<E2, F>(self, f: F) -> MapErr<Self, F, T, E>
    where
        F: FnOnce(E) -> E2,
    {
        MapErr::new(self, f)
    }
}

/// An initialiser that builds a `T` in place without requiring it to stay pinned.
///
/// Every `Init` is also a [`PinInit`], and so is every plain value (`T` is an `Init<T>`, and `Result<T, E>` an
/// `Init<T, E>`): wherever an initialiser is expected, a value can be passed.
///
/// # Safety
///
/// As for [`PinInit`], and the initialised value may be moved afterwards.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an unpinned initialiser of `{T}` with error type `{E}`",
    label = "expected an `Init<{T}, {E}>`",
    note = "a pinned initialiser (`PinInit`) only fits a `#[pin]` field of a `#[pin_data]` type built with `pin_init!`",
    note = "to move a plain value in, write `field: value` or use `pinit::value(..)`",
    note = "a `field <- initialiser` converts the initialiser's error into the enclosing error type with `From`"
)]
#[must_use = "an initialiser does nothing until it is run (for example by `Box::init`)"]
pub unsafe trait Init<T: ?Sized, E = Infallible>: PinInit<T, E> {
    /// Initialises `slot`.
    ///
    /// # Safety
    ///
    /// As for [`PinInit::__pinned_init`], except that the value need not stay pinned.
    unsafe fn __init(self, slot: *mut T) -> Result<(), E>;

    /// Like [`Init::__init`], for a slot the caller already filled with zero bytes.
    ///
    /// # Safety
    ///
    /// As for [`Init::__init`]; additionally every byte of `*slot` is zero.
    unsafe fn __init_on_zeroed(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the caller upholds `__init`'s contract, which this one extends.
        unsafe { self.__init(slot) }
    }

    /// Runs `f` on the value once it is initialised; if `f` fails the value is dropped again.
    ///
    /// ```
    /// use pinit::{InPlaceInit, Init, init};
    /// struct List { items: Vec<u8> }
    /// let b: Box<List> = Box::init(init!(List { items: vec![1] }).chain(|l| {
    ///     l.items.push(2);
    ///     Ok(())
    /// }))
    /// .unwrap();
    /// assert_eq!(b.items, [1, 2]);
    /// ```
    fn chain<F>(self, f: F) -> ChainInit<Self, F, T, E>
    where
        F: FnOnce(&mut T) -> Result<(), E>,
    {
        ChainInit::new(self, f)
    }
}

/// Carries an initialiser's target and error types without owning either.
pub(crate) type InitTypes<T, E> = PhantomData<fn(*mut T) -> Result<(), E>>;

/// The initialiser behind [`pin_init_from_closure`], [`init_from_closure`] and the macros.
pub(crate) struct ClosureInit<F, T: ?Sized, E> {
    f: F,
    zero_first: bool,
    _types: InitTypes<T, E>,
}

impl<F, T: ?Sized, E> ClosureInit<F, T, E>
where
    F: FnOnce(*mut T, bool) -> Result<(), E>,
{
    /// `f(slot, already_zeroed)` initialises `slot`; `zero_first` says it begins by zeroing the slot.
    pub(crate) const fn new(f: F, zero_first: bool) -> Self {
        Self {
            f,
            zero_first,
            _types: PhantomData,
        }
    }
}

// SAFETY: whoever built the `ClosureInit` (an `unsafe` constructor) promised the closure keeps this contract.
unsafe impl<F, T: ?Sized, E> PinInit<T, E> for ClosureInit<F, T, E>
where
    F: FnOnce(*mut T, bool) -> Result<(), E>,
{
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E> {
        (self.f)(slot, false)
    }

    fn starts_zeroed(&self) -> bool {
        self.zero_first
    }

    unsafe fn __pinned_init_on_zeroed(self, slot: *mut T) -> Result<(), E> {
        (self.f)(slot, true)
    }
}

// SAFETY: as above; the unsafe constructors of unpinned closure initialisers promise no pinning is needed.
unsafe impl<F, T: ?Sized, E> Init<T, E> for ClosureInit<F, T, E>
where
    F: FnOnce(*mut T, bool) -> Result<(), E>,
{
    unsafe fn __init(self, slot: *mut T) -> Result<(), E> {
        (self.f)(slot, false)
    }

    unsafe fn __init_on_zeroed(self, slot: *mut T) -> Result<(), E> {
        (self.f)(slot, true)
    }
}

/// Makes a pinned initialiser from a closure that writes the slot.
///
/// # Safety
///
/// `f` must keep the [`PinInit`] contract: on `Ok` the slot holds a valid `T`, on `Err` nothing that needs
/// dropping.
pub const unsafe fn pin_init_from_closure<T: ?Sized, E>(
    f: impl FnOnce(*mut T) -> Result<(), E>,
) -> impl PinInit<T, E> {
    ClosureInit::new(move |slot, _| f(slot), false)
}

/// Makes an unpinned initialiser from a closure that writes the slot.
///
/// # Safety
///
/// `f` must keep the [`Init`] contract: on `Ok` the slot holds a valid `T` that may be moved, on `Err`
/// nothing that needs dropping.
pub const unsafe fn init_from_closure<T: ?Sized, E>(
    f: impl FnOnce(*mut T) -> Result<(), E>,
) -> impl Init<T, E> {
    ClosureInit::new(move |slot, _| f(slot), false)
}

/// An initialiser that moves `value` into the slot (where an initialiser is needed but a value is at hand).
///
/// ```
/// use pinit::{InPlaceInit, init_array_from_fn, value};
/// let ids: Box<[u32; 3]> = Box::init(init_array_from_fn(|i| value(i as u32 * 10))).unwrap();
/// assert_eq!(*ids, [0, 10, 20]);
/// ```
pub fn value<T, E>(value: T) -> impl Init<T, E> {
    let write = move |slot: *mut T, _| {
        // SAFETY: the slot is valid for writes (initialiser contract).
        unsafe { slot.write(value) };
        Ok(())
    };
    ClosureInit::new(write, false)
}

// SAFETY: the value is moved into the slot, which is then a valid `T`; nothing can fail.
#[diagnostic::do_not_recommend]
unsafe impl<T> PinInit<T> for T {
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), Infallible> {
        // SAFETY: the slot is valid for writes (the caller's contract).
        unsafe { slot.write(self) };
        Ok(())
    }
}

// SAFETY: as above; a moved-in value needs no pinning.
#[diagnostic::do_not_recommend]
unsafe impl<T> Init<T> for T {
    unsafe fn __init(self, slot: *mut T) -> Result<(), Infallible> {
        // SAFETY: the slot is valid for writes (the caller's contract).
        unsafe { slot.write(self) };
        Ok(())
    }
}

// SAFETY: on `Ok` the value is moved into the slot; on `Err` the slot is not touched.
#[diagnostic::do_not_recommend]
unsafe impl<T, E> PinInit<T, E> for Result<T, E> {
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the slot is valid for writes (the caller's contract).
        unsafe { slot.write(self?) };
        Ok(())
    }
}

// SAFETY: as above; a moved-in value needs no pinning.
#[diagnostic::do_not_recommend]
unsafe impl<T, E> Init<T, E> for Result<T, E> {
    unsafe fn __init(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the slot is valid for writes (the caller's contract).
        unsafe { slot.write(self?) };
        Ok(())
    }
}

/// An initialiser that leaves a `MaybeUninit<T>` uninitialised (any bytes are a valid `MaybeUninit`).
///
/// ```
/// use core::mem::MaybeUninit;
/// use pinit::{InPlaceInit, uninit};
/// let scratch: Box<MaybeUninit<[u8; 4096]>> = Box::init(uninit::<_, core::convert::Infallible>()).unwrap();
/// # let _ = scratch;
/// ```
pub fn uninit<T, E>() -> impl Init<MaybeUninit<T>, E> {
    ClosureInit::new(|_: *mut MaybeUninit<T>, _| Ok(()), false)
}

/// Runs a pinned initialiser of `T` on a slot of type `U`.
///
/// # Safety
///
/// A valid, pinned `T` must also be a valid, pinned `U` with the same layout (as for `UnsafeCell<T>` and
/// `T`), and `U`'s drop must be correct for it.
pub const unsafe fn cast_pin_init<T, U, E>(init: impl PinInit<T, E>) -> impl PinInit<U, E> {
    let run = move |slot: *mut U| {
        // SAFETY: the caller promises that `U`'s memory is a valid place for a `T`.
        unsafe { init.__pinned_init(slot.cast::<T>()) }
    };
    // SAFETY: the `T` initialised in place is a valid `U` (the caller's contract).
    unsafe { pin_init_from_closure(run) }
}

/// Runs an unpinned initialiser of `T` on a slot of type `U`.
///
/// # Safety
///
/// As for [`cast_pin_init`], without the pinning.
pub const unsafe fn cast_init<T, U, E>(init: impl Init<T, E>) -> impl Init<U, E> {
    let run = move |slot: *mut U| {
        // SAFETY: the caller promises that `U`'s memory is a valid place for a `T`.
        unsafe { init.__init(slot.cast::<T>()) }
    };
    // SAFETY: the `T` initialised in place is a valid `U` (the caller's contract).
    unsafe { init_from_closure(run) }
}

/// Wrappers with the layout of the `T` they hold, which can be built in place from an initialiser of `T`.
///
/// ```
/// use core::cell::UnsafeCell;
/// use pinit::{InPlaceInit, Wrapper};
/// let cell = Box::pin_init(UnsafeCell::pin_init(7u32)).unwrap();
/// // SAFETY: nothing else accesses the cell.
/// assert_eq!(unsafe { *cell.get() }, 7);
/// ```
pub trait Wrapper<T> {
    /// Wraps a pinned initialiser of the inner value.
    fn pin_init<E>(value_init: impl PinInit<T, E>) -> impl PinInit<Self, E>;
}

impl<T> Wrapper<T> for core::cell::UnsafeCell<T> {
    fn pin_init<E>(value_init: impl PinInit<T, E>) -> impl PinInit<Self, E> {
        // SAFETY: `UnsafeCell<T>` is `repr(transparent)` over `T`.
        unsafe { cast_pin_init(value_init) }
    }
}

/// Only for `T: Unpin`: a `MaybeUninit` never drops what it holds, so a pinned `T` inside one could have its
/// memory freed without being dropped, which pinning forbids.
impl<T: Unpin> Wrapper<T> for MaybeUninit<T> {
    fn pin_init<E>(value_init: impl PinInit<T, E>) -> impl PinInit<Self, E> {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`, and an initialised `T` is a valid `MaybeUninit<T>`.
        // It is never dropped, which `T: Unpin` allows: nothing may rely on an `Unpin` value's address.
        unsafe { cast_pin_init(value_init) }
    }
}

impl<T> Wrapper<T> for core::cell::Cell<T> {
    fn pin_init<E>(value_init: impl PinInit<T, E>) -> impl PinInit<Self, E> {
        // SAFETY: `Cell<T>` is `repr(transparent)` over `UnsafeCell<T>`, itself over `T`.
        unsafe { cast_pin_init(value_init) }
    }
}
