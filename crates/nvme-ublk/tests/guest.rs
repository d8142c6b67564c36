//! `nvme-ublk` in a QEMU guest: the controller, bound to vfio-pci behind the emulated IOMMU and
//! driven by our driver, served as `/dev/ublkb0` to the kernel's block layer, and checked against
//! the kernel's own NVMe driver on the same device.

use guest::{Disk, Output, Vm};

/// Shell helpers: `$BDF` of the NVMe function, `bind DRIVER`, `wait_for PATH`, `start_daemon`
/// (which serves `$DEVICE`, `vfio:$BDF` unless changed, sets `$DAEMON` and waits for the device's
/// start to return and `/dev/ublkb0`), `stop_daemon` (SIGTERM, then the exit status as `DAEMON_EXIT=N`), `walk_fds`,
/// `fill_tree` and `check_tree`.
const PRELUDE: &str = r#"
set -u
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/class")" = 0x010802 ] && BDF=$(basename "$d")
done
DEVICE="vfio:$BDF"
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
    : > /tmp/daemon.out
    nvme-ublk --device "$DEVICE" "$@" > /tmp/daemon.out 2> /tmp/daemon.err &
    DAEMON=$!
    # The device's path is printed once its start has returned. /dev/ublkb0 appears before that,
    # during the kernel's partition scan; a test that killed the daemon then left 6.12 hung once.
    i=0; while [ ! -s /tmp/daemon.out ] && kill -0 "$DAEMON" 2>/dev/null && [ $i -lt 200 ]; do
        sleep 0.1; i=$((i+1))
    done
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
# walk_fds FROM TENTHS ARGS...: runs `nvme-ublk --device vfio:$BDF ARGS` under `ulimit -n` FROM,
# FROM+1, ... up to 48, until it serves. A limit where it does not prints FAILED_AT=N (it exited)
# or HUNG_AT=N (neither served nor exited within TENTHS tenths of a second). The first that serves
# calls the caller's `served N`, with the daemon as $PID.
walk_fds() {
    n=$1; tenths=$2; shift 2
    while [ $n -le 48 ]; do
        rm -f /tmp/d.out
        (ulimit -n $n && exec nvme-ublk --device "vfio:$BDF" "$@") > /tmp/d.out 2> /tmp/d.err &
        PID=$!
        i=0
        while kill -0 $PID 2>/dev/null && [ ! -s /tmp/d.out ] && [ $i -lt $tenths ]; do
            sleep 0.1; i=$((i+1))
        done
        if [ -s /tmp/d.out ]; then
            served $n
            return
        elif kill -0 $PID 2>/dev/null; then
            echo "HUNG_AT=$n: $(tail -n 1 /tmp/d.err)"
            kill -KILL $PID; wait $PID
        else
            wait $PID; echo "FAILED_AT=$n EXIT=$?: $(grep '^nvme-ublk:' /tmp/d.err | head -n 1)"
        fi
        n=$((n+1))
    done
}
# fill_tree DIR: 40 files of assorted sizes in 5 directories, their checksums in /tmp/sums.
fill_tree() {
    i=0
    while [ $i -lt 40 ]; do
        mkdir -p "$1/d$((i % 5))"
        head -c $(( (i * 7919 % 300) * 1024 + i * 13 )) /dev/urandom > "$1/d$((i % 5))/f$i"
        i=$((i+1))
    done
    (cd "$1" && md5sum d*/f* > /tmp/sums)
    echo "FILES=$(wc -l < /tmp/sums)"
}
# check_tree DEV: fsck.ext4 -fn of DEV, then every checksum of /tmp/sums through a read-only mount.
check_tree() {
    /usr/sbin/fsck.ext4 -fn "$1" > /tmp/fsck 2>&1 && echo FSCK=clean || cat /tmp/fsck
    mount -t ext4 -o ro "$1" /mnt/fs || exit 1
    (cd /mnt/fs && md5sum -c /tmp/sums > /tmp/check 2>&1) && echo SUMS=match || cat /tmp/check
    umount /mnt/fs
}
mkdir -p /mnt/fs
wait_for /dev/nvme0n1
"#;

/// A 64 MiB namespace of 512-byte blocks.
const DISK_BYTES: u64 = 64 << 20;

/// Runs `body` in a guest whose controller sits behind the emulated IOMMU (for vfio-pci).
fn run(body: &str) -> Output {
    run_with_iommu(true, body)
}

