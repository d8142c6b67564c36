//! Helpers shared by the guest tests.

#![allow(dead_code, reason = "each test file uses its own subset")]

use std::io::Read;
use std::path::Path;
use std::process::Command;

/// Writes `len` random bytes to `path`.
pub fn random_file(path: &Path, len: u64) {
    let mut data = Vec::new();
    std::fs::File::open("/dev/urandom")
        .expect("/dev/urandom")
        .take(len)
        .read_to_end(&mut data)
        .expect("random bytes");
    std::fs::write(path, data).expect("write the random file");
}

/// The hex SHA-256 of a host file, by `sha256sum` (the guest's busybox has the same tool).
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

/// The first word after `label ` on a line of `stdout` that starts with it.
pub fn labelled<'a>(stdout: &'a str, label: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label)?.strip_prefix(' '))
        .and_then(|rest| rest.split_whitespace().next())
}

/// Asserts that the script printed `label <want>`, quoting the console on failure.
pub fn assert_labelled(out: &guest::Output, label: &str, want: &str) {
    assert_eq!(
        labelled(&out.stdout, label),
        Some(want),
        "{label}: {}",
        out.log_tail()
    );
}

/// Asserts that the script's `mounted ...` line (a `/proc/mounts` entry) contains `option`.
pub fn assert_mounted_with(out: &guest::Output, option: &str) {
    let mount = out
        .stdout
        .lines()
        .find(|l| l.starts_with("mounted "))
        .unwrap_or("");
    assert!(mount.contains(option), "{}", out.log_tail());
}
