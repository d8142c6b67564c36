//! Initialisers built from other initialisers: `chain`, `pin_chain`, `map_err`, `init_scope`.

use core::marker::PhantomData;
use core::pin::Pin;

use crate::traits::InitTypes;
use crate::{Init, PinInit};

/// Drops the value at `slot` unless disarmed: undoes a finished initialiser when a later step fails or panics.
struct DropOnUnwind<T: ?Sized>(*mut T);

impl<T: ?Sized> Drop for DropOnUnwind<T> {
    fn drop(&mut self) {
        // SAFETY: armed only while `self.0` holds an initialised value owned by the initialiser in progress.
        unsafe { core::ptr::drop_in_place(self.0) };
    }
}

/// The initialiser returned by [`PinInit::pin_chain`].
#[derive(Debug)]
pub struct ChainPinInit<I, F, T: ?Sized, E> {
    init: I,
    then: F,
    _types: InitTypes<T, E>,
}

impl<I, F, T: ?Sized, E> ChainPinInit<I, F, T, E> {
    pub(crate) fn new(init: I, then: F) -> Self {
        Self {
            init,
            then,
            _types: PhantomData,
        }
    }
}

// SAFETY: `then` runs on a fully initialised value; if it fails the value is dropped before returning `Err`.
#[diagnostic::do_not_recommend]
unsafe impl<I, F, T: ?Sized, E> PinInit<T, E> for ChainPinInit<I, F, T, E>
where
    I: PinInit<T, E>,
    F: FnOnce(Pin<&mut T>) -> Result<(), E>,
{
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.init.__pinned_init(slot)? };
        // SAFETY: the value at `slot` was just initialised and stays pinned (the caller's contract).
        unsafe { finish_pinned(slot, self.then) }
    }

    fn starts_zeroed(&self) -> bool {
        self.init.starts_zeroed()
    }

    unsafe fn __pinned_init_on_zeroed(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the caller's contract (including the zeroed slot) is forwarded unchanged.
        unsafe { self.init.__pinned_init_on_zeroed(slot)? };
        // SAFETY: as in `__pinned_init`.
        unsafe { finish_pinned(slot, self.then) }
    }
}

/// Runs `then` on the pinned value at `slot`, dropping it if `then` fails or panics.
///
/// # Safety
///
/// `slot` holds an initialised `T` that never moves again.
unsafe fn finish_pinned<T: ?Sized, E>(
    slot: *mut T,
    then: impl FnOnce(Pin<&mut T>) -> Result<(), E>,
) -> Result<(), E> {
    let undo = DropOnUnwind(slot);
    // SAFETY: `slot` is initialised (the caller's contract); the borrow ends before `undo` is used.
    let value = unsafe { &mut *slot };
    // SAFETY: the caller guarantees the value stays pinned.
    let value = unsafe { Pin::new_unchecked(value) };
    let result = then(value);
    if result.is_ok() {
        core::mem::forget(undo);
    }
    result
}

/// The initialiser returned by [`Init::chain`].
#[derive(Debug)]
pub struct ChainInit<I, F, T: ?Sized, E> {
    init: I,
    then: F,
    _types: InitTypes<T, E>,
}

impl<I, F, T: ?Sized, E> ChainInit<I, F, T, E> {
    pub(crate) fn new(init: I, then: F) -> Self {
        Self {
            init,
            then,
            _types: PhantomData,
        }
    }
}

// SAFETY: `then` runs on a fully initialised value; if it fails the value is dropped before returning `Err`.
#[diagnostic::do_not_recommend]
unsafe impl<I, F, T: ?Sized, E> PinInit<T, E> for ChainInit<I, F, T, E>
where
    I: Init<T, E>,
    F: FnOnce(&mut T) -> Result<(), E>,
{
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: an unpinned initialisation is also a valid pinned one.
        unsafe { self.__init(slot) }
    }

    fn starts_zeroed(&self) -> bool {
        self.init.starts_zeroed()
    }

    unsafe fn __pinned_init_on_zeroed(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the caller's contract (including the zeroed slot) is forwarded unchanged.
        unsafe { self.init.__pinned_init_on_zeroed(slot)? };
        // SAFETY: the value at `slot` was just initialised.
        unsafe { finish_unpinned(slot, self.then) }
    }
}

// SAFETY: as for the `PinInit` impl; nothing here relies on pinning.
#[diagnostic::do_not_recommend]
unsafe impl<I, F, T: ?Sized, E> Init<T, E> for ChainInit<I, F, T, E>
where
    I: Init<T, E>,
    F: FnOnce(&mut T) -> Result<(), E>,
{
    unsafe fn __init(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.init.__init(slot)? };
        // SAFETY: the value at `slot` was just initialised.
        unsafe { finish_unpinned(slot, self.then) }
    }

    unsafe fn __init_on_zeroed(self, slot: *mut T) -> Result<(), E> {
        // SAFETY: the caller's contract (including the zeroed slot) is forwarded unchanged.
        unsafe { self.init.__init_on_zeroed(slot)? };
        // SAFETY: the value at `slot` was just initialised.
        unsafe { finish_unpinned(slot, self.then) }
    }
}

