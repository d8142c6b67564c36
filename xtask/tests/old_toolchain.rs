//! A newcomer on Debian 12 who runs `cargo xtask test` with Debian's own cargo (1.65, with rustc
//! 1.63) must be told that their cargo is too old, and the README must quote what they see. xtask
//! cannot speak before cargo has read every manifest, so the manifests are written for cargo's first
//! error to be the one about the workspace's edition.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian 12's cargo and the libraries it links that a Rust-less Debian 12 lacks.
const PACKAGES: &[&str] = &[
    "cargo",
    "libgit2-1.5",
    "libhttp-parser2.9",
    "libmbedcrypto7",
    "libmbedtls14",
    "libmbedx509-1",
    "libssh2-1",
];

/// What that cargo prints last for this workspace.
const TOO_OLD: &str = "this version of Cargo is older than the `2024` edition";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Debian 12's cargo unpacked under `<target>/debian-12-cargo` (downloaded from Debian's archive
/// once, never installed), and the directory of its libraries.
fn debian_12_cargo() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("debian-12-cargo");
    let root = dir.join("root");
    let cargo = root.join("usr/bin/cargo");
    if !cargo.exists() {
        let debs = dir.join("debs");
        let _ = std::fs::remove_dir_all(&debs);
        std::fs::create_dir_all(&debs).unwrap();
        let download = || {
            Command::new("apt-get")
                .arg("download")
                .args(PACKAGES)
                .current_dir(&debs)
                .output()
                .expect("apt-get runs")
        };
        let mut out = download();
        if !out.status.success() && rustix::process::geteuid().is_root() {
            // Package lists that were never fetched (or were cleaned) know no package: fetch
            // them once, as the installer would, and try again.
            let updated = Command::new("apt-get").arg("update").status();
            if updated.is_ok_and(|s| s.success()) {
                out = download();
            }
        }
        assert!(
            out.status.success(),
            "apt-get download {} failed (this test needs Debian 12's archive in apt's lists):\n{}",
            PACKAGES.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        for deb in std::fs::read_dir(&debs).unwrap() {
            let status = Command::new("dpkg-deb")
                .arg("-x")
                .arg(deb.unwrap().path())
                .arg(&root)
                .status()
                .expect("dpkg-deb runs");
            assert!(status.success(), "dpkg-deb -x failed: {status}");
        }
    }
    (cargo, root.join("usr/lib/x86_64-linux-gnu"))
}

#[test]
#[ignore = "downloads Debian 12's cargo package with apt-get download: run by cargo xtask test"]
fn debian_12_cargo_is_told_it_is_too_old_and_the_readme_says_so() {
    let (cargo, libs) = debian_12_cargo();
    let home = tempfile::tempdir().unwrap();
    let root = workspace_root();
    for dir in [root.clone(), root.join("crates/nvme")] {
        let out = Command::new(&cargo)
            .args(["xtask", "test", "--list"])
            .current_dir(&dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("LD_LIBRARY_PATH", &libs)
            .output()
            .expect("Debian 12's cargo runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "Debian 12's cargo ran xtask");
        assert!(
            stderr.contains(TOO_OLD),
            "in {}, Debian 12's cargo does not say it is too old:\n{stderr}",
            dir.display()
        );
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(TOO_OLD),
        "the README does not quote what Debian 12's cargo says: {TOO_OLD}"
    );
}
