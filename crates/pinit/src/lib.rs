#![doc = include_str!("../README.md")]
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
pub use field::{HasPinData, PinnedField, PinnedFieldWriter, UnpinnedField, UnpinnedFieldWriter};
#[doc(hidden)]
pub use field::{ImplementPinnedDropInsteadOfDrop, PinnedDropNeedsPinDataPinnedDrop};
pub use pinned_drop::{OnlyCallFromDrop, PinnedDrop};
pub use stack::StackInit;
pub use traits::{
    Init, PinInit, Wrapper, cast_init, cast_pin_init, init_from_closure, pin_init_from_closure,
    uninit, value,
};
pub use zeroable::{Zeroable, ZeroableOption, init_zeroed, zeroed};

#[cfg(feature = "alloc")]
pub use in_place::{InPlaceInit, InPlaceWrite};
#[cfg(feature = "alloc")]
pub use slices::InPlaceInitSlice;
#[cfg(feature = "alloc")]
pub use unique::{UniqueArc, UniqueRc};
#[cfg(feature = "alloc")]
pub use vec_ext::VecExt;

pub use pinit_macros::{MaybeZeroable, Zeroable, pin_data, pinned_drop};
