//! Procedural macros for `pinit`: `#[pin_data]`, `#[pinned_drop]` and `#[derive(Zeroable)]`.
//!
//! Written against `proc_macro` directly (no `syn`/`quote`) so that a cold build of `pinit` stays well under
//! a second. Use them through the `pinit` crate, which re-exports them.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod enum_data;
mod parse;
mod pin_data;
mod pinned_drop;
mod template;
mod zeroable;

/// Declares which fields are structurally pinned (`#[pin]`) so the struct can be built with `pin_init!`.
///
/// Also generates `project()` (pin projection), an `Unpin` impl that holds only if every `#[pin]` field is
/// `Unpin`, and forbids a plain `Drop` impl: use `#[pin_data(PinnedDrop)]` with a `#[pinned_drop]` impl.
#[proc_macro_attribute]
pub fn pin_data(args: TokenStream, input: TokenStream) -> TokenStream {
    pin_data::pin_data(args, input)
}

/// Implements `PinnedDrop` for a `#[pin_data(PinnedDrop)]` struct: `fn drop(self: Pin<&mut Self>)`.
#[proc_macro_attribute]
pub fn pinned_drop(args: TokenStream, input: TokenStream) -> TokenStream {
    pinned_drop::pinned_drop(args, input)
}

/// Implements `Zeroable` for a struct whose fields are all `Zeroable` (an error names the field that is not).
#[proc_macro_derive(Zeroable)]
pub fn derive_zeroable(input: TokenStream) -> TokenStream {
    zeroable::derive_zeroable(input, false)
}

/// Implements `Zeroable` for a struct exactly when all its fields are `Zeroable`; no error otherwise.
#[proc_macro_derive(MaybeZeroable)]
pub fn derive_maybe_zeroable(input: TokenStream) -> TokenStream {
    zeroable::derive_zeroable(input, true)
}
