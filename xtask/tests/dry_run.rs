//! `--dry-run` lists what a command would install and installs nothing.

use std::process::Command;

fn dpkg_list() -> String {
    let out = Command::new("dpkg").arg("-l").output().expect("dpkg runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// With no guest kernel in its `target/vm`, `test --dry-run` and `vm --dry-run` name the kernel they
/// would fetch, and neither changes the installed packages nor fetches anything.
#[test]
fn dry_runs_list_the_kernel_and_install_nothing() {
    let vm_dir = tempfile::tempdir().unwrap();
    let before = dpkg_list();
    for args in [
        &["test", "--dry-run"][..],
        &["vm", "--dry-run", "-c", "true"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env("GUEST_VM_DIR", vm_dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("--dry-run: would install")
                && stdout.contains(&format!("apt-get download {}", guest::PINNED_PACKAGE)),
            "{args:?}: {stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains("===== suite") && !stderr.contains("===== suite"),
            "{args:?} ran suites: {stdout}\n{stderr}"
        );
    }
    assert_eq!(
        dpkg_list(),
        before,
        "a dry run changed the installed packages"
    );
    assert_eq!(
        std::fs::read_dir(vm_dir.path()).unwrap().count(),
        0,
        "a dry run fetched something"
    );
}
