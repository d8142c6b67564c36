#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

fn main() {
    let _ = init_by(|outer: Slot<'_, u32>| {
        let inner_done = None::<Done<'_, u32>>;
        let _ = outer;
        Ok::<_, core::convert::Infallible>(inner_done.unwrap())
    });
    let _ = init_by(|a: Slot<'_, u32>| {
        let mut keep = None;
        let _ = init_by(|b: Slot<'_, u32>| {
            keep = Some(b.write(1));
            Ok::<_, core::convert::Infallible>(a.write(2))
        });
        Ok::<_, core::convert::Infallible>(keep.unwrap())
    });
}
