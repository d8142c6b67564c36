//! `rnvme`, the Rust PCI NVMe driver (`kernel/rnvme/`), against the C `nvme` driver on the same QEMU
//! controller in one boot: the C driver binds it at boot, `driver_override` and `drivers_probe` hand it
//! to `rnvme` and back.

use std::time::Duration;

use guest::Disk;

/// The emulated namespace: 256 MiB of 512-byte blocks.
const DISK_BYTES: u64 = 256 << 20;

/// Shell functions for the guest: `to_rnvme` and `to_c` rebind the controller and wait for the disk,
/// whose name they leave in `$disk`.
const REBIND: &str = r#"
dev=$(basename "$(readlink -f /sys/block/nvme0n1/device/device)")
wait_disk() {
    i=0
    while [ $i -lt 100 ]; do
        disk=$(ls /sys/block | grep "^$1" | head -n 1)
        if [ -n "$disk" ] && [ -b /dev/$disk ]; then return 0; fi
        sleep 0.1; i=$((i+1))
    done
    echo "no $1 disk"; return 1
}
rebind() {
    echo $1 > /sys/bus/pci/devices/$dev/driver_override
    if [ -e /sys/bus/pci/devices/$dev/driver ]; then echo $dev > /sys/bus/pci/devices/$dev/driver/unbind; fi
    echo $dev > /sys/bus/pci/drivers_probe
    echo "bound=$(basename "$(readlink -f /sys/bus/pci/devices/$dev/driver)")"
}
to_rnvme() { rebind rnvme; wait_disk rnvme; }
to_c() { rebind nvme; wait_disk nvme; }
"#;

fn rnvme_guest() -> guest::VmBuilder {
    let kernel = guest::Kernel::find_rust().expect("run `cargo xtask kernel` first");
    guest::Vm::builder()
        .kernel(guest::KernelFlavor::Rust)
        .nvme(Disk::sparse(DISK_BYTES))
        .timeout(Duration::from_secs(300))
        .file(kernel.test_module("rnvme"), "/lib/modules/test/rnvme.ko")
        .rerun_if_qemu_crashes()
}

/// The value of the first `key=value` line.
fn value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

/// The value of the first `key=value` line; fails the test if there is none.
fn get<'a>(out: &'a str, key: &str) -> &'a str {
    value(out, key).unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

