//! `UniqueArc` / `UniqueRc`: a freshly built `Arc`/`Rc` that is still the only reference, so it is mutable.

use alloc::rc::Rc;
use alloc::sync::Arc;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;

use crate::{AllocError, InPlaceInit, Init, PinInit};

macro_rules! unique {
    ($name:ident, $shared:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name<T> {
            inner: $shared<T>,
        }

        impl<T> $name<T> {
            /// Allocates and initialises a value that is not shared yet.
            pub fn try_init<E: From<AllocError>>(init: impl Init<T, E>) -> Result<Self, E> {
                Ok(Self {
                    inner: $shared::try_init(init)?,
                })
            }

            /// Allocates and runs a pinned initialiser.
            pub fn try_pin_init<E: From<AllocError>>(
                init: impl PinInit<T, E>,
            ) -> Result<Pin<Self>, E> {
                let pinned = $shared::try_pin_init(init)?;
                // SAFETY: we only unwrap the pointer to wrap it again in a pinned unique pointer.
                let inner = unsafe { Pin::into_inner_unchecked(pinned) };
                // SAFETY: the value stays where it is; `Self` gives out `&mut T` only through `Pin`.
                Ok(unsafe { Pin::new_unchecked(Self { inner }) })
            }

            /// Wraps a value.
            pub fn new(value: T) -> Self {
                Self {
                    inner: $shared::new(value),
                }
            }

            /// Starts sharing the value.
            pub fn share(this: Self) -> $shared<T> {
                this.inner
            }

            /// Starts sharing a pinned value.
            pub fn share_pinned(this: Pin<Self>) -> Pin<$shared<T>> {
                // SAFETY: unwrapping and re-pinning the same allocation; the value does not move.
                let this = unsafe { Pin::into_inner_unchecked(this) };
                // SAFETY: as above.
                unsafe { Pin::new_unchecked(this.inner) }
            }
        }

        impl<T> From<$name<T>> for $shared<T> {
            fn from(unique: $name<T>) -> Self {
                unique.inner
            }
        }

        impl<T> Deref for $name<T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.inner
            }
        }

        impl<T> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut T {
                let ptr = $shared::as_ptr(&self.inner).cast_mut();
                // SAFETY: `self` holds the only reference count and no weak ones, so this is the only access.
                unsafe { &mut *ptr }
            }
        }
    };
}

unique!(
    UniqueArc,
    Arc,
    "An `Arc` with a count of one: mutable until [`UniqueArc::share`] turns it into an `Arc`.\n\n\
     ```\n\
     use pinit::{UniqueArc, init};\n\
     struct Stats { hits: u64 }\n\
     let mut s = UniqueArc::try_init(init!(Stats { hits: 0 }? pinit::AllocError)).unwrap();\n\
     s.hits += 1;\n\
     let shared = UniqueArc::share(s);\n\
     assert_eq!(shared.hits, 1);\n\
     ```"
);
unique!(
    UniqueRc,
    Rc,
    "An `Rc` with a count of one: mutable until [`UniqueRc::share`] turns it into an `Rc`.\n\n\
     ```\n\
     use pinit::{PinInit, UniqueRc, init_zeroed};\n\
     let mut page = UniqueRc::<[u8; 4096]>::try_init(init_zeroed().map_err(pinit::AllocError::from)).unwrap();\n\
     page[0] = 1;\n\
     let shared = UniqueRc::share(page);\n\
     assert_eq!((shared[0], std::rc::Rc::strong_count(&shared)), (1, 1));\n\
     ```"
);
