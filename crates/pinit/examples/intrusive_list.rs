//! An intrusive doubly linked list: nodes link themselves into the list while being built in place.
//!
//! `cargo run -p pinit --example intrusive_list`

#[path = "shared/list.rs"]
mod list;

use list::ListHead;
use pinit::{InPlaceInit, stack_pin_init};

fn demo() {
    stack_pin_init!(let head = ListHead::new());
    let head = head.into_ref();
    assert!(head.is_empty());
    let a = Box::pin_init(ListHead::insert_after(head)).expect("allocation");
    let b = Box::pin_init(ListHead::insert_after(head)).expect("allocation");
    {
        stack_pin_init!(let c = ListHead::insert_after(head));
        let _ = c;
        assert_eq!(head.len(), 3);
    }
    assert_eq!(head.len(), 2);
    drop(a);
    assert_eq!(head.len(), 1);
    drop(b);
    assert!(head.is_empty());
    println!("linked and unlinked 3 nodes in place");
}

fn main() {
    demo();
}

#[test]
fn the_list_links_and_unlinks() {
    demo();
}
