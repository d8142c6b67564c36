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
        .rerun_if_qemu_crashes()
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

/// Features of QEMU's controller that both tools read without a data buffer and for the whole
/// controller (Error Recovery, 0x05, is per namespace there: it answers Invalid Namespace for 0).
const FEATURES: [u8; 8] = [0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x0a, 0x0b];

/// SMART fields that count what the drivers did between the two reads (commands, data units,
/// busy time, hours on): ours may only be larger. The temperature may drift a little.
const SMART_COUNTERS: [&str; 6] = [
    "data_units_read",
    "data_units_written",
    "host_read_commands",
    "host_write_commands",
    "controller_busy_time",
    "power_on_hours",
];

/// A number that nvme-cli may print as a JSON number or as a decimal string (128-bit counters).
fn number(v: &Value) -> u128 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {v}")),
        _ => v
            .as_u64()
            .map(u128::from)
            .unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

/// Every field nvme-cli printed is present in ours with the same value (but the loose ones).
fn same_fields(verb: &str, kernel: &Value, ours: &Value, loose: &[&str]) {
    let (Some(k), Some(o)) = (kernel.as_object(), ours.as_object()) else {
        assert_eq!(kernel, ours, "{verb}");
        return;
    };
    for (key, kv) in k {
        let ov = o.get(key).unwrap_or_else(|| {
            panic!("{verb}: nvme-tool has no {key:?}\nkernel: {kernel}\nours: {ours}")
        });
        if loose.contains(&key.as_str()) {
            continue;
        }
        assert_eq!(kv, ov, "{verb}: field {key:?}");
    }
}

