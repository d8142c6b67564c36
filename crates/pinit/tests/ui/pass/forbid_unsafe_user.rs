//! A user crate that forbids `unsafe` can use every macro.

#![forbid(unsafe_code)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

#[pin_data(PinnedDrop)]
struct Node {
    #[pin]
    _pin: PhantomPinned,
    me: *const Node,
    value: u32,
}

#[pinned_drop]
impl PinnedDrop for Node {
    fn drop(self: Pin<&mut Self>) {}
}

#[derive(Zeroable)]
struct Regs {
    a: u32,
    b: [u8; 16],
}

#[pin_data]
struct Tuple(#[pin] u32, u8);

#[pin_data]
#[repr(u8)]
enum Packet {
    Empty,
    Full { len: u16, bytes: [u8; 256] },
    Code(u8, #[pin] PhantomPinned),
}

#[derive(Debug)]
struct Refused;

impl From<AllocError> for Refused {
    fn from(_: AllocError) -> Self {
        Refused
    }
}

fn checked(len: u16) -> impl PinInit<Packet, Refused> {
    pin_init_by(move |slot| {
        if len > 256 {
            return Err(Refused);
        }
        slot.pin_init(pin_init!(enum Packet::Full { len, bytes: [0; 256] }? Refused))
    })
}

fn main() {
    let n = Box::pin_init(pin_init!(&this in Node { _pin: PhantomPinned, me: this.as_ptr(), value: 1 })).unwrap();
    assert!(core::ptr::eq(n.me, &*n));
    let r = Box::init(init!(Regs { a: 1, ..Zeroable::zeroed() })).unwrap();
    assert_eq!(r.b, [0; 16]);
    stack_pin_init!(let t = pin_init!(Tuple { 0: 1, 1: 2 }));
    assert_eq!(t.1, 2);
    let b: Box<[u8; 64]> = Box::init(init_by(|slot| slot.init(init_zeroed()))).unwrap();
    assert_eq!(b[63], 0);
    let p = Box::try_pin_init(checked(3)).unwrap();
    assert!(matches!(&*p, Packet::Full { len: 3, .. }));
    assert!(Box::try_pin_init(checked(300)).is_err());
    let e = Box::pin_init(pin_init!(enum Packet::Empty {})).unwrap();
    assert!(matches!(&*e, Packet::Empty));
    let c = Box::pin_init(pin_init!(enum Packet::Code { 0: 4, 1: PhantomPinned })).unwrap();
    assert!(matches!(&*c, Packet::Code(4, _)));
}
