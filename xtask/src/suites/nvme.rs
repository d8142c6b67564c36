//! Suites of the `nvme` area: the kernel-level tests of `hw` and of the driver in the QEMU guest.

use anyhow::Result;

use super::Suite;
use crate::cmd::{Tally, cargo_test};

pub fn suites() -> Vec<Suite> {
    vec![
        Suite {
            name: "hw-guest",
            about: "hw through uio_pci_generic and vfio-pci (behind the emulated IOMMU) in the guest",
            needs_guest: true,
            run: hw_guest,
        },
        Suite {
            name: "nvme-guest",
            about: "the userspace NVMe driver against the kernel's driver on the same device, in the guest",
            needs_guest: true,
            run: nvme_guest,
        },
        Suite {
            name: "nvme-ublk-guest",
            about: "nvme-ublk: the driver as /dev/ublkb0 (fio verify, discard, ext4 both ways across drivers, uio, SIGKILL, a dead disk still mounted, recovery by a new daemon, short of descriptors)",
            needs_guest: true,
            run: nvme_ublk_guest,
        },
    ]
}

fn guest_tests(package: &str) -> Result<Tally> {
    cargo_test(
        &[
            "test",
            "-p",
            package,
            "--test",
            "guest",
            "--",
            "--ignored",
            "guest_",
            "--test-threads=1",
        ],
        &[],
    )
}

fn hw_guest() -> Result<Tally> {
    guest_tests("hw")
}

fn nvme_guest() -> Result<Tally> {
    guest_tests("nvme")
}

fn nvme_ublk_guest() -> Result<Tally> {
    guest_tests("nvme-ublk")
}
