//! The Rust-enabled guest kernel (`cargo xtask kernel`): Debian's 7.2 image with the kernel's Rust sample,
//! the Rust null block driver and our `kangrejos` module, each built out of tree and loaded by hand.

use std::time::Duration;

/// A guest on the Rust kernel with every test module at `/lib/modules/test/<name>.ko`.
fn rust_guest() -> guest::VmBuilder {
    let kernel = guest::Kernel::find_rust().expect("run `cargo xtask kernel` first");
    let mut vm = guest::Vm::builder()
        .kernel(guest::KernelFlavor::Rust)
        .timeout(Duration::from_secs(120));
    for name in [
        "rust_minimal",
        "rnull_mod",
        "kangrejos",
        "configfs",
        "null_blk",
    ] {
        vm = vm.file(
            kernel.test_module(name),
            &format!("/lib/modules/test/{name}.ko"),
        );
    }
    vm
}

/// FNV-1a 64, as the module computes it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_rust_kernel_boots_with_rust_support() {
    let kernel = guest::Kernel::find_rust().expect("run `cargo xtask kernel` first");
    let out = rust_guest()
        .run("uname -r; grep -c ' _R' /proc/kallsyms")
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some(kernel.version.as_str()));
    // The image's own Rust code (core, kernel, pin-init crates) is there to link against.
    let rust_symbols: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    assert!(rust_symbols > 500, "{}", out.stdout);
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_rust_minimal_sample_loads_takes_its_parameter_and_unloads() {
    let out = rust_guest()
        .run(
            "set -e
             insmod /lib/modules/test/rust_minimal.ko test_parameter=42
             grep -q '^rust_minimal ' /proc/modules && echo loaded
             rmmod rust_minimal
             grep -q '^rust_minimal ' /proc/modules || echo unloaded
             dmesg | grep 'rust_minimal:'",
        )
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    for expected in [
        "loaded",
        "unloaded",
        "Rust minimal sample (init)",
        "Am I built-in? false",
        "test_parameter: 42",
        "My numbers are [72, 108, 200]",
        "Rust minimal sample (exit)",
    ] {
        assert!(
            out.stdout.contains(expected),
            "missing {expected:?}:\n{}",
            out.stdout
        );
    }
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_kangrejos_module_posts_processes_and_frees_notes() {
    let out = rust_guest()
        .run(
            "set -e
             insmod /lib/modules/test/kangrejos.ko
             echo hello > /dev/kangrejos
             printf 'kernel world' > /dev/kangrejos
             i=0; while [ $i -lt 100 ]; do echo note-$i > /dev/kangrejos; i=$((i+1)); done
             cat /dev/kangrejos > /tmp/board
             echo lines=$(wc -l < /tmp/board)
             head -n 2 /tmp/board
             tail -n 1 /tmp/board
             # A write larger than a note is refused, and nothing is posted.
             head -c 1025 /dev/zero > /tmp/big
             if cat /tmp/big > /dev/kangrejos 2>/tmp/err; then echo big-accepted; else echo big-refused; fi
             cat /tmp/err
             cat /dev/kangrejos | wc -l | sed 's/^ */after-big=/'
             # Two writers at once, one per vCPU: every note lands once.
             for w in a b; do (i=0; while [ $i -lt 50 ]; do echo $w-$i > /dev/kangrejos; i=$((i+1)); done) & done
             wait
             cat /dev/kangrejos > /tmp/board
             echo total=$(wc -l < /tmp/board) a=$(grep -c ' a-' /tmp/board) b=$(grep -c ' b-' /tmp/board)
             echo seqs=$(cut -d' ' -f1 /tmp/board | sort -n | uniq | wc -l) last=$(tail -n 1 /tmp/board | cut -d' ' -f1)
             rmmod kangrejos
             test ! -e /dev/kangrejos && echo device-gone
             dmesg | grep 'kangrejos:'",
        )
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    let s = &out.stdout;
    let hello = format!("1 {:016x} hello", fnv1a(b"hello"));
    let world = format!("2 {:016x} kernel world", fnv1a(b"kernel world"));
    let last = format!("102 {:016x} note-99", fnv1a(b"note-99"));
    for expected in [
        "lines=102",
        &hello,
        &world,
        &last,
        "big-refused",
        "Message too long",
        "after-big=102",
        "total=202 a=50 b=50",
        "seqs=202 last=202",
        "device-gone",
        "ready: /dev/kangrejos",
        "unloading",
        "freeing 202 note(s)",
    ] {
        assert!(s.contains(expected), "missing {expected:?}:\n{s}");
    }
    assert!(!s.contains("deprecated"), "{s}");
}

#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_kangrejos_rmmod_while_open_fails_and_the_module_keeps_working() {
    let out = rust_guest()
        .run(
            "insmod /lib/modules/test/kangrejos.ko || exit 1
             exec 3<>/dev/kangrejos
             if rmmod kangrejos 2>/tmp/err; then echo rmmod-succeeded; else echo rmmod-refused; fi
             cat /tmp/err
             echo still-here >&3
             cat /dev/kangrejos
             exec 3>&-
             rmmod kangrejos && echo rmmod-after-close
             dmesg | grep -c 'kangrejos: freeing 1 note' | sed 's/^/freed=/'",
        )
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    let s = &out.stdout;
    let note = format!("1 {:016x} still-here", fnv1a(b"still-here"));
    for expected in [
        "rmmod-refused",
        "Resource temporarily unavailable",
        &note,
        "rmmod-after-close",
        "freed=1",
    ] {
        assert!(s.contains(expected), "missing {expected:?}:\n{s}");
    }
    assert!(!s.contains("rmmod-succeeded"), "{s}");
}

