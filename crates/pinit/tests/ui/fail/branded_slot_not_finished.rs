#![allow(unused_imports)]

use core::marker::PhantomPinned;
use core::pin::Pin;
use pinit::*;

fn main() {
    let _ = init_by(|slot: Slot<'_, u32>| {
        let _ = slot;
        Ok::<(), ()>(())
    });
}
