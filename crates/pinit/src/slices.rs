//! Runtime-length slices built in place: `Box<[T]>`, `Arc<[T]>`, `Rc<[T]>`.

use alloc::alloc::Layout;
use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::sync::Arc;
use core::pin::Pin;

use crate::arrays::init_elements;
use crate::raw_alloc::RawAlloc;
use crate::{AllocError, Init, PinInit};

/// Slice pointers that can be allocated for `len` elements and filled by one initialiser per element.
///
/// ```
/// use std::sync::Arc;
/// use pinit::{AllocError, InPlaceInitSlice, value};
/// let n = 5;
/// let squares: Box<[u64]> = Box::init_slice(n, |i| value((i * i) as u64)).unwrap();
/// assert_eq!(&*squares, [0, 1, 4, 9, 16]);
/// let shared: Arc<[String]> = Arc::init_slice(2, |i| value(i.to_string())).unwrap();
/// assert_eq!(shared[1], "1");
/// assert_eq!(Box::<[u64]>::init_slice(usize::MAX, |i| value(i as u64)).err(), Some(AllocError));
/// ```
pub trait InPlaceInitSlice<T>: Sized {
    /// Allocates `len` elements and initialises element `i` with `make(i)`.
    fn try_init_slice<E, I>(len: usize, make: impl FnMut(usize) -> I) -> Result<Self, E>
    where
        I: Init<T, E>,
        E: From<AllocError>;

    /// Like [`InPlaceInitSlice::try_init_slice`], with pinned element initialisers; the slice stays pinned.
    fn try_pin_init_slice<E, I>(len: usize, make: impl FnMut(usize) -> I) -> Result<Pin<Self>, E>
    where
        I: PinInit<T, E>,
        E: From<AllocError>;

    /// Infallible element initialisers.
    fn init_slice<I>(len: usize, make: impl FnMut(usize) -> I) -> Result<Self, AllocError>
    where
        I: Init<T, AllocError>,
    {
        Self::try_init_slice(len, make)
    }
}

/// The layout of `len` elements, or `AllocError` when it overflows `isize::MAX` bytes.
fn array_layout<T>(len: usize) -> Result<Layout, AllocError> {
    Layout::array::<T>(len).map_err(|_| AllocError)
}

fn box_slice<T, E, I: PinInit<T, E>>(
    len: usize,
    make: impl FnMut(usize) -> I,
) -> Result<Box<[T]>, E>
where
    E: From<AllocError>,
{
    let memory = RawAlloc::new(array_layout::<T>(len)?, false)?;
    let first = memory.as_ptr().cast::<T>();
    // SAFETY: the memory holds `len` writable, uninitialised elements.
    unsafe { init_elements(first, len, make)? };
    let slice = core::ptr::slice_from_raw_parts_mut(memory.into_raw().cast::<T>(), len);
    // SAFETY: allocated by the global allocator with `[T]`'s layout for `len`; every element is initialised.
    Ok(unsafe { Box::from_raw(slice) })
}

impl<T> InPlaceInitSlice<T> for Box<[T]> {
    fn try_init_slice<E, I>(len: usize, make: impl FnMut(usize) -> I) -> Result<Self, E>
    where
        I: Init<T, E>,
        E: From<AllocError>,
    {
        box_slice(len, make)
    }

    fn try_pin_init_slice<E, I>(len: usize, make: impl FnMut(usize) -> I) -> Result<Pin<Self>, E>
    where
        I: PinInit<T, E>,
        E: From<AllocError>,
    {
        Ok(Box::into_pin(box_slice(len, make)?))
    }
}

macro_rules! shared_slice {
    ($ptr:ident, $build:ident) => {
        /// Allocates `len` uninitialised elements with a count of one and fills them through the unique
        /// `&mut [MaybeUninit<T>]` of the fresh pointer; on error or unwind the pointer frees the memory
        /// (`init_elements` has dropped the elements it built).
        fn $build<T, E, I: PinInit<T, E>>(
            len: usize,
            make: impl FnMut(usize) -> I,
        ) -> Result<$ptr<[T]>, E>
        where
            E: From<AllocError>,
        {
            array_layout::<T>(len)?;
            let mut fresh = $ptr::<[T]>::new_uninit_slice(len);
            // A fresh pointer is the only one, so `get_mut` always succeeds.
            let first = $ptr::get_mut(&mut fresh)
                .ok_or(AllocError)?
                .as_mut_ptr()
                .cast::<T>();
            // SAFETY: the allocation holds `len` writable, uninitialised elements.
            unsafe { init_elements(first, len, make)? };
            // SAFETY: every element is now initialised.
            Ok(unsafe { fresh.assume_init() })
        }

        impl<T> InPlaceInitSlice<T> for $ptr<[T]> {
            fn try_init_slice<E, I>(len: usize, make: impl FnMut(usize) -> I) -> Result<Self, E>
            where
                I: Init<T, E>,
                E: From<AllocError>,
            {
                $build(len, make)
            }

            fn try_pin_init_slice<E, I>(
                len: usize,
                make: impl FnMut(usize) -> I,
            ) -> Result<Pin<Self>, E>
            where
                I: PinInit<T, E>,
                E: From<AllocError>,
            {
                let shared = $build(len, make)?;
                // SAFETY: the elements were built in their final place and are never moved out.
                Ok(unsafe { Pin::new_unchecked(shared) })
            }
        }
    };
}

shared_slice!(Arc, build_arc_slice);
shared_slice!(Rc, build_rc_slice);
