//! `hw` against the kernel in a QEMU guest: uio_pci_generic without an IOMMU and vfio-pci behind
//! the emulated Intel IOMMU, checked against what the kernel's own NVMe driver reports.

use guest::{Disk, Output, Vm};

/// Shell helpers: `$BDF` of the NVMe function and `bind DRIVER`.
const PRELUDE: &str = r#"
set -u
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/class")" = 0x010802 ] && BDF=$(basename "$d")
done
bind() {
    [ -e "/sys/bus/pci/devices/$BDF/driver" ] && echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
    echo "$1" > "/sys/bus/pci/devices/$BDF/driver_override"
    echo "$BDF" > /sys/bus/pci/drivers_probe
}
i=0; while [ ! -e /sys/class/nvme/nvme0/serial ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
echo "KERNEL serial=$(cat /sys/class/nvme/nvme0/serial | tr -d ' ')"
"#;

fn run(iommu: bool, body: &str) -> Output {
    let out = Vm::builder()
        .nvme(Disk::sparse(64 << 20))
        .iommu(iommu)
        .static_bin("hw", "hw-probe")
        .run(&format!("{PRELUDE}\n{body}"))
        .expect("the guest runs");
    println!("{}", out.log_tail());
    out
}

/// The value of `key=` on the first line starting with `prefix`.
fn field<'a>(out: &'a Output, prefix: &str, key: &str) -> Option<&'a str> {
    let line = out.stdout.lines().find(|l| l.starts_with(prefix))?;
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..].split_whitespace().next()
}

fn assert_identify_matches_kernel(out: &Output) {
    assert!(out.success(), "{}", out.log_tail());
    let kernel = field(out, "KERNEL", "serial").expect("the kernel driver bound first");
    let ours = field(out, "hw-probe: IDENTIFY OK", "serial").expect("identify succeeded");
    assert_eq!(ours.trim_matches('"'), kernel);
    assert_eq!(kernel, "deadbeef");
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_identify_through_uio_with_hugepages() {
    let out = run(
        false,
        "echo 8 > /proc/sys/vm/nr_hugepages\nbind uio_pci_generic\nhw-probe uio $BDF && hw-probe uio $BDF",
    );
    assert_identify_matches_kernel(&out);
    assert_eq!(
        out.stdout.matches("IDENTIFY OK").count(),
        2,
        "re-opening works"
    );
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_identify_through_vfio_behind_the_iommu() {
    let out = run(
        true,
        "bind vfio-pci\nhw-probe vfio $BDF && hw-probe vfio $BDF",
    );
    assert_identify_matches_kernel(&out);
    assert_eq!(
        out.stdout.matches("IDENTIFY OK").count(),
        2,
        "re-opening works"
    );
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_misconfiguration_gives_clear_errors() {
    let out = run(
        false,
        r#"
hw-probe vfio $BDF; echo "STILL_NVME=$?"
bind uio_pci_generic
echo 0 > /proc/sys/vm/nr_hugepages
hw-probe uio $BDF; echo "NO_HUGEPAGES=$?"
hw-probe vfio $BDF; echo "NOT_VFIO=$?"
echo 1 > /sys/bus/pci/devices/$BDF/remove
hw-probe uio $BDF; echo "REMOVED=$?"
"#,
    );
    let text = &out.stdout;
    // Exit status 1 is a reported error; a panic would be 101.
    for (mark, message) in [
        ("STILL_NVME=1", "bound to nvme, not vfio-pci"),
        ("NO_HUGEPAGES=1", "nr_hugepages"),
        ("NOT_VFIO=1", "bound to uio_pci_generic, not vfio-pci"),
        ("REMOVED=1", "no PCI device"),
    ] {
        assert!(text.contains(mark), "missing {mark}\n{}", out.log_tail());
        assert!(
            text.contains(message),
            "missing {message:?}\n{}",
            out.log_tail()
        );
    }
    assert!(!text.contains("panicked"), "{}", out.log_tail());
}
