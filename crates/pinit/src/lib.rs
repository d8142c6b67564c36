//! Safe pinned in-place initialisation: build values that must never move directly in their final place.
//!
//! An *initialiser* ([`PinInit`] / [`Init`]) describes how to build a `T` inside memory that already exists
//! (a fresh `Box`, `Arc`, `Rc`, a `Vec`'s spare capacity, a pinned stack slot). Nothing is built on the stack
//! and moved: a 1 GiB struct is zeroed by asking the allocator for zeroed pages, a 16 MiB array field is
//! filled where it lives, and a self-referential or intrusively linked value knows its final address while
//! it is being built. If initialisation fails or panics part-way, every field built so far is dropped in
//! reverse order and the memory is freed.
//!
//! ```
//! use core::pin::Pin;
//! use pinit::{InPlaceInit, pin_data, pin_init};
//!
//! #[pin_data]
//! struct Device {
//!     #[pin]
//!     regs: [u32; 8],
//!     name: &'static str,
//! }
//!
//! let dev: Pin<Box<Device>> = Box::pin_init(pin_init!(Device { regs: [0; 8], name: "nvme0" })).unwrap();
//! assert_eq!(dev.name, "nvme0");
//! ```
//!
//! Everything works on stable Rust with the default features; see the crate README for the full tour.

#![no_std]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod arrays;
mod branded;
mod combinators;
mod error;
mod macros;
mod pinned_drop;
mod stack;
mod traits;
mod zeroable;

#[cfg(feature = "alloc")]
mod in_place;
#[cfg(feature = "alloc")]
mod raw_alloc;
#[cfg(feature = "alloc")]
mod slices;
#[cfg(feature = "alloc")]
mod unique;
#[cfg(feature = "alloc")]
mod vec_ext;

pub mod field;

pub use arrays::{init_array_from_fn, pin_init_array_from_fn};
pub use branded::{Done, PinDone, PinSlot, Slot, init_by, pin_init_by};
pub use combinators::{ChainInit, ChainPinInit, MapErr, init_scope, pin_init_scope};
pub use error::AllocError;
pub use field::{HasPinData, PinnedField, UnpinnedField};
pub use pinned_drop::{OnlyCallFromDrop, PinnedDrop};
pub use stack::StackInit;
pub use traits::{Init, PinInit, init_from_closure, pin_init_from_closure, value};
pub use zeroable::{Zeroable, zeroed};

#[cfg(feature = "alloc")]
pub use in_place::{InPlaceInit, InPlaceWrite};
#[cfg(feature = "alloc")]
pub use slices::InPlaceInitSlice;
#[cfg(feature = "alloc")]
pub use unique::{UniqueArc, UniqueRc};
#[cfg(feature = "alloc")]
pub use vec_ext::VecExt;

pub use pinit_macros::{Zeroable, pin_data, pinned_drop};