/// Runs `script` in `vm` and returns the guest's standard output; fails the test if the script did
/// not run to its end.
fn run(vm: guest::VmBuilder, script: &str) -> String {
    let out = vm.run(script).expect("guest runs");
    assert!(out.success(), "{}\n{}", out.stdout, out.log_tail());
    out.stdout
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_rnvme_identify_matches_the_c_driver_and_data_crosses_both_ways() {
    let script = format!(
        r#"set -eu
{REBIND}
c=/sys/block/nvme0n1
echo c_model="$(cat $c/device/model)"
echo c_serial="$(cat $c/device/serial)"
echo c_size=$(cat $c/size) c_lbs=$(cat $c/queue/logical_block_size)
# Patterns of sizes that need one page, two pages and PRP lists, and a 3 MiB one.
dd if=/dev/urandom of=/tmp/c3m bs=1M count=3 2>/dev/null
dd if=/dev/urandom of=/tmp/r512k bs=512k count=4 2>/dev/null
dd if=/dev/urandom of=/tmp/r8k bs=8k count=16 2>/dev/null
dd if=/dev/urandom of=/tmp/r512 bs=512 count=9 2>/dev/null
echo c3m=$(sha256sum < /tmp/c3m)
dd if=/tmp/c3m of=/dev/nvme0n1 bs=1M seek=1 oflag=direct 2>/dev/null
insmod /lib/modules/test/rnvme.ko
to_rnvme
r=/sys/block/$disk
echo r_disk=$disk
echo r_size=$(cat $r/size) r_lbs=$(cat $r/queue/logical_block_size) r_wc="$(cat $r/queue/write_cache)" r_fua=$(cat $r/queue/fua)
dmesg | grep 'rnvme.*blocks of' | sed 's/.*model /r_ident=model /'
echo c3m_via_rnvme=$(dd if=/dev/$disk bs=1M skip=1 count=3 iflag=direct 2>/dev/null | sha256sum)
dd if=/tmp/r512k of=/dev/$disk bs=512k seek=16 oflag=direct conv=fsync
dd if=/tmp/r8k of=/dev/$disk bs=8k seek=2048 oflag=direct conv=fsync
dd if=/tmp/r512 of=/dev/$disk bs=512 seek=65537 oflag=direct conv=fsync
sync
for f in r512k r8k r512; do echo $f=$(sha256sum < /tmp/$f); done
to_c
echo c_disk=$disk
echo r512k_via_c=$(dd if=/dev/$disk bs=512k skip=16 count=4 iflag=direct 2>/dev/null | sha256sum)
echo r8k_via_c=$(dd if=/dev/$disk bs=8k skip=2048 count=16 iflag=direct 2>/dev/null | sha256sum)
echo r512_via_c=$(dd if=/dev/$disk bs=512 skip=65537 count=9 iflag=direct 2>/dev/null | sha256sum)
# Unloading while bound shuts the controller down and removes the disk.
to_rnvme
rmmod rnvme && echo rmmod=ok
test -e /dev/$disk || echo disk=gone
echo shutdowns=$(dmesg | grep -c 'rnvme.*controller shut down')
"#
    );
    let s = &run(rnvme_guest(), &script);

    // Identify, as the C driver shows it in sysfs.
    let c_size = s
        .lines()
        .find_map(|l| l.strip_prefix("c_size="))
        .expect("c_size");
    let (c_sectors, c_lbs) = c_size.split_once(" c_lbs=").expect("c_lbs");
    let r_line = s
        .lines()
        .find_map(|l| l.strip_prefix("r_size="))
        .expect("r_size");
    assert!(
        r_line.starts_with(&format!("{c_sectors} r_lbs={c_lbs} ")),
        "rnvme disk differs from the C driver's ({c_size}): {r_line}"
    );
    assert_eq!(c_sectors, (DISK_BYTES / 512).to_string());
    assert!(r_line.contains("r_wc=write back r_fua=1"), "{r_line}");
    let ident = get(s, "r_ident");
    assert!(
        ident.contains(&format!(
            "model \"{}\", serial \"{}\"",
            get(s, "c_model"),
            get(s, "c_serial")
        )),
        "{ident}"
    );
    assert!(get(s, "r_disk").starts_with("rnvme"), "{s}");

    // Data written by one driver reads back through the other.
    assert_eq!(get(s, "c3m_via_rnvme"), get(s, "c3m"), "{s}");
    for key in ["r512k", "r8k", "r512"] {
        assert_eq!(get(s, &format!("{key}_via_c")), get(s, key), "{key}:\n{s}");
    }
    assert!(get(s, "c_disk").starts_with("nvme"), "{s}");
    assert_eq!(get(s, "rmmod"), "ok");
    assert_eq!(get(s, "disk"), "gone");
    assert_eq!(get(s, "shutdowns"), "2", "{s}");
}

/// With four vCPUs, `rnvme` makes four I/O queues, each with its own MSI-X vector (7.2's PCI
/// abstraction names only the first and the last vector; the driver registers the others itself)
/// steered to the CPU blk-mq maps to its queue: four verified fio jobs, one pinned to each CPU,
/// pass, and the interrupts of queue N's vector arrive on the CPU blk-mq maps to queue N, a
/// different one for each. `rmmod` then frees every vector.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_rnvme_gives_each_of_four_cpus_a_queue_with_its_own_vector() {
    let script = format!(
        r#"set -u
{REBIND}
insmod /lib/modules/test/rnvme.ko
to_rnvme || exit 1
echo queues=$(ls /sys/block/$disk/mq | wc -l)
for q in /sys/block/$disk/mq/*; do echo queue$(basename $q)_cpus=$(cat $q/cpu_list); done
grep ' rnvme$' /proc/interrupts > /tmp/before
echo vectors=$(wc -l < /tmp/before)
for cpu in 0 1 2 3; do
    fio --name=cpu$cpu --filename=/dev/$disk --direct=1 --ioengine=io_uring --rw=randwrite --bs=4k \
        --iodepth=8 --size=16m --offset=$((cpu * 16))m --verify=crc32c --verify_fatal=1 \
        --cpus_allowed=$cpu > /tmp/fio$cpu 2>&1 &
    eval pid$cpu=$!
done
for cpu in 0 1 2 3; do eval wait \$pid$cpu; echo fio$cpu=$?; done
grep ' rnvme$' /proc/interrupts > /tmp/after
# Per vector (its MSI-X index, the "N-edge" field): the CPU whose count grew the most.
paste -d' ' /tmp/before /tmp/after | awk '{{
    n = NF / 2 - 4; best = -1; top = 0
    for (c = 0; c < n; c++) {{ d = $(NF / 2 + 2 + c) - $(2 + c); if (d > top) {{ top = d; best = c }} }}
    for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+-edge$/) {{ split($i, v, "-"); idx = v[1] }}
    print "vector" idx "_cpu=" best
}}'
rmmod rnvme && echo rmmod=ok
echo left=$(grep -c ' rnvme$' /proc/interrupts)
dmesg | grep -c 'BUG\|WARNING' | sed 's/^/kernel_complaints=/'
"#
    );
    // On a host with fewer cores, the harness boots the four vCPUs with `tsc=reliable`.
    let vm = rnvme_guest().smp(4).host_program("/usr/bin/fio");
    let s = &run(vm, &script);
    assert_eq!(get(s, "queues"), "4", "{s}");
    assert_eq!(get(s, "vectors"), "4", "{s}");
    let mut cpus = Vec::new();
    for n in 0..4 {
        assert_eq!(get(s, &format!("fio{n}")), "0", "{s}");
        let cpu = get(s, &format!("vector{n}_cpu"));
        let mapped: Vec<&str> = get(s, &format!("queue{n}_cpus")).split(',').collect();
        assert!(mapped.contains(&cpu), "vector {n} on CPU {cpu}:\n{s}");
        cpus.push(cpu);
    }
    cpus.sort_unstable();
    cpus.dedup();
    assert_eq!(cpus.len(), 4, "{s}");
    assert_eq!(get(s, "rmmod"), "ok");
    assert_eq!(get(s, "left"), "0", "{s}");
    assert_eq!(get(s, "kernel_complaints"), "0", "{s}");
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_rnvme_fio_verify_filesystem_across_drivers_and_unbind_under_load() {
    let fio = "fio --direct=1 --ioengine=io_uring --output-format=terse --terse-version=3";
    let script = format!(
        r#"set -u
{REBIND}
insmod /lib/modules/test/rnvme.ko
to_rnvme || exit 1
# Verified random writes: QD1 with 4 KiB blocks, QD32 with sizes from 512 B to 512 KiB at buffer
# offsets that are not page-aligned (PRP1 offsets, two-page and list PRPs); two jobs each.
{fio} --name=qd1 --filename=/dev/$disk --rw=randwrite --bs=4k --iodepth=1 --numjobs=2 \
    --size=8m --offset_increment=8m --verify=crc32c --verify_fatal=1 > /tmp/qd1 2>&1
echo qd1_rc=$?
{fio} --name=qd32 --filename=/dev/$disk --rw=randwrite --bsrange=512-512k --blockalign=512 \
    --iomem_align=512 --iodepth=32 --numjobs=2 --size=32m --offset=32m --offset_increment=32m \
    --verify=crc32c --verify_fatal=1 > /tmp/qd32 2>&1
echo qd32_rc=$?
# Transfers larger than the controller takes (MDTS), from buffers 512 bytes into a page: the block
# layer splits them inside a page, so a request's data starts partway into a vector.
{fio} --name=split --filename=/dev/$disk --rw=write --bs=1280k --iomem_align=512 --size=10m \
    --offset=96m --verify=crc32c --verify_fatal=1 > /tmp/split 2>&1
echo split_rc=$?
grep -h 'verify: bad\|error=' /tmp/qd1 /tmp/qd32 /tmp/split | head -n 5
# Past the end: refused, nothing written.
sectors=$(cat /sys/block/$disk/size)
if dd if=/dev/zero of=/dev/$disk bs=512 seek=$sectors count=1 oflag=direct 2>/tmp/dd; then
    echo past_end_records=$(grep -c '^1+0 records out' /tmp/dd)
else
    echo past_end=refused
fi
# A filesystem made through rnvme, checked and read through the C driver, extended there, and
# checked and read through rnvme again.
mkfs.ext4 -q -F /dev/$disk && echo mkfs=ok
mkdir -p /mnt/t && mount /dev/$disk /mnt/t
mkdir -p /mnt/t/a/b /mnt/t/c
for n in 1 7 64 300 1500; do dd if=/dev/urandom of=/mnt/t/a/f$n bs=1k count=$n 2>/dev/null; done
for n in 2 33 999; do dd if=/dev/urandom of=/mnt/t/a/b/g$n bs=4k count=$n 2>/dev/null; done
(cd /mnt/t && find a -type f | sort | xargs sha256sum) > /tmp/sums1
umount /mnt/t
fsck.ext4 -fn /dev/$disk > /tmp/fsck1 2>&1; echo fsck_rnvme_rc=$?
to_c || exit 1
fsck.ext4 -fn /dev/$disk > /tmp/fsck2 2>&1; echo fsck_c_rc=$?
mount /dev/$disk /mnt/t
(cd /mnt/t && sha256sum -c /tmp/sums1 > /dev/null) && echo tree_via_c=ok
for n in 5 555; do dd if=/dev/urandom of=/mnt/t/c/h$n bs=4k count=$n 2>/dev/null; done
(cd /mnt/t && find a c -type f | sort | xargs sha256sum) > /tmp/sums2
umount /mnt/t
to_rnvme || exit 1
fsck.ext4 -fn /dev/$disk > /tmp/fsck3 2>&1; echo fsck_rnvme_again_rc=$?
mount /dev/$disk /mnt/t
(cd /mnt/t && sha256sum -c /tmp/sums2 > /dev/null) && echo tree_via_rnvme=ok
umount /mnt/t
# Unbinding under load: every request completes or fails, fio ends, nothing hangs.
{fio} --name=load --filename=/dev/$disk --rw=randrw --bs=4k --iodepth=32 --numjobs=2 \
    --size=64m --time_based --runtime=60 > /tmp/load 2>&1 &
pid=$!
sleep 3
echo $dev > /sys/bus/pci/drivers/rnvme/unbind && echo unbind=ok
wait $pid; echo load_rc=$?
test -e /dev/$disk || echo disk=gone
to_rnvme || exit 1
{fio} --name=after --filename=/dev/$disk --rw=randread --bs=4k --iodepth=8 --size=4m > /tmp/after 2>&1
echo after_rc=$?
rmmod rnvme && echo rmmod=ok
dmesg | grep -c 'blocked for more than\|BUG\|WARNING' | sed 's/^/kernel_complaints=/'
"#
    );
    let s = &run(
        rnvme_guest()
            .host_program("/usr/bin/fio")
            .host_program("/usr/sbin/mkfs.ext4")
            .host_program("/usr/sbin/fsck.ext4"),
        &script,
    );
    for key in [
        "qd1_rc",
        "qd32_rc",
        "split_rc",
        "fsck_rnvme_rc",
        "fsck_c_rc",
        "fsck_rnvme_again_rc",
        "after_rc",
    ] {
        assert_eq!(get(s, key), "0", "{key}:\n{s}");
    }
    assert_eq!(value(s, "past_end_records"), None, "{s}");
    assert_eq!(get(s, "past_end"), "refused");
    for key in ["mkfs", "tree_via_c", "tree_via_rnvme", "unbind", "rmmod"] {
        assert_eq!(get(s, key), "ok", "{key}:\n{s}");
    }
    // fio ended on its own: with I/O errors from the requests failed after the unbind.
    assert_ne!(get(s, "load_rc"), "0", "{s}");
    assert_eq!(get(s, "disk"), "gone");
    assert_eq!(get(s, "kernel_complaints"), "0", "{s}");
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_rnvme_lost_command_times_out_and_the_controller_recovers() {
    // `lose_command=200`: from the 200th I/O command after loading, commands are recorded as in
    // flight but not handed to the controller (as if it had stopped fetching them) until the next
    // reset. With `io_timeout=4` the watchdog must notice the first, abort it (QEMU's controller does
    // not abort it), reset the controller, fail that one request and requeue the others. A reader
    // of known data issues that command (the partition scan before it takes a handful); a second
    // later, fio starts 16 reads at a time on another region, which wait behind the stall and are
    // requeued by the reset: they must all succeed.
    let script = format!(
        r#"set -u
{REBIND}
dd if=/dev/urandom of=/tmp/p bs=1M count=24 2>/dev/null
dd if=/tmp/p bs=1M count=8 2>/dev/null | sha256sum > /tmp/h
dd if=/tmp/p of=/dev/nvme0n1 bs=1M oflag=direct 2>/dev/null
insmod /lib/modules/test/rnvme.ko io_timeout=4 lose_command=200 || exit 1
to_rnvme || exit 1
start=$(date +%s)
(
    h=$(dd if=/dev/$disk bs=4k count=2048 iflag=direct 2>/tmp/err | sha256sum)
    if [ "$h" = "$(cat /tmp/h)" ]; then echo reader=ok; else echo reader=failed; fi
    echo reader_elapsed=$(( $(date +%s) - start ))
) > /tmp/reader &
sleep 1.5
fio --name=load --filename=/dev/$disk --direct=1 --ioengine=io_uring --rw=randread --bs=4k \
    --iodepth=16 --offset=8m --size=16m --time_based --runtime=8 \
    --output-format=terse --terse-version=3 > /tmp/load 2>&1
echo load_rc=$?
echo load_errors=$(cut -d';' -f5 /tmp/load | head -n 1)
wait
cat /tmp/reader
echo reader_timeout_errors=$(grep -c 'timed out' /tmp/err)
echo after_reset=$(dd if=/dev/$disk bs=1M count=24 iflag=direct 2>/dev/null | sha256sum | cut -c1-64)
echo pattern=$(sha256sum < /tmp/p | cut -c1-64)
dmesg | grep -c 'outstanding for over 4 s, aborting' | sed 's/^/late_reports=/'
dmesg | grep -c 'resetting the controller' | sed 's/^/resets=/'
dmesg | grep 'controller reset:' | sed 's/.*controller reset: /reset_summary=/'
to_c || exit 1
echo via_c=$(dd if=/dev/$disk bs=1M count=24 iflag=direct 2>/dev/null | sha256sum | cut -c1-64)
rmmod rnvme && echo rmmod=ok
dmesg | grep 'blocked for more than\|BUG\|WARNING' | head -n 20
dmesg | grep -c 'blocked for more than\|BUG\|WARNING' | sed 's/^/kernel_complaints=/'
"#
    );
    let s = &run(rnvme_guest().host_program("/usr/bin/fio"), &script);

    // The reader whose command was lost got a timeout error, found by the watchdog (4 s timeout,
    // 1 s ticks), not by the guest's own time limit.
    assert_eq!(get(s, "reader"), "failed", "{s}");
    assert_eq!(get(s, "reader_timeout_errors"), "1", "{s}");
    let elapsed: u64 = get(s, "reader_elapsed").parse().expect("reader_elapsed");
    assert!(elapsed < 30, "{s}");
    assert_eq!(get(s, "late_reports"), "1", "{s}");
    assert_eq!(get(s, "resets"), "1", "{s}");
    // The reset failed that request only; fio's reads in flight were requeued and succeeded.
    let summary = get(s, "reset_summary");
    assert!(summary.contains(" 1 request(s) failed"), "{s}");
    let requeued: u32 = summary
        .rsplit(", ")
        .next()
        .and_then(|t| t.strip_suffix(" requeued"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"));
    assert!(requeued > 0, "{s}");
    assert_eq!(get(s, "load_rc"), "0", "{s}");
    assert_eq!(get(s, "load_errors"), "0", "{s}");
    // The controller works after the reset, through both drivers.
    assert_eq!(get(s, "after_reset"), get(s, "pattern"), "{s}");
    assert_eq!(get(s, "via_c"), get(s, "pattern"), "{s}");
    assert_eq!(get(s, "rmmod"), "ok");
    assert_eq!(get(s, "kernel_complaints"), "0", "{s}");
}