/// nvme-cli through the kernel's driver and nvme-tool through vfio-pci read the same controller:
/// identify data, logs and features agree field by field, in one guest boot.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_nvme_tool_output_matches_nvme_cli() {
    let features: Vec<String> = FEATURES.iter().map(|f| format!("{f:#04x}")).collect();
    let features = features.join(" ");
    let body = format!(
        r#"
nvme version
for v in id-ctrl "id-ns -n 1" list-ns smart-log error-log fw-log; do
    echo "K $v"; nvme $v /dev/nvme0 -o json | tr -d '\n'; echo
done
for f in {features}; do echo "KF $f $(nvme get-feature /dev/nvme0 -f $f)"; done
mkfs.ext4 -q /dev/nvme0n1 && mkdir -p /mnt/t && mount /dev/nvme0n1 /mnt/t || exit 1
nvme-tool setup --bind vfio $BDF 2>&1; echo "SETUP_MOUNTED=$?"
umount /mnt/t
echo STATUS_KERNEL; nvme-tool status -o json | tr -d '\n'; echo
nvme-tool setup --bind vfio $BDF; echo "SETUP_BIND=$?"
echo STATUS_VFIO; nvme-tool status -o json | tr -d '\n'; echo
DEV=vfio:$BDF
for v in id-ctrl "id-ns -n 1" list-ns smart-log error-log fw-log; do
    echo "O $v"; nvme-tool --device $DEV $v -o json | tr -d '\n'; echo
done
for f in {features}; do echo "OF $f $(nvme-tool --device $DEV get-feature -f $f)"; done
LBAF=$(nvme-tool --device $DEV id-ns -n 1 | grep 'ms:0 *lbads:12 ' | head -1 | sed 's/^lbaf *\([0-9]*\).*/\1/')
echo "LBAF=$LBAF"
nvme-tool --device $DEV format -n 1 --lbaf "$LBAF" --ses 1 --force; echo "FORMAT=$?"
head -c 65536 /dev/urandom > /tmp/ours.bin
nvme-tool --device $DEV write --lba 3 --input /tmp/ours.bin; echo "OURS_WRITE=$?"
nvme-tool setup --unbind $BDF; echo "SETUP_UNBIND=$?"
wait_disk
echo "BACK=$(basename "$(readlink /sys/bus/pci/devices/$BDF/driver)")"
echo "KERNEL_LBS=$(cat /sys/block/nvme0n1/queue/logical_block_size)"
dd if=/dev/nvme0n1 of=/tmp/ours.back bs=4096 skip=3 count=16 iflag=direct 2>/dev/null
cmp /tmp/ours.bin /tmp/ours.back && echo OURS_TO_KERNEL=same
head -c 8192 /dev/urandom > /tmp/kernel.bin
dd if=/tmp/kernel.bin of=/dev/nvme0n1 bs=4096 seek=40 oflag=direct 2>/dev/null || exit 1
echo K_IO_PASSTHRU; nvme io-passthru /dev/nvme0n1 -o 2 -n 1 -4 40 -6 1 -l 8192 -r 2>&1; echo "END $?"
echo K_ADMIN_PASSTHRU; nvme admin-passthru /dev/nvme0 -o 6 -4 1 -l 4096 -r 2>&1; echo "END $?"
nvme-tool setup --bind vfio $BDF || exit 1
echo O_IO_PASSTHRU; nvme-tool --device $DEV io-passthru -o 2 -n 1 -4 40 -6 1 -l 8192 -r 2>&1; echo "END $?"
echo O_ADMIN_PASSTHRU; nvme-tool --device $DEV admin-passthru -o 6 -4 1 -l 4096 -r 2>&1; echo "END $?"
echo ID_AFTER_FORMAT; nvme-tool --device $DEV id-ns -n 1 -o json | tr -d '\n'; echo
nvme-tool --device $DEV read --lba 40 --blocks 2 --out /tmp/kernel.back || exit 1
cmp /tmp/kernel.bin /tmp/kernel.back && echo KERNEL_TO_OURS=same
nvme-tool --device $DEV bench --rw randread --runtime 60 --json > /tmp/bench.out 2>&1 &
BENCH=$!
i=0; while ! ls -l /proc/$BENCH/fd 2>/dev/null | grep -qE '/dev/vfio/[0-9]' && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
nvme-tool setup --unbind $BDF 2>&1; echo "UNBIND_BUSY=$?"
kill -INT $BENCH; wait $BENCH
nvme-tool setup --bind uio $BDF; echo "SETUP_UIO=$?"
echo STATUS_UIO; nvme-tool status -o json | tr -d '\n'; echo
"#
    );
    let out = Vm::builder()
        .nvme(Disk::sparse(DISK_BYTES))
        .iommu(true)
        .static_bin("nvme", "nvme-tool")
        .host_program("/usr/sbin/nvme")
        .host_program("/usr/sbin/mkfs.ext4")
        .rerun_if_qemu_crashes()
        .run(&format!("{PRELUDE}\n{body}"))
        .expect("the guest runs");
    println!("{}", out.log_tail());
    assert!(out.success(), "{}", out.log_tail());

    for verb in ["id-ctrl", "id-ns -n 1", "list-ns", "error-log"] {
        let kernel = json_after(&out, &format!("K {verb}"));
        let ours = json_after(&out, &format!("O {verb}"));
        same_fields(verb, &kernel, &ours, &[]);
    }
    let kernel = json_after(&out, "K smart-log");
    let ours = json_after(&out, "O smart-log");
    let mut loose = SMART_COUNTERS.to_vec();
    loose.push("temperature");
    same_fields("smart-log", &kernel, &ours, &loose);
    for key in SMART_COUNTERS {
        assert!(
            number(&ours[key]) >= number(&kernel[key]),
            "smart-log {key}"
        );
    }
    let (kt, ot) = (number(&kernel["temperature"]), number(&ours["temperature"]));
    assert!(kt.abs_diff(ot) <= 5, "temperature {kt} K and {ot} K");
    // nvme-cli keys the firmware log by the kernel's device name, nvme-tool by --device.
    let kernel = json_after(&out, "K fw-log");
    let ours = json_after(&out, "O fw-log");
    let (Some((_, k)), Some((_, o))) = (
        kernel.as_object().and_then(|m| m.iter().next()),
        ours.as_object().and_then(|m| m.iter().next()),
    ) else {
        panic!("fw-log: {kernel} / {ours}");
    };
    same_fields("fw-log", k, o, &[]);
    // setup: refused while mounted (and said why), bound once unmounted, and given back.
    assert!(out.stdout.contains("SETUP_MOUNTED=1"), "{}", out.log_tail());
    assert!(
        out.stdout.contains("is mounted at /mnt/t"),
        "{}",
        out.log_tail()
    );
    assert!(out.stdout.contains("SETUP_BIND=0"), "{}", out.log_tail());
    assert!(out.stdout.contains("SETUP_UNBIND=0"), "{}", out.log_tail());
    assert!(out.stdout.contains("BACK=nvme"), "{}", out.log_tail());
    let before = json_after(&out, "STATUS_KERNEL");
    let after = json_after(&out, "STATUS_VFIO");
    assert_eq!(before["controllers"][0]["driver"], "nvme", "{before}");
    assert_eq!(before["controllers"][0]["namespaces"][0]["name"], "nvme0n1");
    assert_eq!(after["controllers"][0]["driver"], "vfio-pci", "{after}");
    assert!(
        after["controllers"][0]["iommu_group"].is_string(),
        "{after}"
    );
    // format: 4 KiB blocks seen by both drivers, data crossing both ways.
    assert!(out.stdout.contains("FORMAT=0"), "{}", out.log_tail());
    assert!(out.stdout.contains("OURS_WRITE=0"), "{}", out.log_tail());
    assert!(out.stdout.contains("KERNEL_LBS=4096"), "{}", out.log_tail());
    assert!(
        out.stdout.contains("OURS_TO_KERNEL=same"),
        "{}",
        out.log_tail()
    );
    assert!(
        out.stdout.contains("KERNEL_TO_OURS=same"),
        "{}",
        out.log_tail()
    );
    // setup: refuses to take the controller from a program driving it through vfio; binds to
    // uio_pci_generic with hugepages reserved.
    assert!(out.stdout.contains("UNBIND_BUSY=1"), "{}", out.log_tail());
    assert!(
        out.stdout.contains("it is driving the controller"),
        "{}",
        out.log_tail()
    );
    assert!(out.stdout.contains("SETUP_UIO=0"), "{}", out.log_tail());
    let uio = json_after(&out, "STATUS_UIO");
    assert_eq!(uio["controllers"][0]["driver"], "uio_pci_generic", "{uio}");
    assert!(uio["hugepages_2m"]["total"].as_u64() >= Some(64), "{uio}");
    let id = json_after(&out, "ID_AFTER_FORMAT");
    let current = id["flbas"].as_u64().unwrap_or(0) as usize & 0xf;
    assert_eq!(id["lbafs"][current]["ds"], 12, "{id}");
    assert_eq!(id["nsze"].as_u64(), Some(DISK_BYTES / 4096), "{id}");
    // io-passthru: the same raw Read of the kernel's data, printed alike by both tools.
    let between = |marker: &str| {
        let start = out
            .stdout
            .find(&format!("{marker}\n"))
            .unwrap_or_else(|| panic!("no {marker}\n{}", out.log_tail()));
        let rest = &out.stdout[start + marker.len() + 1..];
        rest[..rest.find("END ").unwrap_or(rest.len())].to_owned()
    };
    let kernel = between("K_IO_PASSTHRU");
    assert!(
        kernel.starts_with("IO Command Read is Success and result: 0x00000000\n"),
        "{kernel}"
    );
    assert_eq!(kernel.lines().count(), 2 + 8192 / 16, "{kernel}");
    assert_eq!(between("O_IO_PASSTHRU"), kernel);
    // admin-passthru: the controller's Identify data, printed alike by both tools.
    let kernel = between("K_ADMIN_PASSTHRU");
    assert!(
        kernel.starts_with("Admin Command Identify is Success and result: 0x00000000\n"),
        "{kernel}"
    );
    assert_eq!(kernel.lines().count(), 2 + 4096 / 16, "{kernel}");
    assert_eq!(between("O_ADMIN_PASSTHRU"), kernel);
    for f in FEATURES {
        let line = |prefix: &str| {
            let start = format!("{prefix} {f:#04x} ");
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(&start))
                .unwrap_or_else(|| panic!("no {start:?} line\n{}", out.log_tail()))
                .to_string()
        };
        assert!(line("KF").starts_with("get-feature:"), "{}", line("KF"));
        assert_eq!(line("KF"), line("OF"), "feature {f:#04x}");
    }
}
