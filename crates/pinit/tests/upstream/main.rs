//! Programs written the way `pinned-init` 0.0.10's examples and tests use that crate: each module calls the
//! same API (`#[pin_data]`, `pin_init!`/`try_pin_init!` with `? Error`, `init!`, `stack_pin_init!`,
//! `pin_init_from_closure`, hand-written `PinInit` impls calling `__pinned_init`, `init_zeroed`,
//! `..Zeroable::init_zeroed()`, values as initialisers) with `pinit` in place of `pinned_init` and nothing
//! else changed in those calls. They run under the ASan, LSan and valgrind suites too.

// Written in the style of the code they follow, not to this project's lints on `unsafe` comments.
#![allow(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    clippy::missing_safety_doc,
    clippy::drop_non_drop,
    clippy::manual_is_multiple_of
)]

mod big_struct_in_place;
mod const_generic_default;
mod error;
mod linked_list;
mod many_generics;
mod mutex;
mod pthread_mutex;
mod ring_buf;
mod static_init;
mod zeroing;
