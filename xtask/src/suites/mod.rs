//! The test suites `cargo xtask test` runs, in order. Each area of the workspace owns one module.

use anyhow::Result;

use crate::cmd::Tally;

mod deb;
mod guest;
mod kernel_rust;

pub use kernel_rust::needs_rust_kernel;
mod ninep;
mod ninep_wire;
mod nvme;
mod pinit;
mod workspace;

/// One named suite: a function that runs it and counts its test cases.
#[derive(Debug)]
pub struct Suite {
    pub name: &'static str,
    pub about: &'static str,
    /// Whether it boots the QEMU guest (so the guest kernel and QEMU must be installed first).
    pub needs_guest: bool,
    pub run: fn() -> Result<Tally>,
}

pub fn all() -> Vec<Suite> {
    let mut all = workspace::suites();
    all.extend(pinit::suites());
    all.extend(ninep_wire::suites());
    all.extend(deb::suites());
    all.extend(ninep::suites());
    all.extend(nvme::suites());
    all.extend(guest::suites());
    all.extend(kernel_rust::suites());
    all
}
