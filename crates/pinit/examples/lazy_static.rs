//! A lazily initialised, pinned global: built in place on first use, never moved, never freed.
//!
//! `cargo run -p pinit --example lazy_static`

use core::marker::PhantomPinned;
use core::pin::Pin;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use pinit::{InPlaceWrite, PinInit, pin_data, pin_init};

#[pin_data]
struct Registry {
    name: &'static str,
    /// Points into the value itself: only valid because the value never moves.
    me: *const Registry,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: `me` is only compared, never dereferenced; the value is immutable once published.
unsafe impl Sync for Registry {}
// SAFETY: as above.
unsafe impl Send for Registry {}

impl Registry {
    fn new(name: &'static str) -> impl PinInit<Self> {
        pin_init!(&this in Self { name, me: this.as_ptr(), _pin: PhantomPinned })
    }
}

static REGISTRY: OnceLock<Pin<&'static Registry>> = OnceLock::new();

fn registry() -> Pin<&'static Registry> {
    *REGISTRY.get_or_init(|| {
        let slot: &'static mut MaybeUninit<Registry> = Box::leak(Box::new_uninit());
        match slot.write_pin_init(Registry::new("devices")) {
            Ok(pinned) => pinned.into_ref(),
            Err(never) => match never {},
        }
    })
}

fn demo() {
    let a = registry();
    let b = registry();
    assert!(core::ptr::eq(&*a, &*b));
    assert!(core::ptr::eq(a.me, &*a));
    println!("registry {:?} lives at {:p}", a.name, a.me);
}

fn main() {
    demo();
}

#[test]
fn the_global_is_built_once_in_place() {
    demo();
}
