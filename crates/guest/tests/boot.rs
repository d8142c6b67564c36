//! The guest boots, reports the unpacked kernel's version, and a hung guest is killed at its deadline.

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_boots_and_reports_kernel_version() {
    let out = guest::Vm::builder()
        .run("uname -r; cat /proc/cmdline")
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    let kernel = guest::Kernel::find().expect("the harness installed the kernel");
    assert_eq!(
        out.stdout.lines().next(),
        Some(kernel.version.as_str()),
        "{}",
        out.log_tail()
    );
    assert!(out.stdout.contains("console=ttyS0"), "{}", out.log_tail());
}

/// Under TCG the guest's CPU does not offer ERMS, whose `rep movsb` TCG runs a byte at a time (see
/// `guest::TCG_CPU`): the kernel then copies and clears with wider instructions.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_tcg_cpu_has_no_erms() {
    let out = guest::Vm::builder()
        .accel(guest::Accel::Tcg)
        .run("grep -m1 '^flags' /proc/cpuinfo")
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    let flags: Vec<&str> = out.stdout.split_whitespace().collect();
    assert!(flags.contains(&"sse2"), "no CPU flags: {}", out.stdout);
    assert!(!flags.contains(&"erms"), "{}", out.stdout);
}

/// A guest that never finishes, although it keeps printing, is killed at the overall ceiling; the error
/// says it was running the script and quotes its last output, and no QEMU is left behind.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_endless_script_is_killed_at_the_ceiling() {
    let name = format!("endless-{}", std::process::id());
    let err = guest::Vm::builder()
        .name(&name)
        .timeout(std::time::Duration::from_secs(2))
        .run("stage forever; while :; do echo still-going; sleep 0.5; done")
        .expect_err("an endless script must hit the ceiling");
    let guest::Error::Timeout {
        stage,
        step,
        pid,
        limit,
        slowdown,
        ..
    } = &err
    else {
        panic!("expected the ceiling, got: {err}");
    };
    assert_eq!(*stage, guest::Stage::Script.describe());
    assert_eq!(step.as_deref(), Some("forever"));
    assert_eq!(
        *limit,
        (std::time::Duration::from_secs(2) * guest::CEILING_SLACK).mul_f64(*slowdown)
    );
    let message = err.to_string();
    assert!(message.contains("still-going"), "{message}");
    assert!(message.contains("running the script"), "{message}");
    let still_there = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(&name));
    assert!(!still_there, "QEMU (pid {pid}) still runs");
    assert_eq!(qemus_named(&name), Vec::<u32>::new());
}

/// Pids of processes whose command line mentions `name`.
fn qemus_named(name: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("qemu-system") && cmdline.contains(name) {
            pids.push(pid);
        }
    }
    pids
}
