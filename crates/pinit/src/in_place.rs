//! Running initialisers into heap memory: `Box`, `Arc`, `Rc` and already allocated uninitialised slots.

use alloc::alloc::Layout;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use core::mem::MaybeUninit;
use core::pin::Pin;

use crate::raw_alloc::RawAlloc;
use crate::{AllocError, Init, PinInit};

/// From this size on, memory is requested zero-filled even if the initialiser does not start from zero:
/// such allocations come from fresh pages, which are zero anyway, and field initialisers that do start from
/// zero (`zeroed()`) can then skip their work.
pub(crate) const ZERO_FILL_MIN: usize = 1 << 20;

/// Whether to ask the allocator for zeroed memory for `bytes` bytes built by `init`.
pub(crate) fn zero_fill<T: ?Sized, E>(init: &impl PinInit<T, E>, bytes: usize) -> bool {
    init.starts_zeroed() || bytes >= ZERO_FILL_MIN
}

/// Runs `init` into `slot`, using the zeroed path when the memory is already zero.
///
/// # Safety
///
/// `slot` is valid for writes and aligned; if `zeroed`, every byte of it is zero.
pub(crate) unsafe fn run_pinned<T: ?Sized, E>(
    init: impl PinInit<T, E>,
    slot: *mut T,
    zeroed: bool,
) -> Result<(), E> {
    if zeroed {
        // SAFETY: forwarded from the caller, including the zero bytes.
        unsafe { init.__pinned_init_on_zeroed(slot) }
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { init.__pinned_init(slot) }
    }
}

/// Runs an unpinned `init` into `slot`, using the zeroed path when the memory is already zero.
///
/// # Safety
///
/// As for [`run_pinned`].
pub(crate) unsafe fn run_unpinned<T: ?Sized, E>(
    init: impl Init<T, E>,
    slot: *mut T,
    zeroed: bool,
) -> Result<(), E> {
    if zeroed {
        // SAFETY: forwarded from the caller, including the zero bytes.
        unsafe { init.__init_on_zeroed(slot) }
    } else {
        // SAFETY: forwarded from the caller.
        unsafe { init.__init(slot) }
    }
}

/// Smart pointers that can allocate their value and initialise it in place, never building it on the stack.
///
/// Allocation failure: `Box` (and `Box<[T]>`, `Vec`) report it as [`AllocError`], converted into the
/// initialiser's error type. `Arc` and `Rc` cannot on stable Rust: their allocation goes through
/// `Arc::new_uninit` / `Rc::new_uninit`, which abort the process on out-of-memory (the fallible
/// `try_new_uninit` is unstable, and the layout of the reference-count header is private, so there is no
/// sound way to allocate it ourselves). Where out-of-memory must be survivable, build into a `Box`.
///
/// ```
/// use std::sync::Arc;
/// use pinit::{InPlaceInit, init_zeroed};
/// let a: Arc<[u8; 4096]> = Arc::init(init_zeroed()).unwrap();
/// assert_eq!(a[4095], 0);
/// ```
pub trait InPlaceInit<T>: Sized {
    /// `Pin<Self>`.
    type PinnedSelf;

    /// Allocates and runs a fallible pinned initialiser; allocation failure becomes `E`.
    fn try_pin_init<E>(init: impl PinInit<T, E>) -> Result<Self::PinnedSelf, E>
    where
        E: From<AllocError>;

    /// Allocates and runs an infallible pinned initialiser.
    fn pin_init(init: impl PinInit<T>) -> Result<Self::PinnedSelf, AllocError> {
        Self::try_pin_init(init.map_err(AllocError::from))
    }

    /// Allocates and runs a fallible unpinned initialiser; allocation failure becomes `E`.
    fn try_init<E>(init: impl Init<T, E>) -> Result<Self, E>
    where
        E: From<AllocError>;

    /// Allocates and runs an infallible unpinned initialiser.
    fn init(init: impl Init<T>) -> Result<Self, AllocError> {
        Self::try_init(init.map_err(AllocError::from))
    }
}

/// Allocates a `Box<T>` and runs `run` on its memory; frees it on error or panic.
fn box_with<T, E>(
    zeroed: bool,
    run: impl FnOnce(*mut T, bool) -> Result<(), E>,
) -> Result<Box<T>, E>
where
    E: From<AllocError>,
{
    let memory = RawAlloc::new(Layout::new::<T>(), zeroed)?;
    run(memory.as_ptr().cast::<T>(), zeroed)?;
    // SAFETY: the memory was allocated by the global allocator with `T`'s layout and now holds a valid `T`.
    Ok(unsafe { Box::from_raw(memory.into_raw().cast::<T>()) })
}

impl<T> InPlaceInit<T> for Box<T> {
    type PinnedSelf = Pin<Box<T>>;

    fn try_pin_init<E>(init: impl PinInit<T, E>) -> Result<Pin<Box<T>>, E>
    where
        E: From<AllocError>,
    {
        let zeroed = zero_fill(&init, size_of::<T>());
        // SAFETY: `slot` is fresh memory for one `T` (zero-filled when `zeroed`); the `Box` is pinned right away.
        let boxed = box_with(zeroed, |slot, zeroed| unsafe {
            run_pinned(init, slot, zeroed)
        })?;
        Ok(Box::into_pin(boxed))
    }

    fn try_init<E>(init: impl Init<T, E>) -> Result<Box<T>, E>
    where
        E: From<AllocError>,
    {
        let zeroed = zero_fill(&init, size_of::<T>());
        // SAFETY: `slot` is fresh memory for one `T`; an `Init` value may move later.
        box_with(zeroed, |slot, zeroed| unsafe {
            run_unpinned(init, slot, zeroed)
        })
    }
}

