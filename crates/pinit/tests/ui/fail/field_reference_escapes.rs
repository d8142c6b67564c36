//! A reference to an initialised field must not outlive the initialiser (here: stored in a `static`).
use std::sync::OnceLock;

use pinit::{InPlaceInit, pin_data, pin_init};

#[pin_data]
struct Pair {
    a: String,
    b: String,
}

static STASH: OnceLock<&'static mut String> = OnceLock::new();

fn main() {
    let p = Box::pin_init(pin_init!(Pair {
        a: String::from("x"),
        _: { let _ = STASH.set(a); },
        b: String::new(),
    }));
    drop(p);
}
