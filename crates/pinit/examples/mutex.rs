//! A mutex whose waiters queue up in a pinned, intrusive wait list (no allocation per waiter).
//!
//! Single-threaded and cooperative to stay small: a waiter links a node that lives on its own stack
//! frame into the mutex's wait list; the node unlinks itself when the waiter stops waiting.
//!
//! `cargo run -p pinit --example mutex`

#[path = "shared/list.rs"]
mod list;

use core::cell::{Cell, RefCell};
use core::pin::Pin;

use list::ListHead;
use pinit::{InPlaceInit, PinInit, pin_data, pin_init, stack_pin_init};

#[pin_data]
struct WaitMutex<T> {
    /// Waiters link themselves in here, so the list head's address must never change.
    #[pin]
    waiters: ListHead,
    locked: Cell<bool>,
    value: RefCell<T>,
}

impl<T> WaitMutex<T> {
    fn new(value: T) -> impl PinInit<Self> {
        pin_init!(Self {
            waiters <- ListHead::new(),
            locked: Cell::new(false),
            value: RefCell::new(value),
        })
    }

    /// The wait list, pinned like the mutex.
    fn waiters(self: Pin<&Self>) -> Pin<&ListHead> {
        // SAFETY: `waiters` is a `#[pin]` field, so it is structurally pinned with the mutex.
        unsafe { self.map_unchecked(|m| &m.waiters) }
    }

    fn try_lock(&self) -> bool {
        !self.locked.replace(true)
    }

    fn unlock(&self) {
        self.locked.set(false);
    }
}

fn demo() {
    let m = Box::pin_init(WaitMutex::new(0u32)).expect("allocation");
    let m = m.as_ref();
    assert!(m.try_lock());
    {
        stack_pin_init!(let first = ListHead::insert_after(m.waiters()));
        {
            stack_pin_init!(let second = ListHead::insert_after(m.waiters()));
            assert_eq!(m.waiters().len(), 2);
            let _ = second;
        }
        // The second waiter gave up: its node unlinked itself when its frame ended.
        assert_eq!(m.waiters().len(), 1);
        m.unlock();
        assert!(m.try_lock());
        *m.value.borrow_mut() += 1;
        let _ = first;
    }
    m.unlock();
    assert!(m.waiters().is_empty());
    assert_eq!(*m.value.borrow(), 1);
    println!(
        "two waiters queued in place and left; value = {}",
        m.value.borrow()
    );
}

fn main() {
    demo();
}

#[test]
fn waiters_queue_in_place_and_leave() {
    demo();
}
