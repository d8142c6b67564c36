//! The `kernel-rust` suite: the Rust-enabled guest kernel, built (or taken from the cache) by
//! `cargo xtask kernel`, with the kernel's Rust samples, `rnull` and our module loaded in the guest.

use anyhow::Result;

use super::Suite;
use crate::cmd::{Tally, cargo_test};

pub fn suites() -> Vec<Suite> {
    vec![
        Suite {
            name: "kernel-rust",
            about: "Debian's CONFIG_RUST 7.2 kernel in the guest: rust_minimal, rnull through fio, our kangrejos module",
            needs_guest: true,
            run,
        },
        Suite {
            name: "kernel-rnvme",
            about: "rnvme, the Rust PCI NVMe driver, against the C nvme driver on one QEMU controller",
            needs_guest: true,
            run: run_rnvme,
        },
    ]
}

/// Whether the suite named `name` boots the Rust kernel (every suite of this module does).
pub fn needs_rust_kernel(name: &str) -> bool {
    suites().iter().any(|s| s.name == name)
}

fn run_rnvme() -> Result<Tally> {
    crate::kernel::for_suite()?;
    cargo_test(
        &[
            "test",
            "-p",
            "xtask",
            "--test",
            "kernel_rnvme",
            "--",
            "--ignored",
            "guest_",
            "--test-threads=1",
        ],
        &[],
    )
}

fn run() -> Result<Tally> {
    crate::kernel::for_suite()?;
    cargo_test(
        &[
            "test",
            "-p",
            "xtask",
            "--test",
            "kernel_rust",
            "--",
            "--ignored",
            "guest_",
            "--test-threads=1",
        ],
        &[],
    )
}