/// `Arc` and `Rc` share one implementation: allocate uninitialised (or zeroed), initialise through the
/// unique `&mut MaybeUninit<T>` that `get_mut` gives for the fresh pointer, and let the pointer free the
/// memory (without dropping a `T`) on error or panic.
macro_rules! shared_in_place {
    ($ptr:ident, $fresh:ident) => {
        /// Allocates with a count of one and runs `run` on the memory.
        fn $fresh<T, E: From<AllocError>>(
            zeroed: bool,
            run: impl FnOnce(*mut T, bool) -> Result<(), E>,
        ) -> Result<$ptr<T>, E> {
            let mut fresh = if zeroed {
                $ptr::<T>::new_zeroed()
            } else {
                $ptr::<T>::new_uninit()
            };
            // A fresh pointer is the only one, so `get_mut` always succeeds.
            let slot = $ptr::get_mut(&mut fresh).ok_or(AllocError)?.as_mut_ptr();
            // On error or unwind `fresh` is dropped as a `MaybeUninit<T>`: memory freed, nothing dropped
            // (the initialiser has dropped whatever it built).
            run(slot, zeroed)?;
            // SAFETY: the initialiser succeeded, so the value is initialised.
            Ok(unsafe { fresh.assume_init() })
        }

        impl<T> InPlaceInit<T> for $ptr<T> {
            type PinnedSelf = Pin<$ptr<T>>;

            fn try_pin_init<E>(init: impl PinInit<T, E>) -> Result<Pin<$ptr<T>>, E>
            where
                E: From<AllocError>,
            {
                let zeroed = zero_fill(&init, size_of::<T>());
                // SAFETY: `slot` is the only pointer to fresh memory for one `T` (zero-filled when `zeroed`);
                // the pointer is pinned right away and never gives out `&mut T`.
                let shared = $fresh(zeroed, |slot, zeroed| unsafe {
                    run_pinned(init, slot, zeroed)
                })?;
                // SAFETY: the value was just placed in its final allocation and is never moved out of it.
                Ok(unsafe { Pin::new_unchecked(shared) })
            }

            fn try_init<E>(init: impl Init<T, E>) -> Result<$ptr<T>, E>
            where
                E: From<AllocError>,
            {
                let zeroed = zero_fill(&init, size_of::<T>());
                // SAFETY: `slot` is the only pointer to fresh memory for one `T`.
                $fresh(zeroed, |slot, zeroed| unsafe {
                    run_unpinned(init, slot, zeroed)
                })
            }
        }
    };
}

shared_in_place!(Arc, fresh_arc);
shared_in_place!(Rc, fresh_rc);

/// Already allocated, uninitialised memory that an initialiser can fill.
///
/// ```
/// use pinit::{InPlaceWrite, init};
/// struct Point { x: i32, y: i32 }
/// let p = Box::<Point>::new_uninit().write_init(init!(Point { x: 1, y: 2 })).unwrap();
/// assert_eq!(p.x + p.y, 3);
///
/// // Memory that lives forever (a leaked box here, a `static` cell in a kernel) can be pinned too.
/// let forever: &'static mut core::mem::MaybeUninit<Point> = Box::leak(Box::new_uninit());
/// let pinned = forever.write_pin_init(init!(Point { x: 3, y: 4 })).unwrap();
/// assert_eq!(pinned.y, 4);
/// ```
pub trait InPlaceWrite<T> {
    /// The pointer type once the value is initialised.
    type Initialized;

    /// Runs an unpinned initialiser into the memory.
    fn write_init<E>(self, init: impl Init<T, E>) -> Result<Self::Initialized, E>;

    /// Runs a pinned initialiser into the memory.
    fn write_pin_init<E>(self, init: impl PinInit<T, E>) -> Result<Pin<Self::Initialized>, E>;
}

impl<T> InPlaceWrite<T> for Box<MaybeUninit<T>> {
    type Initialized = Box<T>;

    fn write_init<E>(mut self, init: impl Init<T, E>) -> Result<Box<T>, E> {
        // SAFETY: the box owns memory for one `T`; on error it is left uninitialised and freed as such.
        unsafe { init.__init(self.as_mut_ptr())? };
        // SAFETY: the initialiser succeeded, so the value is initialised.
        Ok(unsafe { self.assume_init() })
    }

    fn write_pin_init<E>(mut self, init: impl PinInit<T, E>) -> Result<Pin<Box<T>>, E> {
        // SAFETY: as above; the box is pinned right away.
        unsafe { init.__pinned_init(self.as_mut_ptr())? };
        // SAFETY: the initialiser succeeded, so the value is initialised.
        Ok(Box::into_pin(unsafe { self.assume_init() }))
    }
}

impl<T> InPlaceWrite<T> for &'static mut MaybeUninit<T> {
    type Initialized = &'static mut T;

    fn write_init<E>(self, init: impl Init<T, E>) -> Result<&'static mut T, E> {
        // SAFETY: the reference gives exclusive access to memory for one `T`.
        unsafe { init.__init(self.as_mut_ptr())? };
        // SAFETY: the initialiser succeeded, so the value is initialised.
        Ok(unsafe { self.assume_init_mut() })
    }

    fn write_pin_init<E>(self, init: impl PinInit<T, E>) -> Result<Pin<&'static mut T>, E> {
        // SAFETY: the reference gives exclusive access to memory for one `T`.
        unsafe { init.__pinned_init(self.as_mut_ptr())? };
        // SAFETY: the initialiser succeeded, so the value is initialised.
        let value = unsafe { self.assume_init_mut() };
        // Memory borrowed for `'static` is never reused, so the value never moves.
        Ok(Pin::static_mut(value))
    }
}
