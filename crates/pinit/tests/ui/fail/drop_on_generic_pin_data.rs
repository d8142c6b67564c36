//! `Drop` on a generic `#[pin_data]` type is refused too.
use pinit::pin_data;

#[pin_data]
struct Slot<T> {
    #[pin]
    value: T,
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {}
}

fn main() {}
