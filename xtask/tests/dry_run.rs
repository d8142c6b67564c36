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

fn xtask(
    args: &[&str],
    vm_dir: &std::path::Path,
    cache: &std::path::Path,
) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("GUEST_VM_DIR", vm_dir)
        .env("KANGREJOS_KERNEL_CACHE", cache)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// With neither a kernel cache nor a built Rust kernel, `kernel --dry-run` and `test --dry-run
/// kernel-rust` say they would debootstrap a chroot and download the packaged image, and touch
/// neither the cache nor the packages; `kernel --no-install` refuses and says how to see the plan.
#[test]
fn kernel_dry_run_lists_the_chroot_and_the_image_and_no_install_refuses() {
    let vm_dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let before = dpkg_list();
    for args in [
        &["kernel", "--dry-run"][..],
        &["test", "--dry-run", "kernel-rust"],
        &["vm", "--dry-run", "--kernel", "rust"],
    ] {
        let (ok, stdout, stderr) = xtask(args, vm_dir.path(), cache.path());
        assert!(ok, "{args:?}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("the Rust guest kernel")
                && stdout.contains("debootstrap --variant=minbase")
                && stdout.contains("apt-get download"),
            "{args:?}: {stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains("===== suite") && !stderr.contains("===== suite"),
            "{args:?} ran suites: {stdout}\n{stderr}"
        );
    }
    let (ok, stdout, stderr) = xtask(&["test", "--dry-run", "pinit"], vm_dir.path(), cache.path());
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("Rust guest kernel"),
        "no suite of this run needs the Rust kernel: {stdout}"
    );
    assert_eq!(
        dpkg_list(),
        before,
        "a dry run changed the installed packages"
    );

    let (ok, stdout, stderr) = xtask(&["kernel", "--no-install"], vm_dir.path(), cache.path());
    assert!(
        !ok,
        "--no-install with no kernel built succeeded: {stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("no Rust kernel has been built") && stderr.contains("--dry-run"),
        "{stderr}"
    );
    for dir in [vm_dir.path(), cache.path()] {
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            0,
            "{} is no longer empty",
            dir.display()
        );
    }
}

/// Run as another user than root, `kernel` says what it needs (root, where and how much) and how to
/// see its plan without root, before touching anything. Needs root to become `nobody`; the binary is
/// copied where `nobody` may run it (the checkout may be in a private directory).
#[test]
fn kernel_as_non_root_says_what_it_needs() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: becoming another user needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let xtask = dir.path().join("xtask");
    // Written by `cp`, so that no other test's fork holds it open for writing (ETXTBSY).
    let copied = Command::new("cp")
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .arg(&xtask)
        .status()
        .unwrap();
    assert!(copied.success());
    let cache = dir.path().join("cache");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&xtask)
        .arg("kernel")
        .env("KANGREJOS_KERNEL_CACHE", &cache)
        .env("GUEST_VM_DIR", dir.path().join("vm"))
        .output()
        .expect("setpriv runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("needs root")
            && stderr.contains("debootstrap")
            && stderr.contains(&cache.display().to_string())
            && stderr.contains("--dry-run"),
        "{stderr}"
    );
    assert!(!cache.exists(), "a refused run created the cache");
}
