//! The macros' internal steps cannot be driven by hand to skip fields: reporting success needs a token that
//! only the macro itself holds (making one takes `unsafe`).
#![forbid(unsafe_code)]

use pinit::{InPlaceInit, pin_data, pin_init};

#[pin_data]
struct Pair {
    a: String,
    b: String,
}

fn main() {
    let token = ();
    let _ = Box::pin_init(pin_init!(@fields
        @mode(pin) @this() @ty((Pair)) @err(::core::convert::Infallible)
        @names(slot, guards, data, zeroed, whole, token)
        @stmts() @check(a: panic!(), b: panic!()) @zero() @attrs()
        @rest()
    ));
}
