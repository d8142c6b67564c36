//! An intrusive, circular, doubly linked list whose links live inside the listed values.
//!
//! A `ListHead` points at its neighbours by address, so it must never move once linked: it is built in
//! place with `pin_init!` (linking itself into a list *while* being initialised) and unlinks itself in
//! `PinnedDrop`. Single-threaded (`Cell`), to keep the example small.

use core::cell::Cell;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;

use pinit::{PinInit, pin_data, pin_init, pinned_drop};

#[pin_data(PinnedDrop)]
pub struct ListHead {
    next: Cell<NonNull<ListHead>>,
    prev: Cell<NonNull<ListHead>>,
    #[pin]
    _pin: PhantomPinned,
}

impl ListHead {
    /// An empty list: both links point at the head itself, known only once it is in place.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(&this in Self {
            next: Cell::new(this),
            prev: Cell::new(this),
            _pin: PhantomPinned,
        })
    }

    /// A node linked right after `list` as part of its own initialisation.
    pub fn insert_after(list: Pin<&ListHead>) -> impl PinInit<Self> + '_ {
        let list_ptr = NonNull::from(&*list);
        pin_init!(&this in Self {
            next: Cell::new(list.next.replace(this)),
            prev: Cell::new(list_ptr),
            _pin: PhantomPinned,
            _: {
                // SAFETY: `next` is a linked, pinned node (or the head itself); we only update its link.
                unsafe { next.get().as_ref() }.prev.set(this);
            },
        })
    }

    /// Counts the other nodes in the list.
    pub fn len(self: Pin<&Self>) -> usize {
        let start = NonNull::from(&*self);
        let mut count = 0;
        let mut at = self.next.get();
        while at != start {
            count += 1;
            // SAFETY: every linked node is alive and pinned: it unlinks itself before it is dropped.
            at = unsafe { at.as_ref() }.next.get();
        }
        count
    }

    /// Whether no other node is linked.
    pub fn is_empty(self: Pin<&Self>) -> bool {
        self.len() == 0
    }
}

#[pinned_drop]
impl PinnedDrop for ListHead {
    fn drop(self: Pin<&mut Self>) {
        let (next, prev) = (self.next.get(), self.prev.get());
        // SAFETY: neighbours are alive and pinned while linked; relinking them removes this node.
        unsafe { next.as_ref() }.prev.set(prev);
        // SAFETY: as above.
        unsafe { prev.as_ref() }.next.set(next);
    }
}