fn run_with_iommu(iommu: bool, body: &str) -> Output {
    let out = Vm::builder()
        .nvme(Disk::sparse(DISK_BYTES))
        .iommu(iommu)
        .static_bin("nvme-ublk", "nvme-ublk")
        .host_program("/usr/bin/fio")
        .host_program("/usr/sbin/mkfs.ext4")
        .host_program("/usr/sbin/fsck.ext4")
        .host_program("/usr/sbin/blkdiscard")
        .timeout(std::time::Duration::from_secs(400))
        .rerun_if_qemu_crashes()
        .run(&format!("{PRELUDE}\n{body}"))
        .expect("the guest runs");
    println!("{}", out.log_tail());
    out
}

/// A new daemon served `/dev/ublkb0` again (`NEW_DEVICE=`), the file written before the old one
/// died read back (`FILE=kept`), and the new daemon stopped cleanly.
fn assert_served_again_with_the_file(out: &Output) {
    assert_eq!(
        value(out, "NEW_DEVICE="),
        "/dev/ublkb0",
        "{}",
        out.log_tail()
    );
    assert!(has(out, "FILE=kept"), "{}", out.log_tail());
    assert!(has(out, "DAEMON_EXIT=0"), "{}", out.log_tail());
}

fn has(out: &Output, line: &str) -> bool {
    out.stdout.lines().any(|l| l.trim() == line)
}

/// The rest of the guest's first output line that starts with `key`.
fn value(out: &Output, key: &str) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in the guest's output\n{}", out.log_tail()))
        .to_string()
}

/// One boot: the device's size, fio --verify at QD1 and QD32 (two queues), discard accepted and
/// write-zeroes reading back zeroes (the emulated disk ignores discards, so discarded blocks keep
/// their data), an ext4 file system with a checksummed tree made through
/// ublk, a clean stop, then fsck and every checksum through the kernel's driver.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_filesystem_made_through_ublk_checks_out_through_the_kernel_driver() {
    let body = r#"
bind vfio-pci
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
/usr/sbin/blkdiscard -z -o 1048576 -l 1048576 /dev/ublkb0 && echo WRITE_ZEROES_DONE
/usr/sbin/blkdiscard -o 3145728 -l 1048576 /dev/ublkb0 && echo DISCARD_DONE
ZERO=$(head -c 1048576 /dev/zero | md5sum | cut -d' ' -f1)
sum() { dd if=/dev/ublkb0 bs=64k skip="$1" count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1; }
[ "$(sum 16)" = "$ZERO" ] && echo WRITE_ZEROES_READ_ZERO
[ "$(sum 48)" = "$ZERO" ] && echo DISCARD_READ_ZERO
/usr/sbin/mkfs.ext4 -q -F /dev/ublkb0 || exit 1
mount -t ext4 /dev/ublkb0 /mnt/fs || exit 1
fill_tree /mnt/fs
umount /mnt/fs || exit 1
ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON/stat"; }
T0=$(ticks); sleep 5; echo "IDLE_TICKS=$(( $(ticks) - T0 ))"
stop_daemon
bind nvme
wait_for /dev/nvme0n1
check_tree /dev/nvme0n1
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
    // An idle daemon sleeps: over 5 s it may use a few clock ticks (of 100 per second), where a
    // polling thread would use about 500.
    let idle: u64 = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("IDLE_TICKS="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no IDLE_TICKS\n{}", out.log_tail()));
    assert!(idle < 10, "the idle daemon used {idle} ticks in 5 s");
}

/// Interrupt mode (one MSI-X vector per queue through vfio): fio --verify at QD1 and QD32 over
/// two queues, and an idle daemon that uses (almost) no CPU. The same random-read load then runs
/// in both modes, and the daemon's CPU time per I/O is printed for each.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_interrupt_mode_passes_fio_verify_and_sleeps_when_idle() {
    let body = r#"
