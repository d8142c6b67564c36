//! All-zero bytes are not a valid `NonZeroU32`, so a struct holding one is not `Zeroable`.
use core::num::NonZeroU32;

use pinit::Zeroable;

#[derive(Zeroable)]
struct Id {
    raw: NonZeroU32,
}

fn main() {}
