//! Suites of the 9P server: the kernel v9fs client and pjdfstest against `ninepd` in the guest.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::Suite;
use crate::cmd::{Tally, cargo_test, workspace_root};

/// The pjdfstest release the suite installs (the Rust rewrite, from crates.io).
const PJDFSTEST_VERSION: &str = "0.2.2";

pub fn suites() -> Vec<Suite> {
    vec![Suite {
        name: "ninep-guest",
        about: "the guest kernel's v9fs client against ninepd (tcp in the guest, trans=fd over virtio-serial, mount.ninep over vsock, tcp and unix, two exports from a config file and a reload, vsock clients admitted by context id) and pjdfstest (--multi-user over a unix socket)",
        needs_guest: true,
        run: guest,
    }]
}

fn guest() -> Result<Tally> {
    let pjdfstest = ensure_pjdfstest()?;
    cargo_test(
        &[
            "test",
            "-p",
            "ninep-server",
            "--test",
            "guest",
            "--test",
            "guest_mount",
            "--test",
            "guest_exports",
            "--",
            "--ignored",
            "guest_",
            "--test-threads=1",
        ],
        &[(
            "PJDFSTEST",
            pjdfstest.to_str().context("non-UTF-8 workspace path")?,
        )],
    )
}

/// Builds pjdfstest once into `target/pjdfstest` and returns the binary.
///
/// It is linked dynamically and copied into the guest with its libraries: a `+crt-static`
/// glibc build crashes in its user lookups (static glibc cannot load NSS modules).
fn ensure_pjdfstest() -> Result<PathBuf> {
    let root = workspace_root().join("target").join("pjdfstest");
    let bin = root.join("bin").join("pjdfstest");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: building pjdfstest {PJDFSTEST_VERSION} into {}",
        root.display()
    );
    let status = crate::cmd::cargo()
        .args([
            "install",
            "pjdfstest",
            "--locked",
            "--version",
            PJDFSTEST_VERSION,
            "--root",
        ])
        .arg(&root)
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target").join("pjdfstest-build"),
        )
        .env_remove("RUSTFLAGS")
        .status()
        .context("cannot run cargo install pjdfstest")?;
    if !status.success() || !bin.exists() {
        bail!("cargo install pjdfstest failed");
    }
    Ok(bin)
}