bind vfio-pci
ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON/stat"; }
ios() { awk '{ print $1 + $5 }' /sys/block/ublkb0/stat; }
load() {
    T0=$(ticks); I0=$(ios)
    fio --name=load --filename=/dev/ublkb0 --direct=1 --ioengine=io_uring --rw=randread --bs=4k \
        --iodepth=32 --size=48m --time_based --runtime=3 > /dev/null 2>&1 || echo "LOAD_FAILED=$1"
    echo "$1_TICKS=$(( $(ticks) - T0 ))"
    echo "$1_IOS=$(( $(ios) - I0 ))"
}
start_daemon --interrupts --queues 2 --depth 32
grep -q '(interrupts, shadow doorbells)' /tmp/daemon.err && echo SAYS_INTERRUPTS
fio --name=qd1 --filename=/dev/ublkb0 --direct=1 --ioengine=io_uring --rw=randwrite --bs=4k \
    --size=8m --iodepth=1 --verify=crc32c --verify_fatal=1 > /tmp/fio1 2>&1 && echo FIO_QD1=ok || cat /tmp/fio1
fio --name=qd32 --filename=/dev/ublkb0 --direct=1 --ioengine=io_uring --rw=randwrite --bs=4k \
    --offset=8m --size=16m --numjobs=2 --offset_increment=16m --iodepth=32 \
    --verify=crc32c --verify_fatal=1 > /tmp/fio32 2>&1 && echo FIO_QD32=ok || cat /tmp/fio32
load INTERRUPTS
# The completions came as MSI-X interrupts through vfio (the kernel names them vfio-msix).
echo "MSIX_INTERRUPTS=$(awk '/vfio-msix/ { for (i = 2; i <= 3; i++) n += $i } END { print n + 0 }' /proc/interrupts)"
T0=$(ticks); sleep 5; echo "IDLE_TICKS=$(( $(ticks) - T0 ))"
stop_daemon
start_daemon --poll --queues 2 --depth 32
load POLLING
stop_daemon
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    for line in [
        "SAYS_INTERRUPTS",
        "FIO_QD1=ok",
        "FIO_QD32=ok",
        "DAEMON_EXIT=0",
    ] {
        assert!(
            has(&out, line),
            "no {line:?} in the guest's output\n{}",
            out.log_tail()
        );
    }
    assert!(!out.stdout.contains("LOAD_FAILED"), "{}", out.log_tail());
    let value = |key: &str| -> u64 {
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in the guest's output\n{}", out.log_tail()))
    };
    // Clock ticks are 10 ms: an idle daemon may use 0.2 s over 5 s, where one polling thread
    // would use the whole 5 s.
    let msix = value("MSIX_INTERRUPTS=");
    let interrupt_ios = value("INTERRUPTS_IOS=");
    // One interrupt may carry several completions (one run: 7,163 for 44,407 I/Os, counting
    // the verify runs too); without them the one-second timer alone would allow a few I/Os.
    assert!(
        msix > 0 && msix * 50 >= interrupt_ios,
        "{msix} MSI-X interrupts for {interrupt_ios} I/Os in interrupt mode"
    );
    let idle = value("IDLE_TICKS=");
    assert!(idle < 20, "the idle daemon used {idle} ticks in 5 s");
    for mode in ["INTERRUPTS", "POLLING"] {
        let (ticks, ios) = (
            value(&format!("{mode}_TICKS=")),
            value(&format!("{mode}_IOS=")),
        );
        assert!(ios > 0, "{mode}: no I/O completed");
        println!(
            "{mode}: {ios} I/Os, {ticks} ticks of daemon CPU, {:.1} µs per I/O",
            ticks as f64 * 10_000.0 / ios as f64
        );
    }
}

/// The reverse trip: an ext4 file system with a checksummed tree made by the kernel's driver on
/// `/dev/nvme0n1`, then the controller rebound to vfio-pci and served by nvme-ublk: `fsck.ext4 -fn`
/// and every checksum through `/dev/ublkb0`.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_filesystem_made_by_the_kernel_driver_checks_out_through_ublk() {
    let body = r#"
/usr/sbin/mkfs.ext4 -q -F /dev/nvme0n1 || exit 1
mount -t ext4 /dev/nvme0n1 /mnt/fs || exit 1
fill_tree /mnt/fs
umount /mnt/fs || exit 1
bind vfio-pci
start_daemon --queues 2
check_tree /dev/ublkb0
stop_daemon
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    for line in ["FILES=40", "FSCK=clean", "SUMS=match", "DAEMON_EXIT=0"] {
        assert!(
            has(&out, line),
            "no {line:?} in the guest's output\n{}",
            out.log_tail()
        );
    }
}

