//! The driver against the kernel's own NVMe driver on the same emulated controller, in a QEMU guest:
//! through vfio-pci behind the emulated IOMMU and through uio_pci_generic without it.

use guest::{Disk, Output, Vm};
use serde_json::Value;

/// Shell helpers: `$BDF` of the NVMe function, `bind DRIVER`, `wait_disk`, and the kernel's view
/// of the device printed as `KERNEL serial=.. model=.. sectors=..` before anything is unbound.
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
wait_disk() {
    i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    [ -b /dev/nvme0n1 ] || { echo "no /dev/nvme0n1"; exit 1; }
}
wait_disk
echo "KERNEL serial=$(sed 's/ *$//' /sys/class/nvme/nvme0/serial | tr ' ' _)" \
     "model=$(sed 's/ *$//' /sys/class/nvme/nvme0/model | tr ' ' _)" \
     "sectors=$(cat /sys/block/nvme0n1/size)"
echo 32 > /proc/sys/vm/nr_hugepages
"#;

/// A 64 MiB namespace of 512-byte blocks.
const DISK_BYTES: u64 = 64 << 20;

fn run(iommu: bool, body: &str) -> Output {
    let out = Vm::builder()
        .nvme(Disk::sparse(DISK_BYTES))
        .iommu(iommu)
        .static_bin("nvme", "nvme-tool")
        .run(&format!("{PRELUDE}\n{body}"))
        .expect("the guest runs");
    println!("{}", out.log_tail());
    out
}

/// The value of `key=` on the line starting with `prefix`.
fn field<'a>(out: &'a Output, prefix: &str, key: &str) -> &'a str {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix}\n{}", out.log_tail()));
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        + key.len()
        + 1;
    line[at..].split_whitespace().next().unwrap_or("")
}

/// The JSON document printed on the line after the marker line `marker`.
fn json_after(out: &Output, marker: &str) -> Value {
    let mut lines = out.stdout.lines().skip_while(|l| l.trim() != marker);
    let text = lines
        .nth(1)
        .unwrap_or_else(|| panic!("no output after {marker}\n{}", out.log_tail()));
    serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{marker}: {e} in {text:?}\n{}", out.log_tail()))
}

