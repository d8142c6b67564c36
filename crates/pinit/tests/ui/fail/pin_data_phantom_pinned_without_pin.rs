// Without `#[pin]` a `PhantomPinned` field does not make the type `!Unpin`.
use core::marker::PhantomPinned;
use pinit::pin_data;

#[pin_data]
struct Forgot {
    value: u32,
    _pin: PhantomPinned,
}

#[pin_data]
struct Qualified {
    value: u32,
    _pin: core::marker::PhantomPinned,
}

#[pin_data]
#[repr(u8)]
enum InVariant {
    Waiting { _pin: ::core::marker::PhantomPinned },
}

fn main() {}
