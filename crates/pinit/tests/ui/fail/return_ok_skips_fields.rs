//! A `return Ok(..)` inside a field expression would skip the remaining fields: it must not compile.
use pinit::{InPlaceInit, init};

struct Pair {
    a: String,
    b: String,
}

fn main() {
    let _ = Box::init(init!(Pair {
        a: String::from("x"),
        _: { return Ok(()); },
        b: String::from("y"),
    }));
}
