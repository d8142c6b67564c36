//! `nvme-ublk` in a QEMU guest: the controller, bound to vfio-pci behind the emulated IOMMU and
//! driven by our driver, served as `/dev/ublkb0` to the kernel's block layer, and checked against
//! the kernel's own NVMe driver on the same device.

use guest::{Disk, Output, Vm};

/// Shell helpers: `$BDF` of the NVMe function, `bind DRIVER`, `wait_for PATH`, `start_daemon`
/// (which sets `$DAEMON` and waits for `/dev/ublkb0`) and `stop_daemon` (SIGTERM, then the exit
/// status as `DAEMON_EXIT=N`).
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
wait_for() {
    i=0; while [ ! -b "$1" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
    [ -b "$1" ] || { echo "no $1"; exit 1; }
}
start_daemon() {
    nvme-ublk --device "vfio:$BDF" "$@" > /tmp/daemon.out 2> /tmp/daemon.err &
    DAEMON=$!
    wait_for /dev/ublkb0
}
stop_daemon() {
    kill -TERM "$DAEMON"
    wait "$DAEMON"
    echo "DAEMON_EXIT=$?"
    cat /tmp/daemon.err
    i=0; while [ -e /dev/ublkb0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    [ -e /dev/ublkb0 ] && echo UBLK_DEVICE_LEFT
    true
}
wait_for /dev/nvme0n1
bind vfio-pci
"#;

/// A 64 MiB namespace of 512-byte blocks.
const DISK_BYTES: u64 = 64 << 20;

fn run(body: &str) -> Output {
    let out = Vm::builder()
        .nvme(Disk::sparse(DISK_BYTES))
        .iommu(true)
        .static_bin("nvme-ublk", "nvme-ublk")
        .host_program("/usr/bin/fio")
        .host_program("/usr/sbin/mkfs.ext4")
        .host_program("/usr/sbin/fsck.ext4")
        .host_program("/usr/sbin/blkdiscard")
        .timeout(std::time::Duration::from_secs(400))
        .run(&format!("{PRELUDE}\n{body}"))
        .expect("the guest runs");
    println!("{}", out.log_tail());
    out
}

fn has(out: &Output, line: &str) -> bool {
    out.stdout.lines().any(|l| l.trim() == line)
}

/// One boot: the device's size, fio --verify at QD1 and QD32 (two queues), discard and
/// write-zeroes reading back zeroes, an ext4 file system with a checksummed tree made through
/// ublk, a clean stop, then fsck and every checksum through the kernel's driver.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_filesystem_made_through_ublk_checks_out_through_the_kernel_driver() {
    let body = r#"
start_daemon --queues 2 --depth 32
echo "SIZE=$(blockdev --getsize64 /dev/ublkb0)"
fio --name=qd1 --filename=/dev/ublkb0 --direct=1 --ioengine=io_uring --rw=randwrite --bs=4k \
    --size=8m --iodepth=1 --verify=crc32c --verify_fatal=1 > /tmp/fio1 2>&1 && echo FIO_QD1=ok || cat /tmp/fio1
fio --name=qd32 --filename=/dev/ublkb0 --direct=1 --ioengine=io_uring --rw=randwrite --bs=4k \
    --offset=8m --size=16m --numjobs=2 --offset_increment=16m --iodepth=32 \
    --verify=crc32c --verify_fatal=1 > /tmp/fio32 2>&1 && echo FIO_QD32=ok || cat /tmp/fio32
head -c 1048576 /dev/urandom > /tmp/rand
dd if=/tmp/rand of=/dev/ublkb0 bs=64k seek=16 oflag=direct 2>/dev/null
dd if=/tmp/rand of=/dev/ublkb0 bs=64k seek=48 oflag=direct 2>/dev/null
blkdiscard -z -o 1048576 -l 1048576 /dev/ublkb0 && echo WRITE_ZEROES_DONE
blkdiscard -o 3145728 -l 1048576 /dev/ublkb0 && echo DISCARD_DONE
dd if=/dev/ublkb0 bs=64k skip=16 count=16 iflag=direct 2>/dev/null | cmp - /dev/zero -n 1048576 && echo WRITE_ZEROES_READ_ZERO
dd if=/dev/ublkb0 bs=64k skip=48 count=16 iflag=direct 2>/dev/null | cmp - /dev/zero -n 1048576 && echo DISCARD_READ_ZERO
mkfs.ext4 -q -F /dev/ublkb0 || exit 1
mkdir -p /mnt/fs && mount -t ext4 /dev/ublkb0 /mnt/fs || exit 1
i=0
while [ $i -lt 40 ]; do
    mkdir -p /mnt/fs/d$((i % 5))
    head -c $(( (i * 7919 % 300) * 1024 + i * 13 )) /dev/urandom > /mnt/fs/d$((i % 5))/f$i
    i=$((i+1))
done
(cd /mnt/fs && md5sum d*/f* > /tmp/sums)
echo "FILES=$(wc -l < /tmp/sums)"
umount /mnt/fs || exit 1
stop_daemon
bind nvme
wait_for /dev/nvme0n1
fsck.ext4 -fn /dev/nvme0n1 > /tmp/fsck 2>&1 && echo FSCK=clean || cat /tmp/fsck
mount -t ext4 -o ro /dev/nvme0n1 /mnt/fs || exit 1
(cd /mnt/fs && md5sum -c /tmp/sums > /tmp/check 2>&1) && echo SUMS=match || cat /tmp/check
umount /mnt/fs
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    let expect = [
        format!("SIZE={DISK_BYTES}"),
        "FIO_QD1=ok".into(),
        "FIO_QD32=ok".into(),
        "WRITE_ZEROES_DONE".into(),
        "DISCARD_DONE".into(),
        "WRITE_ZEROES_READ_ZERO".into(),
        "DISCARD_READ_ZERO".into(),
        "FILES=40".into(),
        "DAEMON_EXIT=0".into(),
        "FSCK=clean".into(),
        "SUMS=match".into(),
    ];
    for line in expect {
        assert!(
            has(&out, &line),
            "no {line:?} in the guest's output\n{}",
            out.log_tail()
        );
    }
    assert!(!has(&out, "UBLK_DEVICE_LEFT"), "{}", out.log_tail());
}
