//! The boot-retry and failure paths, driven by a stand-in for QEMU that prints console lines.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes an executable shell script standing in for QEMU; it counts its runs in `count` beside it.
fn fake_qemu(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-qemu");
    let script = format!(
        "#!/bin/sh\ndir=$(dirname \"$0\")\nn=$(cat \"$dir/count\" 2>/dev/null || echo 0)\n\
         n=$((n + 1))\necho $n > \"$dir/count\"\n{body}\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn builder(qemu: &Path) -> guest::VmBuilder {
    guest::Vm::builder()
        .qemu_binary(qemu)
        .accel(guest::Accel::Tcg)
        .slowdown(1.0)
        .boot_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
}

#[test]
#[ignore = "needs the guest kernel: run by cargo xtask test"]
fn guest_retry_after_a_panic_and_a_stuck_boot() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = fake_qemu(
        dir.path(),
        r#"case $n in
1) echo "[    1.0] Kernel panic - not syncing: Fatal exception in interrupt"; exec sleep 1000 ;;
2) exec sleep 1000 ;;
*) printf 'INIT:start\nINIT:script\nhello\n\nGUEST-EXIT:7\n' ;;
esac"#,
    );
    let out = builder(&qemu).run("true").expect("the third boot works");
    assert_eq!(out.tries, 3, "{}", out.log_tail());
    assert_eq!(out.status, 7);
    assert!(!out.success());
    assert_eq!(out.stdout, "hello\n");
    assert!(
        out.log.to_string_lossy().ends_with("-try3.log"),
        "{}",
        out.log.display()
    );
}

#[test]
#[ignore = "needs the guest kernel: run by cargo xtask test"]
fn guest_qemu_dying_mid_script_is_an_error_naming_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = fake_qemu(
        dir.path(),
        r"printf 'INIT:start\nINIT:script\npartial output\n'; exit 1",
    );
    let err = builder(&qemu)
        .run("true")
        .expect_err("no exit status was reported");
    let guest::Error::Exited { stage, .. } = &err else {
        panic!("expected Exited, got {err}");
    };
    assert_eq!(*stage, guest::Stage::Script.describe());
    assert!(err.to_string().contains("partial output"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("count"))
            .unwrap()
            .trim(),
        "1"
    );
}

#[test]
#[ignore = "needs the guest kernel: run by cargo xtask test"]
fn guest_three_failed_boots_quote_qemus_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = fake_qemu(dir.path(), "echo 'qemu: could not load kernel' >&2; exit 1");
    let err = builder(&qemu).run("true").expect_err("QEMU never boots");
    let guest::Error::Boot { tries, .. } = &err else {
        panic!("expected Boot, got {err}");
    };
    assert_eq!(*tries, 3);
    assert!(err.to_string().contains("could not load kernel"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("count"))
            .unwrap()
            .trim(),
        "3"
    );
}

/// A stand-in QEMU that, on the runs listed in `crash_on` (a `case` pattern such as `1` or `*`),
/// writes into its first disk and then dies by SIGSEGV once the script started; on other runs it
/// reports whether that disk's first byte reads as zero, and exits 0.
fn crashing_qemu(dir: &Path, crash_on: &str) -> PathBuf {
    fake_qemu(
        dir,
        &format!(
            r#"img=$(echo "$@" | tr ' ,' '\n\n' | sed -n 's/^file=//p' | head -n 1)
printf 'INIT:start\nINIT:script\n'
case $n in
{crash_on}) printf X | dd of="$img" conv=notrunc 2>/dev/null; kill -SEGV $$ ;;
esac
printf 'first=%s\n\nGUEST-EXIT:0\n' "$(head -c 1 "$img" | od -An -tx1 | tr -d ' ')""#
        ),
    )
}

fn runs(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("count"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
#[ignore = "needs the guest kernel: run by cargo xtask test"]
fn guest_a_qemu_crash_mid_script_is_run_again_once_on_emptied_scratch_disks() {
    let dir = tempfile::tempdir().unwrap();
    let qemu = crashing_qemu(dir.path(), "1");
    let out = builder(&qemu)
        .nvme(guest::Disk::sparse(1 << 20))
        .rerun_if_qemu_crashes()
        .run("true")
        .expect("the second boot works");
    assert_eq!(out.tries, 2, "{}", out.log_tail());
    assert!(out.success());
    // The first run's write was undone: the script starts again from an empty disk.
    assert_eq!(out.stdout, "first=00\n");
    // And the crash is on record, though the run passed.
    let noted = std::fs::read_to_string(guest::crash_log()).unwrap();
    let ours = format!("qemu={} ", qemu.display());
    let line = noted.lines().find(|l| l.contains(&ours)).expect("noted");
    assert!(line.contains("signal: 11"), "{line}");
}

#[test]
#[ignore = "needs the guest kernel: run by cargo xtask test"]
fn guest_qemu_crashes_are_run_again_only_when_asked_once_and_never_on_a_host_image() {
    let crash = |configure: &dyn Fn(guest::VmBuilder) -> guest::VmBuilder, disk: guest::Disk| {
        let dir = tempfile::tempdir().unwrap();
        let qemu = crashing_qemu(dir.path(), "*");
        let err = configure(builder(&qemu).nvme(disk))
            .run("true")
            .expect_err("QEMU crashes every time");
        let guest::Error::Exited { stage, status, .. } = &err else {
            panic!("expected Exited, got {err}");
        };
        assert_eq!(*stage, guest::Stage::Script.describe());
        assert!(status.contains("signal: 11"), "{status}");
        runs(dir.path())
    };
    let scratch = || guest::Disk::sparse(1 << 20);
    assert_eq!(crash(&|b| b, scratch()), "1");
    assert_eq!(crash(&|b| b.rerun_if_qemu_crashes(), scratch()), "2");
    let image = tempfile::NamedTempFile::new().unwrap();
    image.as_file().set_len(1 << 20).unwrap();
    assert_eq!(
        crash(
            &|b| b.rerun_if_qemu_crashes(),
            guest::Disk::image(image.path())
        ),
        "1"
    );
}

#[test]
fn bad_setups_are_refused_before_anything_boots() {
    let missing_socket = guest::Vm::builder()
        .virtio_serial("p9", "/nonexistent/sock")
        .run("true");
    assert!(
        matches!(missing_socket, Err(guest::Error::Invalid(_))),
        "{missing_socket:?}"
    );
    let bad_port = guest::Vm::builder().virtio_serial("p 9", "/").run("true");
    assert!(
        matches!(bad_port, Err(guest::Error::Invalid(_))),
        "{bad_port:?}"
    );
    let relative = guest::Vm::builder()
        .file("/etc/hostname", "share/x")
        .run("true");
    assert!(
        matches!(relative, Err(guest::Error::Invalid(_))),
        "{relative:?}"
    );
    let empty_disk = guest::Vm::builder()
        .nvme(guest::Disk::sparse(0))
        .run("true");
    assert!(
        matches!(empty_disk, Err(guest::Error::Invalid(_))),
        "{empty_disk:?}"
    );
    let empty_memory_disk = guest::Vm::builder()
        .nvme(guest::Disk::memory(0))
        .run("true");
    assert!(
        matches!(empty_memory_disk, Err(guest::Error::Invalid(_))),
        "{empty_memory_disk:?}"
    );
    let bad_bin = guest::Vm::builder().static_bin("guest", "../x").run("true");
    assert!(
        matches!(bad_bin, Err(guest::Error::Invalid(_))),
        "{bad_bin:?}"
    );
}