/// Runs `then` on the value at `slot`, dropping it if `then` fails or panics.
///
/// # Safety
///
/// `slot` holds an initialised `T` owned by the caller.
unsafe fn finish_unpinned<T: ?Sized, E>(
    slot: *mut T,
    then: impl FnOnce(&mut T) -> Result<(), E>,
) -> Result<(), E> {
    let undo = DropOnUnwind(slot);
    // SAFETY: `slot` is initialised (the caller's contract); the borrow ends before `undo` is used.
    let result = then(unsafe { &mut *slot });
    if result.is_ok() {
        core::mem::forget(undo);
    }
    result
}

/// The initialiser returned by [`PinInit::map_err`].
#[derive(Debug)]
pub struct MapErr<I, F, T: ?Sized, E> {
    init: I,
    map: F,
    _types: PhantomData<fn(*mut T, E)>,
}

impl<I, F, T: ?Sized, E> MapErr<I, F, T, E> {
    pub(crate) fn new(init: I, map: F) -> Self {
        Self {
            init,
            map,
            _types: PhantomData,
        }
    }
}

// SAFETY: only the error value is changed; the slot's state is the inner initialiser's.
#[diagnostic::do_not_recommend]
unsafe impl<I, F, T: ?Sized, E, E2> PinInit<T, E2> for MapErr<I, F, T, E>
where
    I: PinInit<T, E>,
    F: FnOnce(E) -> E2,
{
    unsafe fn __pinned_init(self, slot: *mut T) -> Result<(), E2> {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.init.__pinned_init(slot) }.map_err(self.map)
    }

    fn starts_zeroed(&self) -> bool {
        self.init.starts_zeroed()
    }

    unsafe fn __pinned_init_on_zeroed(self, slot: *mut T) -> Result<(), E2> {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.init.__pinned_init_on_zeroed(slot) }.map_err(self.map)
    }
}

// SAFETY: as above.
#[diagnostic::do_not_recommend]
unsafe impl<I, F, T: ?Sized, E, E2> Init<T, E2> for MapErr<I, F, T, E>
where
    I: Init<T, E>,
    F: FnOnce(E) -> E2,
{
    unsafe fn __init(self, slot: *mut T) -> Result<(), E2> {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.init.__init(slot) }.map_err(self.map)
    }

    unsafe fn __init_on_zeroed(self, slot: *mut T) -> Result<(), E2> {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { self.init.__init_on_zeroed(slot) }.map_err(self.map)
    }
}

/// Runs `make` when the initialiser runs, then initialises with the initialiser it returns.
///
/// Lets a constructor do fallible work (open a file, look a value up) before choosing an initialiser, without
/// building anything on the stack.
///
/// ```
/// use std::io;
/// use pinit::{InPlaceInit, init, init_scope};
/// struct Config { port: u16 }
/// fn parse(s: &str) -> impl pinit::Init<Config, io::Error> + '_ {
///     init_scope(move || {
///         let port: u16 = s.parse().map_err(io::Error::other)?;
///         Ok(init!(Config { port }? io::Error))
///     })
/// }
/// assert!(Box::try_init(parse("80")).is_ok_and(|c| c.port == 80));
/// assert!(Box::try_init(parse("x")).is_err());
/// ```
pub fn init_scope<T, E, I, F>(make: F) -> impl Init<T, E>
where
    F: FnOnce() -> Result<I, E>,
    I: Init<T, E>,
{
    let run = move |slot: *mut T| {
        let init = make()?;
        // SAFETY: our caller's contract on `slot` is forwarded unchanged.
        unsafe { init.__init(slot) }
    };
    // SAFETY: the slot is handed to `I::__init` unchanged, which keeps the `Init` contract.
    unsafe { crate::init_from_closure(run) }
}

/// The pinned form of [`init_scope`].
///
/// ```
/// use core::marker::PhantomPinned;
/// use pinit::{InPlaceInit, pin_data, pin_init, pin_init_scope};
/// #[pin_data]
/// struct Timer { period_ms: u32, #[pin] _pin: PhantomPinned }
/// let timer = |hz: u32| pin_init_scope(move || {
///     let period_ms = 1000u32.checked_div(hz).ok_or(pinit::AllocError)?;
///     Ok(pin_init!(Timer { period_ms, _pin: PhantomPinned }? pinit::AllocError))
/// });
/// assert_eq!(Box::try_pin_init(timer(4)).unwrap().period_ms, 250);
/// assert!(Box::try_pin_init(timer(0)).is_err());
/// ```
pub fn pin_init_scope<T, E, I, F>(make: F) -> impl PinInit<T, E>
where
    F: FnOnce() -> Result<I, E>,
    I: PinInit<T, E>,
{
    let run = move |slot: *mut T| {
        let init = make()?;
        // SAFETY: our caller's contract on `slot` is forwarded unchanged.
        unsafe { init.__pinned_init(slot) }
    };
    // SAFETY: the slot is handed to `I::__pinned_init` unchanged, which keeps the `PinInit` contract.
    unsafe { crate::pin_init_from_closure(run) }
}
