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
        .rerun_if_qemu_crashes()
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
fn guest_a_uio_function_has_one_owner_and_is_stopped_when_it_goes() {
    let out = run(
        false,
        r#"
echo 8 > /proc/sys/vm/nr_hugepages
bind uio_pci_generic
command() { od -An -tx2 -j4 -N2 /sys/bus/pci/devices/$BDF/config | tr -d ' '; }
hw-probe uio $BDF 600 > /tmp/first.out 2>&1 &
FIRST=$!
i=0; while ! grep -q holding /tmp/first.out && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
cat /tmp/first.out
echo "HELD_COMMAND=$(command)"
hw-probe uio $BDF; echo "SECOND=$?"
kill -9 $FIRST; wait $FIRST
echo "KILLED_COMMAND=$(command)"
hw-probe uio $BDF; echo "AFTER=$?"
echo "CLOSED_COMMAND=$(command)"
"#,
    );
    assert!(out.success(), "{}", out.log_tail());
    let text = &out.stdout;
    let command = |key: &str| {
        let value = field(&out, key, key).unwrap_or_else(|| panic!("no {key}\n{text}"));
        u16::from_str_radix(value, 16).expect("a hex Command register")
    };
    assert_ne!(
        command("HELD_COMMAND") & 4,
        0,
        "Bus Master on while held\n{text}"
    );
    assert!(
        text.contains("SECOND=1"),
        "a second open is refused\n{text}"
    );
    assert!(text.contains("already open"), "{text}");
    assert_eq!(
        command("KILLED_COMMAND") & 4,
        0,
        "a killed owner's device stops mastering the bus\n{text}"
    );
    assert!(
        text.contains("AFTER=0"),
        "reopened once the owner is gone\n{text}"
    );
    assert_eq!(
        command("CLOSED_COMMAND") & 4,
        0,
        "Bus Master cleared on close\n{text}"
    );
    assert_eq!(text.matches("IDENTIFY OK").count(), 2, "{text}");
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
