//! One guest at a time on the machine: two checkouts (each with its own `target/vm`) that start a guest
//! together run them one after the other, and the second says whom it waits for.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// Set in the children: which checkout the child plays.
const CHILD_ENV: &str = "GUEST_LOCK_TEST_CHILD";

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_two_checkouts_run_one_guest_at_a_time() {
    // Kernel, base initramfs and calibration in place before the children race.
    let slowdown = guest::slowdown().expect("calibration");
    let shared = guest::vm_dir();
    let root = tempfile::tempdir().unwrap();
    let children: Vec<(u32, std::process::Child)> = ["a", "b"]
        .into_iter()
        .map(|label| {
            let vm = root.path().join(label);
            checkout_vm_dir(&shared, &vm);
            let child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child_of_two_checkouts",
                    "--nocapture",
                ])
                .env(CHILD_ENV, label)
                .env("GUEST_VM_DIR", &vm)
                .env(guest::SLOWDOWN_ENV, slowdown.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child.id(), child)
        })
        .collect();
    let outs: Vec<(u32, Output)> = children
        .into_iter()
        .map(|(pid, c)| (pid, c.wait_with_output().unwrap()))
        .collect();
    let mut windows = Vec::new();
    for (pid, out) in &outs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child {pid}:\n{stdout}\n{stderr}");
        let window = stdout
            .lines()
            .find_map(|l| l.strip_prefix("qemu-window "))
            .unwrap_or_else(|| panic!("child {pid} ran no guest:\n{stdout}\n{stderr}"));
        let (from, to) = window.split_once(' ').unwrap();
        windows.push((
            from.parse::<u128>().unwrap(),
            to.parse::<u128>().unwrap(),
            *pid,
        ));
    }
    windows.sort();
    let [(_, first_end, first), (second_start, _, second)] = windows[..] else {
        unreachable!()
    };
    assert!(
        first_end <= second_start,
        "the two QEMUs overlapped: {windows:?}"
    );
    let waiter = &outs.iter().find(|(pid, _)| *pid == second).unwrap().1;
    let said = String::from_utf8_lossy(&waiter.stderr);
    assert!(
        said.contains("waiting")
            && said.contains("machine-wide VM lock")
            && said.contains(&format!("held by pid {first} (")),
        "the second did not say it waited for the first (pid {first}):\n{said}"
    );
}

/// One checkout's guest, run by the test above in a child process.
#[test]
#[ignore = "a child of guest_two_checkouts_run_one_guest_at_a_time"]
fn child_of_two_checkouts() {
    let Ok(label) = std::env::var(CHILD_ENV) else {
        return;
    };
    let out = guest::Vm::builder()
        .name(&format!("two-checkouts-{label}"))
        .run("sleep 5; echo slept")
        .expect("guest runs");
    let end = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(out.success(), "{}", out.log_tail());
    assert_eq!(out.stdout, "slept\n");
    let start = end - out.elapsed;
    println!("qemu-window {} {}", start.as_millis(), end.as_millis());
}

/// A `target/vm` of another checkout that already has the kernel and caches (links to this one's).
fn checkout_vm_dir(shared: &Path, vm: &Path) {
    std::fs::create_dir_all(vm).unwrap();
    for cache in ["kernel", "initramfs", "modules"] {
        std::os::unix::fs::symlink(shared.join(cache), vm.join(cache)).unwrap();
    }
    if let Ok(verdict) = std::fs::read(shared.join("accel-verdict")) {
        std::fs::write(vm.join("accel-verdict"), verdict).unwrap();
    }
}