/// The same checks through either binding: identify equals the kernel's view, data crosses
/// between the kernel's driver and ours in both directions (3 MiB one way, so the DMA buffer spans
/// more than one hugepage under uio; an unaligned 96 KiB the other), and a random mixed workload
/// verifies.
fn matches_the_kernel_driver(iommu: bool, driver: &str, mode: &str) {
    let body = format!(
        r#"
head -c 3149824 /dev/urandom > /tmp/kernel.bin
dd if=/tmp/kernel.bin of=/dev/nvme0n1 bs=4096 seek=100 oflag=direct 2>/dev/null || exit 1
head -c 98304 /dev/urandom > /tmp/ours.bin
bind {driver}
DEV={mode}:$BDF
echo IDENTIFY; nvme-tool --device $DEV identify --json | tr -d '\n'; echo
nvme-tool --device $DEV read --lba 800 --blocks 6152 --out /tmp/kernel.back || exit 1
cmp /tmp/kernel.bin /tmp/kernel.back && echo KERNEL_TO_OURS=same
echo BENCH; nvme-tool --device $DEV bench --rw randrw --bs 4k --iodepth 16 --runtime 2 --size 2M --verify --json | tr -d '\n'; echo
nvme-tool --device $DEV write --lba 16385 --input /tmp/ours.bin || exit 1
bind nvme
wait_disk
dd if=/dev/nvme0n1 of=/tmp/ours.back bs=512 skip=16385 count=192 iflag=direct 2>/dev/null || exit 1
cmp /tmp/ours.bin /tmp/ours.back && echo OURS_TO_KERNEL=same
"#
    );
    let out = run(iommu, &body);
    assert!(out.success(), "{}", out.log_tail());

    let id = json_after(&out, "IDENTIFY");
    let ns = &id["namespaces"][0];
    assert_eq!(id["serial"].as_str(), Some(field(&out, "KERNEL", "serial")));
    assert_eq!(
        id["model"].as_str().map(|m| m.replace(' ', "_")).as_deref(),
        Some(field(&out, "KERNEL", "model"))
    );
    let sectors: u64 = field(&out, "KERNEL", "sectors").parse().unwrap();
    assert_eq!(ns["bytes"].as_u64(), Some(sectors * 512));
    assert_eq!(sectors * 512, DISK_BYTES);

    assert!(
        out.stdout.contains("KERNEL_TO_OURS=same"),
        "{}",
        out.log_tail()
    );
    assert!(
        out.stdout.contains("OURS_TO_KERNEL=same"),
        "{}",
        out.log_tail()
    );

    let bench = json_after(&out, "BENCH");
    assert!(bench["ios"].as_u64().unwrap_or(0) > 0, "{bench}");
    assert_eq!(bench["errors"].as_u64(), Some(0), "{bench}");
    assert_eq!(bench["verify_errors"].as_u64(), Some(0), "{bench}");
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_vfio_behind_the_iommu_matches_the_kernel_driver() {
    matches_the_kernel_driver(true, "vfio-pci", "vfio");
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_uio_without_iommu_matches_the_kernel_driver() {
    matches_the_kernel_driver(false, "uio_pci_generic", "uio");
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_lba_range_past_the_namespace_is_an_error() {
    let blocks = DISK_BYTES / 512;
    let body = format!(
        r#"
bind uio_pci_generic
DEV=uio:$BDF
nvme-tool --device $DEV read --lba {last} --blocks 1 --out /tmp/last; echo "LAST=$?"
nvme-tool --device $DEV read --lba {blocks} --blocks 1 --out /tmp/x; echo "READ_PAST=$?"
nvme-tool --device $DEV read --lba {last} --blocks 2 --out /tmp/x; echo "READ_ACROSS=$?"
nvme-tool --device $DEV write --lba {blocks} --pattern 7 --blocks 8; echo "WRITE_PAST=$?"
nvme-tool --device $DEV read --lba 18446744073709551615 --blocks 1 --out /tmp/x; echo "READ_MAX=$?"
"#,
        last = blocks - 1
    );
    let out = run(false, &body);
    assert!(out.success(), "{}", out.log_tail());
    // 1 is a reported error; a panic would exit with 101, a hang would miss the guest's deadline.
    for mark in [
        "LAST=0",
        "READ_PAST=1",
        "READ_ACROSS=1",
        "WRITE_PAST=1",
        "READ_MAX=1",
    ] {
        assert!(
            out.stdout.contains(mark),
            "missing {mark}\n{}",
            out.log_tail()
        );
    }
    assert!(out.stdout.contains("past the end"), "{}", out.log_tail());
    assert!(!out.stdout.contains("panicked"), "{}", out.log_tail());
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_device_that_disappears_gives_an_error() {
    let out = run(
        false,
        r#"
bind uio_pci_generic
DEV=uio:$BDF
nvme-tool --device $DEV bench --rw randread --iodepth 8 --runtime 30 --json > /tmp/bench.out 2>&1 &
PID=$!
sleep 3
echo 1 > /sys/bus/pci/devices/$BDF/remove
wait $PID; echo "GONE_MID_RUN=$?"
cat /tmp/bench.out
nvme-tool --device $DEV identify; echo "GONE_BEFORE_OPEN=$?"
"#,
    );
    assert!(out.success(), "{}", out.log_tail());
    assert!(
        out.stdout.contains("GONE_MID_RUN=1"),
        "the run must fail with an error, not succeed or panic\n{}",
        out.log_tail()
    );
    assert!(
        out.stdout.contains("GONE_BEFORE_OPEN=1"),
        "{}",
        out.log_tail()
    );
    assert!(out.stdout.contains("no PCI device"), "{}", out.log_tail());
    assert!(!out.stdout.contains("panicked"), "{}", out.log_tail());
    // The removed function's config space is gone, so its Bus Master cannot be cleared: every
    // page the controller knew is leaked (and said so), none given back to be reused.
    assert!(
        out.stdout.contains("its DMA could not be stopped"),
        "{}",
        out.log_tail()
    );
    assert!(out.stdout.contains("leaking"), "{}", out.log_tail());
}
