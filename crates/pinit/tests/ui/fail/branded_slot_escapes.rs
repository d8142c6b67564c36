#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

fn main() {
    let mut escaped = None;
    let _ = init_by(|slot: Slot<'_, u32>| {
        escaped = Some(slot);
        Err::<Done<'_, u32>, ()>(())
    });
}
