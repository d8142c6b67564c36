// A user crate that denies warnings, non-standard style and unused code, and names its own items oddly
// (allowing that on the items it declares, as rustc needs without pinit too): nothing `pinit` generates may warn.
#![deny(warnings, nonstandard_style, unused)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::{
    InPlaceInit, MaybeZeroable, PinInit, Zeroable, assert_pinned, init, init_by, pin_data, pin_init, pinned_drop,
    stack_pin_init, stack_try_pin_init,
};

#[allow(non_camel_case_types, non_snake_case)]
#[pin_data]
pub struct lower_case_lock<T> {
    #[pin]
    pub wait_list: PhantomPinned,
    pub Count: T,
}

#[allow(non_camel_case_types, non_snake_case)]
#[pin_data(PinnedDrop)]
pub struct dropped {
    pub Value: u32,
}

#[pinned_drop]
impl PinnedDrop for dropped {
    fn drop(self: Pin<&mut Self>) {}
}

#[allow(non_camel_case_types)]
#[pin_data]
pub struct tuple_thing(#[pin] pub PhantomPinned, pub u8);

#[allow(non_camel_case_types, non_snake_case)]
#[pin_data]
#[repr(u8)]
pub enum odd_enum {
    empty,
    with_fields { #[pin] PIN: PhantomPinned, Some_Field: u16 },
    tuple_variant(u32),
}

#[allow(non_camel_case_types, non_snake_case)]
#[derive(Zeroable)]
pub struct zero_me {
    pub A: u32,
}

#[allow(non_camel_case_types)]
pub struct plain_thing {
    pub x: u8,
}

#[allow(non_camel_case_types)]
#[derive(MaybeZeroable)]
pub struct maybe_zero(pub u8, pub Option<&'static u8>);

assert_pinned!(lower_case_lock<u8>, wait_list, PhantomPinned);

#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct odd_error;

#[allow(non_snake_case)]
fn Fallible(Fail: bool) -> Result<u8, odd_error> {
    stack_try_pin_init!(let Port: plain_thing =? init!(#[default_error(odd_error)] plain_thing {
        x: if Fail { return Err(odd_error) } else { 7 },
    }));
    stack_try_pin_init!(let Other = init!(&this in plain_thing {
        _: { let _ = this; },
        #[cfg(all())]
        x: 8,
    }? odd_error));
    let Hand: Box<u8> = Box::init(init_by(|slot| Ok(slot.write(9u8)))).unwrap();
    Ok(Port.x + Other?.x + *Hand)
}

#[allow(non_snake_case)]
pub fn Build() -> impl PinInit<lower_case_lock<u32>> {
    pin_init!(lower_case_lock { wait_list <- PhantomPinned, Count <- 1 })
}

fn main() {
    let l = Box::pin_init(Build()).unwrap();
    let _ = l.Count;
    let d = Box::pin_init(pin_init!(dropped { Value: 2 })).unwrap();
    let _ = d.Value;
    stack_pin_init!(let t = pin_init!(tuple_thing { 0: PhantomPinned, 1: 3 }));
    let _ = t.1;
    let e = Box::pin_init(pin_init!(enum odd_enum::with_fields { PIN: PhantomPinned, Some_Field: 4 })).unwrap();
    if let odd_enum::with_fields { Some_Field, .. } = &*e {
        let _ = Some_Field;
    }
    let _ = Box::pin_init(pin_init!(enum odd_enum::tuple_variant { 0: 5 })).unwrap();
    let _ = Box::pin_init(pin_init!(enum odd_enum::empty {})).unwrap();
    let z = Box::init(init!(zero_me { ..Zeroable::init_zeroed() })).unwrap();
    let _ = z.A;
    let p = Box::init(init!(plain_thing { x: 6 })).unwrap();
    let _ = p.x;
    assert!(Fallible(true).is_err());
    let _ = Fallible(false).unwrap();
    let _: maybe_zero = Zeroable::zeroed();
    let mut l = l;
    let _ = l.as_mut().project().Count;
}