/// Without an IOMMU: the controller bound to uio_pci_generic (hugepages for DMA) and served by
/// nvme-ublk, polling, with as many queues as it picks by default (one per vCPU: the guest has two,
/// the controller grants more). fio --verify at QD32 over those two queues, then the same blocks
/// read back through the kernel's driver; every queue thread keeps the daemon's CPUs (both vCPUs).
/// Before that, with too few hugepages for its buffers, the daemon fails with the reason and
/// leaves no ublk device.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_uio_controller_is_served_and_its_data_read_back_by_the_kernel_driver() {
    let body = r#"
# 40 MiB: enough to bring the controller up, not for 2 x 64 tags of 512 KiB.
echo 20 > /proc/sys/vm/nr_hugepages
bind uio_pci_generic
DEVICE="uio:$BDF"
nvme-ublk --device "$DEVICE" --queues 2 --depth 64 > /dev/null 2> /tmp/short.err &
SHORT=$!
i=0; while kill -0 $SHORT 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
if kill -0 $SHORT 2>/dev/null; then
    echo SHORT_STUCK; cat /tmp/short.err; kill -KILL $SHORT
else
    wait $SHORT; echo "SHORT_EXIT=$?"
fi
grep -q 'nr_hugepages' /tmp/short.err && echo SHORT_SAYS_HUGEPAGES
ls /dev | grep -q '^ublk[bc]' && echo SHORT_LEFT_DEVICE
echo 64 > /proc/sys/vm/nr_hugepages
start_daemon --depth 32
# Every thread of the daemon may run on both vCPUs, as the daemon may (libublk pins each queue's).
# The daemon sets that after the device starts, then prints the device's path.
i=0; while [ ! -s /tmp/daemon.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
for t in /proc/$DAEMON/task/*; do grep Cpus_allowed_list "$t/status" | cut -f2; done | sort -u |
    sed 's/^/THREAD_CPUS=/'
grep -q 'polling' /tmp/daemon.err && echo SAYS_POLLING
echo "HW_QUEUES=$(ls /sys/block/ublkb0/mq | wc -l)"
fio --name=qd32 --filename=/dev/ublkb0 --direct=1 --ioengine=io_uring --rw=randwrite --bs=4k \
    --size=8m --numjobs=2 --offset_increment=8m --iodepth=32 \
    --verify=crc32c --verify_fatal=1 > /tmp/fio32 2>&1 && echo FIO_QD32=ok || cat /tmp/fio32
head -c 1048576 /dev/urandom > /tmp/rand
dd if=/tmp/rand of=/dev/ublkb0 bs=64k seek=512 oflag=direct 2>/dev/null || exit 1
stop_daemon
bind nvme
wait_for /dev/nvme0n1
[ "$(dd if=/dev/nvme0n1 bs=64k skip=512 count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" = \
  "$(md5sum < /tmp/rand | cut -d' ' -f1)" ] && echo DATA=same
"#;
    let out = run_with_iommu(false, body);
    assert!(out.success(), "{}", out.log_tail());
    assert!(!has(&out, "SHORT_STUCK"), "{}", out.log_tail());
    assert!(!has(&out, "SHORT_LEFT_DEVICE"), "{}", out.log_tail());
    let thread_cpus: Vec<&str> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("THREAD_CPUS="))
        .collect();
    assert_eq!(thread_cpus, ["THREAD_CPUS=0-1"], "{}", out.log_tail());
    for line in [
        "SHORT_EXIT=1",
        "SHORT_SAYS_HUGEPAGES",
        "SAYS_POLLING",
        "HW_QUEUES=2",
        "FIO_QD32=ok",
        "DAEMON_EXIT=0",
        "DATA=same",
    ] {
        assert!(
            has(&out, line),
            "no {line:?} in the guest's output\n{}",
            out.log_tail()
        );
    }
}

/// The daemon killed with SIGKILL during fio: fio ends with I/O errors instead of hanging, and a new
/// daemon, asked for the same id, removes the killed one's device and serves the data written
/// before as a fresh /dev/ublkb0.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_killed_daemon_fails_io_and_a_new_one_serves_again() {
    let body = r#"
bind vfio-pci
start_daemon
head -c 1048576 /dev/urandom > /tmp/rand
dd if=/tmp/rand of=/dev/ublkb0 bs=64k oflag=direct 2>/dev/null || exit 1
fio --name=busy --filename=/dev/ublkb0 --direct=1 --ioengine=io_uring --rw=randread --bs=4k \
    --iodepth=32 --time_based --runtime=60 > /tmp/fio 2>&1 &
FIO=$!
sleep 2
kill -KILL "$DAEMON"
START=$(cut -d. -f1 /proc/uptime)
wait "$FIO"
echo "FIO_STATUS=$?"
echo "FIO_ENDED_AFTER=$(( $(cut -d. -f1 /proc/uptime) - START ))"
wait "$DAEMON" 2>/dev/null
nvme-ublk --device "vfio:$BDF" --id 0 > /tmp/daemon2.out 2> /tmp/daemon.err &
DAEMON=$!
i=0; while [ ! -s /tmp/daemon2.out ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
DEV=$(head -n 1 /tmp/daemon2.out)
echo "NEW_DEVICE=$DEV"
wait_for "$DEV"
[ "$(dd if="$DEV" bs=64k count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)" = \
  "$(md5sum < /tmp/rand | cut -d' ' -f1)" ] && echo DATA=same
stop_daemon
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    assert_ne!(value(&out, "FIO_STATUS="), "0", "{}", out.log_tail());
    let ended: u64 = value(&out, "FIO_ENDED_AFTER=").parse().unwrap();
    // ublk fails the I/O of a dead server within its monitor period; fio's own runtime is 60 s.
    assert!(ended < 40, "fio took {ended} s to see the daemon gone");
    // The killed daemon's device was removed to add the new one under its id.
    assert_eq!(
        value(&out, "NEW_DEVICE="),
        "/dev/ublkb0",
        "{}",
        out.log_tail()
    );
    assert!(has(&out, "DATA=same"), "{}", out.log_tail());
    assert!(has(&out, "DAEMON_EXIT=0"), "{}", out.log_tail());
}

/// A killed daemon's device whose file system is still mounted cannot be removed until it is
/// unmounted: a new daemon asked for that id says so and exits, instead of hanging or failing with
/// an unrelated reason; once the file system is unmounted, the same command serves /dev/ublkb0.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_new_daemon_refuses_an_id_whose_dead_disk_is_mounted_and_serves_it_once_unmounted() {
    let body = r#"
bind vfio-pci
start_daemon --id 0
/usr/sbin/mkfs.ext4 -q /dev/ublkb0 && mount -t ext4 /dev/ublkb0 /mnt/fs || exit 1
echo kept > /mnt/fs/file && sync
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
nvme-ublk --device "vfio:$BDF" --id 0 > /tmp/d2.out 2> /tmp/d2.err &
PID=$!
i=0; while kill -0 $PID 2>/dev/null && [ ! -s /tmp/d2.out ] && [ $i -lt 400 ]; do sleep 0.1; i=$((i+1)); done
if [ -s /tmp/d2.out ]; then
    echo "SERVED_WHILE_MOUNTED=$(head -n 1 /tmp/d2.out)"; kill -TERM $PID; wait $PID
elif kill -0 $PID 2>/dev/null; then
    echo HUNG; cat /tmp/d2.err; kill -KILL $PID; wait $PID
else
    wait $PID; echo "HELD_EXIT=$?"; echo "HELD_ERROR=$(grep '^nvme-ublk:' /tmp/d2.err | head -n 1)"
fi
umount /mnt/fs
nvme-ublk --device "vfio:$BDF" --id 0 > /tmp/d3.out 2> /tmp/daemon.err &
DAEMON=$!
i=0; while kill -0 $DAEMON 2>/dev/null && [ ! -s /tmp/d3.out ] && [ $i -lt 400 ]; do sleep 0.1; i=$((i+1)); done
echo "NEW_DEVICE=$(head -n 1 /tmp/d3.out)"
cat /tmp/daemon.err
wait_for /dev/ublkb0
mount -t ext4 -o ro /dev/ublkb0 /mnt/fs && echo "FILE=$(cat /mnt/fs/file)" && umount /mnt/fs
stop_daemon
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    assert!(!has(&out, "HUNG"), "{}", out.log_tail());
    assert_eq!(value(&out, "HELD_EXIT="), "1", "{}", out.log_tail());
    let error = value(&out, "HELD_ERROR=");
    assert!(error.contains("ublk device 0 is still held"), "{error}");
    assert_served_again_with_the_file(&out);
}

/// `--delete` of a recoverable device whose daemon died while ext4 stayed mounted from its disk: the
/// deletion fails the disk's I/O and returns within seconds, saying the id stays taken until the
/// file system lets go, instead of waiting for the unmount. After the unmount a new daemon serves
/// the id again, and the file written before the kill reads back.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_delete_of_a_device_whose_disk_is_mounted_fails_its_io_without_waiting_for_the_unmount() {
    let body = r#"
bind vfio-pci
start_daemon --recoverable --id 0
/usr/sbin/mkfs.ext4 -q /dev/ublkb0 && mount -t ext4 /dev/ublkb0 /mnt/fs || exit 1
echo kept > /mnt/fs/file && sync
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
(nvme-ublk --delete 0 > /dev/null 2> /tmp/del.err; echo $? > /tmp/del.status) &
PID=$!
i=0; while kill -0 $PID 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
if kill -0 $PID 2>/dev/null; then
    echo DELETE_HUNG; cat /tmp/del.err; kill -KILL $PID
else
    echo "DELETE_EXIT=$(cat /tmp/del.status)"
    echo "DELETE_SAID=$(grep 'ublk device 0' /tmp/del.err | head -n 1)"
fi
wait $PID 2>/dev/null
[ -e /dev/ublkb0 ] || echo DISK_GONE
dd if=/dev/zero of=/mnt/fs/new bs=4096 count=1 oflag=direct 2> /dev/null
echo "WRITE_AFTER_DELETE=$?"
umount /mnt/fs
start_daemon --id 0
echo "NEW_DEVICE=$(head -n 1 /tmp/daemon.out)"
mount -t ext4 -o ro /dev/ublkb0 /mnt/fs && echo "FILE=$(cat /mnt/fs/file)" && umount /mnt/fs
stop_daemon
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    assert!(!has(&out, "DELETE_HUNG"), "{}", out.log_tail());
    assert_eq!(value(&out, "DELETE_EXIT="), "0", "{}", out.log_tail());
    let said = value(&out, "DELETE_SAID=");
    assert!(said.contains("stays taken"), "{said}\n{}", out.log_tail());
    assert!(has(&out, "DISK_GONE"), "{}", out.log_tail());
    assert_ne!(
        value(&out, "WRITE_AFTER_DELETE="),
        "0",
        "{}",
        out.log_tail()
    );
    assert_served_again_with_the_file(&out);
}

/// Under every limit on open files, from too few to add the ublk device up to enough for four
/// queues, the daemon either serves the device or exits with an error: a queue whose ring cannot
/// be made must not leave the device waiting to start (and the daemon deaf to SIGTERM). No ublk
/// device is left behind, and a daemon without the limit serves again. (The lower limits, which
/// stop the daemon before the device exists, end with errors too; each attempt brings the
/// controller up, so the walk starts where the device is added.)
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_daemon_short_of_file_descriptors_fails_instead_of_hanging() {
    let body = r#"
bind vfio-pci
served() {
    kill -TERM $PID; wait $PID; echo "SERVED_AT=$1 EXIT=$?"
}
walk_fds 8 300 --queues 4
sleep 1
echo "LEFT=$(ls /dev | grep -c '^ublkc')"
start_daemon --queues 2
dd if=/dev/ublkb0 of=/dev/null bs=64k count=16 iflag=direct 2>/dev/null && echo READ=ok
stop_daemon
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    let lines = |prefix: &str| -> Vec<&str> {
        out.stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(prefix))
            .collect()
    };
    assert_eq!(lines("HUNG_AT="), Vec::<&str>::new(), "{}", out.log_tail());
    let served = lines("SERVED_AT=");
    assert!(
        served.len() == 1 && served[0].ends_with("EXIT=0"),
        "{}",
        out.log_tail()
    );
    // The limits walked through the device's start, where the queue threads make their rings and
    // the main thread waits for them: some attempt failed there, with its reason.
    assert!(
        lines("FAILED_AT=").iter().any(|l| l.contains("EXIT=1")
            && (l.contains("running the ublk device") || l.contains("ublk queue"))),
        "{}",
        out.log_tail()
    );
    assert!(has(&out, "LEFT=0"), "{}", out.log_tail());
    assert!(has(&out, "READ=ok"), "{}", out.log_tail());
    assert!(has(&out, "DAEMON_EXIT=0"), "{}", out.log_tail());
}

/// Shell helper for the recovery tests: `busy_fio FILE` runs fio in the background (`$FIO`) for
/// 12 s: 4k direct random writes, 16 in flight, over 16 MiB, each batch of 256 read back and checked
/// (crc32c) as it goes.
const BUSY_FIO: &str = r#"
busy_fio() {
    fio --name=busy --filename="$1" --size=16m --direct=1 --ioengine=io_uring --rw=randwrite \
        --bs=4k --iodepth=16 --time_based --runtime=12 --verify=crc32c --verify_backlog=256 \
        > /tmp/fio 2>&1 &
    FIO=$!
}
"#;

/// A device added with `--recoverable --id 0` outlives its daemon. The daemon is killed with
/// SIGKILL while fio writes (direct, verified) to a file of the ext4 file system mounted from it:
/// the same command line, run again at once, takes the same /dev/ublkb0 over, and fio finishes
/// without an error and verifies its data. The file system, still mounted throughout, is then unmounted and checked
/// through the kernel's driver with the checksummed tree written before the kill.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_recoverable_device_survives_its_daemon_killed_under_io() {
    let body = format!(
        "{BUSY_FIO}{}",
        r#"
bind vfio-pci
SERVE="--recoverable --id 0 --queues 2 --depth 32"
start_daemon $SERVE
/usr/sbin/mkfs.ext4 -q /dev/ublkb0 || exit 1
mount -t ext4 /dev/ublkb0 /mnt/fs || exit 1
fill_tree /mnt/fs
sync
busy_fio /mnt/fs/data
sleep 2
# Stopped first, so that it dies holding requests it had taken from the kernel.
kill -STOP "$DAEMON"
sleep 1
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
# Restarted at once, as a service manager would: it waits until the kernel has let the dead
# daemon's device go.
nvme-ublk --device "vfio:$BDF" $SERVE > /tmp/daemon2.out 2> /tmp/daemon.err &
DAEMON=$!
i=0; while [ ! -s /tmp/daemon2.out ] && kill -0 "$DAEMON" 2>/dev/null && [ $i -lt 600 ]; do
    sleep 0.1; i=$((i+1))
done
echo "RECOVERED=$(head -n 1 /tmp/daemon2.out)"
wait "$FIO"
echo "FIO_STATUS=$?"
grep -q 'err= *0' /tmp/fio && echo FIO_NO_ERRORS || cat /tmp/fio
umount /mnt/fs && echo UNMOUNTED
stop_daemon
bind nvme
wait_for /dev/nvme0n1
check_tree /dev/nvme0n1
"#
    );
    let out = run(&body);
    assert!(out.success(), "{}", out.log_tail());
    assert!(has(&out, "FILES=40"), "{}", out.log_tail());
    assert_eq!(
        value(&out, "RECOVERED="),
        "/dev/ublkb0",
        "{}",
        out.log_tail()
    );
    assert_eq!(value(&out, "FIO_STATUS="), "0", "{}", out.log_tail());
    assert!(has(&out, "FIO_NO_ERRORS"), "{}", out.log_tail());
    assert!(has(&out, "UNMOUNTED"), "{}", out.log_tail());
    assert!(has(&out, "DAEMON_EXIT=0"), "{}", out.log_tail());
    assert!(!has(&out, "UBLK_DEVICE_LEFT"), "{}", out.log_tail());
    assert!(has(&out, "FSCK=clean"), "{}", out.log_tail());
    assert!(has(&out, "SUMS=match"), "{}", out.log_tail());
}

/// `--recover` refuses, before it touches the controller, a device that is missing, one added
/// without `--recoverable` (its daemon killed) and one still served. A recoverable device whose daemon was killed
/// holds fio's I/O (six seconds later fio has not failed); a daemon asked for its id without
/// `--recoverable` leaves it alone, and `--delete` gives it up, failing that I/O at once.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_recover_refuses_devices_it_cannot_take_and_delete_fails_waiting_io() {
    let body = format!(
        "{BUSY_FIO}{}",
        r#"
recover() {
    nvme-ublk --device "vfio:$BDF" --recover "$1" > /dev/null 2> /tmp/recover.err
    echo "$2=$? $(grep '^nvme-ublk:' /tmp/recover.err | head -n 1)"
}
bind vfio-pci
recover 7 MISSING
start_daemon
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
recover 0 PLAIN
start_daemon --recoverable --id 0
recover 0 LIVE
busy_fio /dev/ublkb0
sleep 2
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
sleep 6
kill -0 "$FIO" 2>/dev/null && echo FIO_WAITING
nvme-ublk --device "vfio:$BDF" --id 0 > /dev/null 2> /tmp/recover.err
echo "SAME_ID=$? $(grep '^nvme-ublk:' /tmp/recover.err | head -n 1)"
nvme-ublk --delete 0 && echo DELETED
START=$(cut -d. -f1 /proc/uptime)
wait "$FIO"
echo "FIO_STATUS=$?"
echo "FIO_ENDED_AFTER=$(( $(cut -d. -f1 /proc/uptime) - START ))"
[ -e /dev/ublkb0 ] || [ -e /dev/ublkc0 ] || echo DEVICE_GONE
"#
    );
    let out = run(&body);
    assert!(out.success(), "{}", out.log_tail());
    let refused = |key: &str, reason: &str| {
        let line = value(&out, key);
        assert!(
            line.starts_with("1 ") && line.contains(reason),
            "{key}{line}\n{}",
            out.log_tail()
        );
    };
    refused("MISSING=", "there is no ublk device 7");
    refused("PLAIN=", "not added with --recoverable");
    refused("LIVE=", "still served");
    // Asked for its id without --recoverable, a daemon leaves the waiting device alone.
    refused("SAME_ID=", "waits for a new daemon");
    assert!(has(&out, "FIO_WAITING"), "{}", out.log_tail());
    assert!(has(&out, "DELETED"), "{}", out.log_tail());
    assert_ne!(value(&out, "FIO_STATUS="), "0", "{}", out.log_tail());
    let ended: u64 = value(&out, "FIO_ENDED_AFTER=").parse().unwrap();
    assert!(ended < 10, "fio took {ended} s to fail after the delete");
    assert!(has(&out, "DEVICE_GONE"), "{}", out.log_tail());
}

/// Recovering a device short of file descriptors: under every `ulimit -n` from 10 up to the first
/// that serves, a recovering daemon either takes the device over or fails before it asks the
/// kernel for it. On the 6.12 guest kernel a recovery that fails after that request leaves a
/// device no daemon can recover again; here the device is recovered in the end, with its data and
/// its completions on MSI-X interrupts (the new daemon sets the vectors up again).
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_recovery_short_of_file_descriptors_fails_before_the_device_is_lost() {
    let body = r#"
bind vfio-pci
SERVE="--recoverable --id 0 --queues 2 --interrupts"
start_daemon $SERVE
head -c 1048576 /dev/urandom > /tmp/rand
dd if=/tmp/rand of=/dev/ublkb0 bs=64k oflag=direct 2>/dev/null || exit 1
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
served() {
    echo "SERVED_AT=$1 $(head -n 1 /tmp/d.out)"
    [ "$(dd if=/dev/ublkb0 bs=64k count=16 iflag=direct 2>/dev/null | md5sum)" = \
      "$(md5sum < /tmp/rand)" ] && echo DATA=same
    echo "VECTORS_USED=$(grep vfio-msix /proc/interrupts | awk '{ n = 0; for (i = 2; i <= 3; i++) n += $i; if (n > 0) c++ } END { print c + 0 }')"
    kill -TERM $PID; wait $PID; echo "EXIT=$?"
}
# Up to 40 s a limit: a recovery waits while the kernel still holds the dead daemon's device.
walk_fds 10 400 $SERVE
"#;
    let out = run(body);
    assert!(out.success(), "{}", out.log_tail());
    let lines = |prefix: &str| -> Vec<&str> {
        out.stdout
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(prefix))
            .collect()
    };
    assert_eq!(lines("HUNG_AT="), Vec::<&str>::new(), "{}", out.log_tail());
    assert!(
        !out.stdout.contains("refuses to recover"),
        "{}",
        out.log_tail()
    );
    // The walk reached the limits just short of the device's start.
    assert!(
        lines("FAILED_AT=")
            .iter()
            .any(|l| l.contains("EXIT=1") && l.contains("too few file descriptors")),
        "{}",
        out.log_tail()
    );
    assert_eq!(
        lines("SERVED_AT=").len(),
        1,
        "never recovered\n{}",
        out.log_tail()
    );
    assert!(lines("SERVED_AT=")[0].ends_with("/dev/ublkb0"));
    assert!(has(&out, "DATA=same"), "{}", out.log_tail());
    let vectors: u32 = value(&out, "VECTORS_USED=").parse().unwrap();
    assert!(vectors >= 1, "no MSI-X vector used\n{}", out.log_tail());
    assert!(has(&out, "EXIT=0"), "{}", out.log_tail());
}
