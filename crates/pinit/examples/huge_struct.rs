//! A 1 GiB struct built in place: the allocator hands out zeroed pages, nothing is copied or touched.
//!
//! `cargo run -p pinit --example huge_struct` (debug or `--release`: both take microseconds)

use std::time::Instant;

use pinit::{InPlaceInit, Zeroable, init};

#[derive(Zeroable)]
struct Arena {
    used: usize,
    generation: u64,
    bytes: [u8; 1 << 30],
}

fn demo() -> std::time::Duration {
    let start = Instant::now();
    let arena = Box::init(init!(Arena {
        generation: 1,
        ..Zeroable::zeroed()
    }))
    .expect("allocation");
    let took = start.elapsed();
    assert_eq!(
        (arena.used, arena.generation, arena.bytes[(1 << 30) - 1]),
        (0, 1, 0)
    );
    took
}

fn main() {
    println!("built a 1 GiB arena in {:?}", demo());
}

#[test]
fn a_gibibyte_is_built_without_copying() {
    demo();
}