/// `rnull` set up through configfs, I/O through fio; `fio --verify` passes on `null_blk` with memory
/// backing and finds the data gone on `rnull`: 7.2's Rust null block driver completes requests without
/// storing anything (it has no memory backing yet), so a verified run can only show that.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_rnull_serves_io_and_fio_verify_shows_it_keeps_no_data() {
    let fio = "fio --name=v --direct=1 --ioengine=io_uring --bs=4k --size=16m --iodepth=16 \
               --output-format=terse --terse-version=3";
    let out = rust_guest()
        .host_program("/usr/bin/fio")
        .run(&format!(
            "set -u
             insmod /lib/modules/test/configfs.ko
             mount -t configfs none /sys/kernel/config
             insmod /lib/modules/test/rnull_mod.ko
             echo features=$(cat /sys/kernel/config/rnull/features)
             mkdir /sys/kernel/config/rnull/rnullb0
             echo 1024 > /sys/kernel/config/rnull/rnullb0/size
             echo 1 > /sys/kernel/config/rnull/rnullb0/power
             echo sectors=$(cat /sys/block/rnullb0/size) lbs=$(cat /sys/block/rnullb0/queue/logical_block_size)
             {fio} --filename=/dev/rnullb0 --rw=randrw --runtime=2 --time_based > /tmp/io; echo io_rc=$?
             cut -d';' -f5 /tmp/io | sed 's/^/io_errors=/'
             {fio} --filename=/dev/rnullb0 --rw=randwrite --verify=crc32c > /tmp/v 2>&1; echo rnull_verify_rc=$?
             grep -c 'verify: bad' /tmp/v | sed 's/^/rnull_bad=/'
             insmod /lib/modules/test/null_blk.ko nr_devices=1 gb=1 bs=4096 memory_backed=1
             {fio} --filename=/dev/nullb0 --rw=randwrite --verify=crc32c > /tmp/c 2>&1; echo null_blk_verify_rc=$?
             grep -c 'verify: bad' /tmp/c | sed 's/^/null_blk_bad=/'
             echo 0 > /sys/kernel/config/rnull/rnullb0/power
             rmdir /sys/kernel/config/rnull/rnullb0
             rmmod rnull_mod && echo rnull-unloaded
             test ! -e /dev/rnullb0 && echo device-gone
             dmesg | grep 'rnull_mod:'"
        ))
        .expect("guest runs");
    assert!(out.success(), "{}", out.log_tail());
    let s = &out.stdout;
    for expected in [
        "features=blocksize,size,rotational,irqmode",
        "sectors=2097152 lbs=4096",
        "io_rc=0",
        "io_errors=0",
        "null_blk_verify_rc=0",
        "null_blk_bad=0",
        "rnull-unloaded",
        "device-gone",
        "Rust null_blk loaded",
    ] {
        assert!(s.contains(expected), "missing {expected:?}:\n{s}");
    }
    let bad: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("rnull_bad="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(bad > 0, "fio --verify found no lost data on rnull:\n{s}");
    assert!(!s.contains("rnull_verify_rc=0"), "{s}");
}
