#![allow(dangerous_implicit_autorefs)]
// `init!` builds structs; an enum variant's fields cannot be reached through the enum's slot.
use core::ops::{Deref, DerefMut};
use pinit::{InPlaceInit, init};

struct Inner {
    x: u32,
}

enum E {
    V { x: u32 },
}

impl Deref for E {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        unimplemented!()
    }
}

impl DerefMut for E {
    fn deref_mut(&mut self) -> &mut Inner {
        unimplemented!()
    }
}

fn main() {
    let _ = Box::init(init!(E::V { x: 5 }));
}
