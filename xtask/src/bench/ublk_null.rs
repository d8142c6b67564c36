//! The ublk project's own null target (the `null` example of the `libublk` crate nvme-ublk is
//! built on): a ublk server that completes every request at once, with no device behind it. Under
//! the same fio load as nvme-ublk it shows what ublk itself costs and allows on the guest, apart
//! from our driver and the emulated controller.
//!
//! Built from the `libublk` release in cargo's registry that the workspace resolves, copied out of
//! the registry first (building there would write a lock file and a target directory into it) and
//! made a workspace of its own.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::{cargo, target_dir};

/// The example's binary, built (release) on first use and kept under the target directory.
pub(super) fn build() -> Result<PathBuf> {
    let source = registry_source()?;
    let version = source
        .file_name()
        .and_then(|n| n.to_str())
        .context("libublk's source directory has no name")?
        .to_owned();
    let dir = target_dir().join("bench-ublk-null").join(&version);
    let binary = dir.join("target/release/examples/null");
    if binary.is_file() {
        return Ok(binary);
    }
    let copy = dir.join("src");
    if !copy.join("Cargo.toml").is_file() {
        copy_tree(&source, &copy)
            .with_context(|| format!("copying {} to {}", source.display(), copy.display()))?;
        // A package of its own, not a member of whichever workspace the target directory is in.
        let manifest = copy.join("Cargo.toml");
        let mut text = std::fs::read_to_string(&manifest)?;
        text.push_str("\n[workspace]\n");
        std::fs::write(&manifest, text)?;
    }
    eprintln!("xtask: building {version}'s null example (the ublk null target)");
    let status = cargo()
        .args(["build", "--release", "--example", "null"])
        .current_dir(&copy)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .status()
        .context("running cargo")?;
    if !status.success() || !binary.is_file() {
        bail!("building {version}'s null example failed");
    }
    Ok(binary)
}

/// The directory of the `libublk` package the workspace depends on (from `cargo metadata`).
fn registry_source() -> Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata's output")?;
    libublk_manifest(&metadata)
        .and_then(|manifest| Path::new(manifest).parent().map(Path::to_path_buf))
        .context("the workspace does not depend on libublk")
}

/// The manifest path of the `libublk` package in `cargo metadata` output.
fn libublk_manifest(metadata: &serde_json::Value) -> Option<&str> {
    metadata["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "libublk")?["manifest_path"]
        .as_str()
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libublk_package_is_found_among_the_resolved_packages() {
        let metadata = serde_json::json!({ "packages": [
            { "name": "libublk-rs-sys", "manifest_path": "/r/libublk-rs-sys-0.1.2/Cargo.toml" },
            { "name": "libublk", "manifest_path": "/r/libublk-0.4.8/Cargo.toml" },
        ]});
        assert_eq!(
            libublk_manifest(&metadata),
            Some("/r/libublk-0.4.8/Cargo.toml")
        );
        assert_eq!(
            libublk_manifest(&serde_json::json!({ "packages": [] })),
            None
        );
    }
}
