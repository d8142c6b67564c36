//! Writes one encoded frame per 9P2000.L message into a directory, as a seed corpus for the
//! `decode` fuzz target (each file starts with the target's msize selector byte).
//!
//! `cargo run -p ninep --example fuzz_seeds -- crates/ninep/fuzz/corpus/decode`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "crates/ninep/fuzz/corpus/decode".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let requests = common::sample_requests()
        .into_iter()
        .map(|r| common::encode_request(1, &r));
    let responses = common::sample_responses()
        .into_iter()
        .map(|r| common::encode_response(2, &r));
    let mut count = 0;
    for (i, frame) in requests.chain(responses).enumerate() {
        // Selector 0: no msize limit, so the seed decodes fully.
        let mut seed = vec![0u8];
        seed.extend_from_slice(&frame);
        std::fs::write(dir.join(format!("seed-{i:02}-type-{}", frame[4])), seed)?;
        count += 1;
    }
    println!("wrote {count} seeds to {}", dir.display());
    Ok(())
}
