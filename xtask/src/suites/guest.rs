//! Suites of the `guest` area: the harness's own tests, booting real guests.

use anyhow::Result;

use super::Suite;
use crate::cmd::{Tally, cargo_test};

pub fn suites() -> Vec<Suite> {
    vec![Suite {
        name: "guest-harness",
        about: "the QEMU guest harness: boot, 9P over tcp and virtio-serial, NVMe rebinding, deadlines",
        needs_guest: true,
        run: harness,
    }]
}

fn harness() -> Result<Tally> {
    cargo_test(
        &[
            "test",
            "-p",
            "guest",
            "--tests",
            "--",
            "--ignored",
            "guest_",
            "--test-threads=1",
        ],
        &[],
    )
}
