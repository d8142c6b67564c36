//! An emulated NVMe controller under the kernel's nvme driver, handed to vfio-pci (behind the emulated
//! IOMMU) or uio_pci_generic (without it), and back.

mod common;

use common::{assert_labelled, random_file, sha256};

/// Shell functions the scripts share: the controller's PCI address, rebinding, and waiting for a node.
const HELPERS: &str = r#"set -e
BDF=$(basename "$(readlink /sys/class/nvme/nvme0/device)")
driver() { basename "$(readlink "/sys/bus/pci/devices/$BDF/driver")"; }
bind() {
    echo "$BDF" > "/sys/bus/pci/devices/$BDF/driver/unbind"
    echo "$1" > "/sys/bus/pci/devices/$BDF/driver_override"
    echo "$BDF" > /sys/bus/pci/drivers_probe
}
await() {
    i=0
    while [ ! -e "$1" ]; do i=$((i + 1)); [ $i -lt 100 ] || return 1; sleep 0.1; done
}
test -b /dev/nvme0n1 && echo "kernel nvme0n1 $(driver)"
"#;

/// Rebinds to nvme and checks the block device comes back.
const BACK_TO_NVME: &str = r#"
bind nvme
await /dev/nvme0n1
test -b /dev/nvme0n1 && echo "again nvme0n1 $(driver)"
"#;

/// This process's memory-backed disk images (run directories end in `-PID-N`).
fn memory_disks() -> Vec<std::path::PathBuf> {
    let pid = format!("-{}-", std::process::id());
    std::fs::read_dir("/dev/shm/kangrejos-vm")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(&pid))
        .map(|e| e.path().join("nvme0.img"))
        .filter(|p| p.is_file())
        .collect()
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_memory_backed_disk_keeps_data_in_shared_memory_for_the_run_only() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let watcher = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            for _ in 0..600 {
                let found = memory_disks();
                if !found.is_empty() {
                    *seen.lock().unwrap() = found;
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
    };
    let out = guest::Vm::builder()
        .nvme(guest::Disk::memory(64 << 20))
        .run(
            "set -e; echo \"size $(cat /sys/block/nvme0n1/size)\"; \
             echo hello | dd of=/dev/nvme0n1 oflag=direct bs=512 conv=sync 2>/dev/null; \
             echo \"read $(dd if=/dev/nvme0n1 iflag=direct bs=512 count=1 2>/dev/null | head -c 5)\"; \
             sleep 3",
        )
        .expect("guest runs");
    watcher.join().unwrap();
    assert!(out.success(), "{}", out.log_tail());
    assert!(out.stdout.contains("size 131072\n"), "{}", out.log_tail());
    assert!(out.stdout.contains("read hello\n"), "{}", out.log_tail());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "no image in /dev/shm during the run: {seen:?}"
    );
    assert!(!seen[0].exists(), "{} outlived the run", seen[0].display());
    assert!(memory_disks().is_empty());
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_nvme_rebinds_to_vfio_pci_behind_the_iommu_and_back() {
    let script = format!(
        r#"{HELPERS}
bind vfio-pci
GROUP=$(basename "$(readlink "/sys/bus/pci/devices/$BDF/iommu_group")")
await "/dev/vfio/$GROUP"
test -c "/dev/vfio/$GROUP" && echo "vfio $(driver) /dev/vfio/$GROUP"
test ! -e /dev/nvme0n1 && echo "gone nvme0n1"
{BACK_TO_NVME}"#
    );
    let out = guest::Vm::builder()
        .nvme(guest::Disk::sparse(64 << 20))
        .iommu(true)
        .run(&script)
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    assert!(
        out.stdout.contains("kernel nvme0n1 nvme\n"),
        "{}",
        out.log_tail()
    );
    assert!(
        out.stdout.contains("vfio vfio-pci /dev/vfio/"),
        "{}",
        out.log_tail()
    );
    assert!(out.stdout.contains("gone nvme0n1\n"), "{}", out.log_tail());
    assert!(
        out.stdout.contains("again nvme0n1 nvme\n"),
        "{}",
        out.log_tail()
    );
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_nvme_rebinds_to_uio_pci_generic_without_iommu_and_back() {
    // An image the guest reads through the kernel driver and writes to: the namespace is this very file.
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    random_file(&image, 1 << 20);
    std::fs::File::options()
        .append(true)
        .open(&image)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let script = format!(
        r#"{HELPERS}
echo "first-mib $(head -c 1048576 /dev/nvme0n1 | sha256sum)"
echo guest-wrote-this | dd of=/dev/nvme0n1 bs=512 seek=2048 conv=fsync 2>/dev/null
bind uio_pci_generic
await /dev/uio0
test -c /dev/uio0 && echo "uio $(driver) $(cat /sys/class/uio/uio0/name)"
{BACK_TO_NVME}"#
    );
    let out = guest::Vm::builder()
        .nvme(guest::Disk::image(&image))
        .run(&script)
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    assert!(
        out.stdout.contains("kernel nvme0n1 nvme\n"),
        "{}",
        out.log_tail()
    );
    let first_mib = dir.path().join("first-mib");
    std::fs::write(&first_mib, &std::fs::read(&image).unwrap()[..1 << 20]).unwrap();
    assert_labelled(&out, "first-mib", &sha256(&first_mib));
    let written = &std::fs::read(&image).unwrap()[1 << 20..(1 << 20) + 17];
    assert_eq!(
        written, b"guest-wrote-this\n",
        "the guest's write in the image"
    );
    assert!(
        out.stdout.contains("uio uio_pci_generic uio_pci_generic\n"),
        "{}",
        out.log_tail()
    );
    assert!(
        out.stdout.contains("again nvme0n1 nvme\n"),
        "{}",
        out.log_tail()
    );
}
