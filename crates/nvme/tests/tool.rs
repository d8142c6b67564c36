//! `nvme-tool` against the model: the commands, their output formats and their errors.

#![cfg(feature = "tool")]

use std::process::Command;

fn tool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nvme-tool"))
        .args(args)
        .output()
        .expect("running nvme-tool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_device_nothing_runs_on_the_model() {
    for args in [
        &["identify"][..],
        &["write", "--lba", "0", "--pattern", "1"],
        &["read", "--lba", "0"],
        &["bench", "--runtime", "0.1"],
    ] {
        let (ok, out, err) = tool(args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains("--device"), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
}

#[test]
fn identify_reports_the_model() {
    let (ok, out, _) = tool(&[
        "--device",
        "model",
        "--model-size",
        "1m",
        "identify",
        "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["model"], "Kangrejos NVMe Model");
    assert_eq!(v["namespaces"][0]["bytes"], 1 << 20);
    assert_eq!(v["max_transfer"], 512 * 1024);
}

#[test]
fn bench_json_has_iops_and_latency_percentiles() {
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "bench",
        "--rw",
        "randrw",
        "--bs",
        "4k",
        "--iodepth",
        "8",
        "--runtime",
        "0.2",
        "--queues",
        "2",
        "--verify",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["ios"].as_u64().unwrap() > 0);
    assert!(v["iops"].as_f64().unwrap() > 0.0);
    let lat = &v["latency_us"];
    let (p50, p99, p999) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["p99_9"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p999);
    assert!(v["verified"].as_u64().unwrap() > 0);
    assert_eq!(v["verify_errors"], 0);
    assert_eq!(v["errors"], 0);
}

#[test]
fn bench_table_names_its_columns() {
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "bench",
        "--rw",
        "write",
        "--bs",
        "8k",
        "--runtime",
        "0.1",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("IOPS") && out.contains("MB/s") && out.contains("p99.9 µs"));
}

#[test]
fn a_file_written_reads_back() {
    let dir = std::env::temp_dir().join(format!("nvme-tool-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in");
    let output = dir.join("out");
    let data: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    std::fs::write(&input, &data).unwrap();
    // Each run has its own model, so write and read within one process is not possible;
    // check the write succeeds and a read of fresh media is zeroes.
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "write",
        "--lba",
        "2",
        "--input",
        input.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("wrote 1024 bytes"));
    let (ok, _, err) = tool(&[
        "--device",
        "model",
        "read",
        "--lba",
        "2",
        "--blocks",
        "2",
        "--out",
        output.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(&output).unwrap(), vec![0; 1024]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_pattern_write_accepts_hex() {
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "write",
        "--lba",
        "1",
        "--pattern",
        "0x41",
        "--blocks",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("wrote 1024 bytes"));
}

#[test]
fn bad_input_gets_an_error_not_a_panic() {
    for args in [
        &["read", "--lba", "99999999999"][..],
        &["bench", "--bs", "1000", "--runtime", "0.1"],
        &["bench", "--iodepth", "0"],
        &["bench", "--bs", "1g"],
        &["bench", "--bs", "1m", "--iodepth", "2000"],
        &["bench", "--runtime", "-1"],
        &["--device", "vfio:nonsense", "identify"],
        &["--device", "floppy", "identify"],
        &["--model-size", "1T", "identify"],
        &["--model-size", "1000", "identify"],
        &["write", "--lba", "0"],
        &["write", "--lba", "0", "--pattern", "0x100"],
    ] {
        let args: Vec<&str> = if args[0] == "--device" {
            args.to_vec()
        } else {
            [&["--device", "model"][..], args].concat()
        };
        let (ok, _, err) = tool(&args);
        let err = err.replace("nvme-tool:", "error:");
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

fn model_json(args: &[&str]) -> serde_json::Value {
    let args = [&["--device", "model"][..], args, &["-o", "json"]].concat();
    let (ok, out, err) = tool(&args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// The keys nvme-cli 2.3 prints for `id-ctrl -o json` (subnqn only when not empty).
const ID_CTRL_KEYS: &str = "vid ssvid sn mn fr rab ieee cmic mdts cntlid ver rtd3r rtd3e oaes ctratt \
    rrls cntrltype fguid crdt1 crdt2 crdt3 nvmsr vwci mec oacs acl aerl frmw lpa elpe npss avscc apsta \
    wctemp cctemp mtfa hmpre hmmin tnvmcap unvmcap rpmbs edstt dsto fwug kas hctma mntmt mxtmt sanicap \
    hmminds hmmaxd nsetidmax endgidmax anatt anacap anagrpmax nanagrpid pels domainid megcap sqes cqes \
    maxcmd nn oncs fuses fna vwc awun awupf icsvscc nwpc acwu ocfs sgls mnan maxdna maxcna ioccsz \
    iorcsz icdoff fcatt msdbd ofcs psds";

#[test]
fn id_ctrl_json_has_nvme_cli_fields_and_values() {
    let v = model_json(&["id-ctrl"]);
    let keys: Vec<&str> = ID_CTRL_KEYS.split_whitespace().collect();
    for key in &keys {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v.as_object().unwrap().len(), keys.len(), "{v}");
    assert_eq!(v["vid"], 0x1b36);
    // Text is kept padded, as nvme-cli prints it.
    assert_eq!(v["sn"], "MODEL0001           ");
    assert_eq!(v["ver"], 0x10400);
    assert_eq!(v["sqes"], 0x66);
    assert_eq!(v["nn"], 1);
    // 128-bit counters are decimal strings.
    assert_eq!(v["tnvmcap"], "0");
    assert_eq!(v["fguid"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(v["psds"].as_array().unwrap().len(), 1);
    assert_eq!(v["psds"][0]["max_power"], 0);
}

#[test]
fn id_ns_and_list_ns_json() {
    let v = model_json(&["--model-size", "1m", "id-ns", "-n", "1"]);
    assert_eq!(v["nsze"], 2048);
    assert_eq!(v["flbas"], 0);
    assert_eq!(v["lbafs"][0]["ds"], 9);
    assert_eq!(v["nvmcap"], "0");
    assert_eq!(v["eui64"], "0000000000000000");
    assert!(v.get("npwg").is_none(), "only with NSFEAT bit 4: {v}");
    let v = model_json(&["list-ns"]);
    assert_eq!(v, serde_json::json!({"nsid_list": [{"nsid": 1}]}));
}

#[test]
fn logs_json_use_nvme_cli_names() {
    let v = model_json(&["smart-log"]);
    assert_eq!(v["temperature"], 323);
    assert_eq!(v["avail_spare"], 100);
    assert_eq!(v["power_cycles"], "1");
    for key in ["critical_warning", "percent_used", "thm_temp2_total_time"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    let v = model_json(&["fw-log"]);
    assert_eq!(v["model"]["Active Firmware Slot (afi)"], 1);
    assert_eq!(
        v["model"]["Firmware Rev Slot 1"],
        format!("{} (1.0.....)", u64::from_le_bytes(*b"1.0     "))
    );
    let v = model_json(&["error-log"]);
    assert_eq!(v["errors"][0]["error_count"], 0);
}

#[test]
fn get_and_set_feature_print_nvme_cli_lines() {
    let (ok, out, err) = tool(&["--device", "model", "get-feature", "-f", "4"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "get-feature:0x04 (Temperature Threshold), Current value:0x00000157\n"
    );
    let (ok, out, err) = tool(&["--device", "model", "get-feature", "-f", "6", "-s", "3"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("Supported capabilities value:0x00000004"),
        "{out}"
    );
    assert!(out.contains("Feature is changeable"), "{out}");
    let (ok, out, err) = tool(&["--device", "model", "set-feature", "-f", "4", "-v", "350"]);
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "set-feature:0x04 (Temperature Threshold), value:0x0000015e, cdw12:00000000, save:0\n"
    );
}

#[test]
fn io_verbs_without_data_succeed() {
    for args in [
        &["flush"][..],
        &["write-zeroes", "-s", "0", "-c", "7"],
        &["dsm", "--ad", "-s", "0,16", "-b", "8,8"],
        &["reset"],
        &["get-log", "-i", "2", "-l", "512"],
    ] {
        let args = [&["--device", "model"][..], args].concat();
        let (ok, _, err) = tool(&args);
        assert!(ok, "{args:?}: {err}");
    }
}

#[test]
fn management_verbs_refuse_bad_input_with_a_message() {
    for (args, expect) in [
        (&["get-feature", "-f", "0x55"][..], "invalid field"),
        (&["get-feature", "-f", "4", "-s", "4"], "error"),
        (&["set-feature", "-f", "7", "-v", "1"], "number of queues"),
        (
            &["set-feature", "-f", "4", "-v", "1", "--save"],
            "not saveable",
        ),
        (&["get-log", "-i", "2", "-l", "3"], "multiple of 4"),
        (&["get-log", "-i", "0x7f", "-l", "512"], "invalid log page"),
        (&["smart-log", "-n", "9"], "namespace"),
        (&["id-ns", "-n", "0"], "one namespace"),
        (&["dsm", "--ad", "-s", "0,1", "-b", "8"], "as many"),
        (
            &["write-zeroes", "-s", "99999999", "-c", "0"],
            "past the end",
        ),
        (&["error-log", "-e", "0"], "at least 1"),
    ] {
        let args = [&["--device", "model"][..], args].concat();
        let (ok, out, err) = tool(&args);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.to_lowercase().contains(expect),
            "{args:?}: {err} (expected {expect:?})"
        );
    }
}

/// A sysfs/procfs tree with one NVMe controller bound to `nvme`, its namespace `nvme0n1` (259:0).
fn fake_root(name: &str) -> std::path::PathBuf {
    use std::fs;
    use std::os::unix::fs::symlink;
    let root = std::env::temp_dir().join(format!("nvme-tool-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let dev = root.join("sys/bus/pci/devices/0000:00:04.0");
    for dir in [
        "sys/bus/pci/drivers/nvme",
        "sys/bus/pci/drivers/vfio-pci",
        "sys/kernel/iommu_groups/3",
        "sys/block/nvme0n1/holders",
        "sys/kernel/mm/hugepages/hugepages-2048kB",
        "proc/self",
        "proc/sys/vm",
    ] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::create_dir_all(dev.join("nvme/nvme0")).unwrap();
    symlink(root.join("sys/bus/pci/drivers/nvme"), dev.join("driver")).unwrap();
    symlink(
        root.join("sys/kernel/iommu_groups/3"),
        dev.join("iommu_group"),
    )
    .unwrap();
    for (path, text) in [
        ("sys/bus/pci/devices/0000:00:04.0/class", "0x010802\n"),
        (
            "sys/bus/pci/devices/0000:00:04.0/driver_override",
            "(null)\n",
        ),
        ("sys/bus/pci/drivers/nvme/unbind", ""),
        ("sys/bus/pci/drivers_probe", ""),
        ("sys/block/nvme0n1/dev", "259:0\n"),
        (
            "proc/self/mountinfo",
            "22 1 0:21 / /proc rw - proc proc rw\n",
        ),
        ("proc/swaps", "Filename Type Size Used Priority\n"),
        ("proc/sys/vm/nr_hugepages", "0\n"),
        (
            "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
            "0\n",
        ),
        (
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "0\n",
        ),
    ] {
        fs::write(root.join(path), text).unwrap();
    }
    root
}

fn setup(root: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let root = root.to_str().unwrap();
    let args = [
        &["setup", "--root", root, "--bind-timeout-ms", "100"][..],
        args,
    ]
    .concat();
    tool(&args)
}

fn read(root: &std::path::Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap()
}

#[test]
fn setup_refuses_a_controller_whose_namespace_is_mounted() {
    let root = fake_root("mounted");
    std::fs::write(
        root.join("proc/self/mountinfo"),
        "22 1 0:21 / /proc rw - proc proc rw\n40 1 259:0 / /mnt/data rw - ext4 /dev/nvme0n1 rw\n",
    )
    .unwrap();
    let (ok, _, err) = setup(&root, &["--bind", "vfio", "0000:00:04.0"]);
    assert!(!ok);
    assert!(err.contains("nvme0n1 is mounted at /mnt/data"), "{err}");
    assert!(err.contains("--force"), "{err}");
    // Nothing was touched.
    assert_eq!(read(&root, "sys/bus/pci/drivers_probe"), "");
    assert_eq!(read(&root, "sys/bus/pci/drivers/nvme/unbind"), "");
    // With --force it goes ahead: unbinds, overrides, probes (the fake kernel never rebinds).
    let (ok, _, err) = setup(&root, &["--bind", "vfio", "--force", "0000:00:04.0"]);
    assert!(!ok);
    assert!(err.contains("bound to nvme after"), "{err}");
    assert_eq!(
        read(&root, "sys/bus/pci/drivers/nvme/unbind"),
        "0000:00:04.0"
    );
    assert_eq!(
        read(&root, "sys/bus/pci/devices/0000:00:04.0/driver_override"),
        "vfio-pci"
    );
    assert_eq!(read(&root, "sys/bus/pci/drivers_probe"), "0000:00:04.0");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn setup_refuses_a_held_namespace_and_bad_addresses() {
    let root = fake_root("held");
    std::fs::create_dir_all(root.join("sys/block/nvme0n1/holders/dm-0")).unwrap();
    let (ok, _, err) = setup(&root, &["--bind", "uio", "0000:00:04.0"]);
    assert!(!ok);
    assert!(err.contains("nvme0n1 is held by dm-0"), "{err}");
    for (bdf, expect) in [
        ("../../../etc", "not a PCI address"),
        ("0000:00:05.0", "no PCI function"),
    ] {
        let (ok, _, err) = setup(&root, &["--bind", "vfio", bdf]);
        assert!(!ok, "{bdf}");
        assert!(err.contains(expect), "{bdf}: {err}");
    }
    std::fs::write(
        root.join("sys/bus/pci/devices/0000:00:04.0/class"),
        "0x020000\n",
    )
    .unwrap();
    let (ok, _, err) = setup(&root, &["--bind", "vfio", "0000:00:04.0"]);
    assert!(!ok);
    assert!(err.contains("not an NVMe controller"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn setup_reserves_hugepages_and_status_reports() {
    let root = fake_root("status");
    std::fs::remove_file(root.join("sys/bus/pci/devices/0000:00:04.0/driver")).unwrap();
    std::os::unix::fs::symlink(
        root.join("sys/bus/pci/drivers/vfio-pci"),
        root.join("sys/bus/pci/devices/0000:00:04.0/driver"),
    )
    .unwrap();
    let (ok, out, err) = setup(
        &root,
        &["--bind", "vfio", "--hugepages", "16", "0000:00:04.0"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("already bound to vfio-pci"), "{out}");
    assert_eq!(read(&root, "proc/sys/vm/nr_hugepages"), "16");
    let (ok, out, err) = tool(&["status", "--root", root.to_str().unwrap(), "-o", "json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let c = &v["controllers"][0];
    assert_eq!(c["bdf"], "0000:00:04.0");
    assert_eq!(c["driver"], "vfio-pci");
    assert_eq!(c["iommu_group"], "3");
    assert_eq!(c["namespaces"][0]["name"], "nvme0n1");
    assert_eq!(c["namespaces"][0]["in_use"], serde_json::Value::Null);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn format_needs_force_without_a_terminal() {
    let (ok, _, err) = tool(&["--device", "model", "format", "-n", "1", "--lbaf", "1"]);
    assert!(!ok);
    assert!(err.contains("--force"), "{err}");
    let (ok, out, err) = tool(&[
        "--device", "model", "format", "-n", "1", "--lbaf", "1", "--ses", "1", "--force",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "Success formatting namespace:1\n");
    let (ok, _, err) = tool(&["--device", "model", "format", "--lbaf", "7", "--force"]);
    assert!(!ok);
    assert!(err.contains("invalid format"), "{err}");
}

#[test]
fn admin_passthru_prints_the_result_and_data() {
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "admin-passthru",
        "-O",
        "0x0a",
        "-4",
        "4",
    ]);
    assert!(ok, "{err}");
    // As nvme-cli 2.3 prints it: the result line on standard error, nothing else.
    assert_eq!(
        err,
        "Admin Command Get Features is Success and result: 0x00000157\n"
    );
    assert_eq!(out, "");
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "admin-passthru",
        "-O",
        "6",
        "-4",
        "1",
        "-l",
        "16",
        "-r",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(
            "       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f\n\
             0000: 36 1b 00 00 4d 4f 44 45 4c 30 30 30 31 20 20 20 \"6...MODEL0001...\"\n"
        ),
        "{out}"
    );
    assert_eq!(
        err,
        "Admin Command Identify is Success and result: 0x00000000\n"
    );
    let (ok, _, err) = tool(&["--device", "model", "admin-passthru", "-O", "0x01"]);
    assert!(!ok);
    assert!(err.contains("the driver's own"), "{err}");
}

#[test]
fn io_passthru_sends_raw_io_commands_with_nvme_clis_options_and_output() {
    let input = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("io-passthru-block-{}", std::process::id()));
    let block: Vec<u8> = (0..512).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &block).unwrap();
    // Write (0x01) one block at LBA 3 from the file: nvme-cli's result line and nothing else.
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "--opcode",
        "1",
        "--namespace-id",
        "1",
        "--cdw10",
        "3",
        "--data-len",
        "512",
        "--write",
        "--input-file",
        input.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&input);
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert_eq!(err, "IO Command Write is Success and result: 0x00000000\n");
    // Read (0x02) two blocks of a fresh model (its data lives as long as one command): zeros,
    // as a hex dump, or raw with -b; `-O` is accepted like admin-passthru's.
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-o",
        "2",
        "-n",
        "1",
        "-6",
        "1",
        "-l",
        "1024",
        "-r",
    ]);
    assert!(ok, "{err}");
    assert_eq!(err, "IO Command Read is Success and result: 0x00000000\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 1024 / 16, "{out}");
    assert_eq!(
        lines[0],
        "       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f"
    );
    assert_eq!(
        lines[64],
        "03f0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \"................\""
    );
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-O",
        "2",
        "-n",
        "1",
        "-l",
        "512",
        "-r",
        "-b",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.len(), 512);
    // What the controller refuses is its status, not a panic; what the driver refuses is said.
    let (ok, _, err) = tool(&["--device", "model", "io-passthru", "-o", "0x7f", "-n", "1"]);
    assert!(!ok);
    assert!(err.contains("invalid command opcode"), "{err}");
    let (ok, _, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-o",
        "2",
        "-n",
        "1",
        "-4",
        "0xffffffff",
        "-l",
        "512",
    ]);
    assert!(!ok);
    assert!(err.contains("LBA out of range"), "{err}");
    let (ok, _, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-o",
        "2",
        "-n",
        "1",
        "-l",
        "268435456",
    ]);
    assert!(!ok);
    assert!(err.contains("transfer limit"), "{err}");
    let (ok, _, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-o",
        "1",
        "-l",
        "512",
        "-w",
    ]);
    assert!(!ok);
    assert!(err.contains("--input-file"), "{err}");
}

#[test]
fn io_passthru_reads_into_a_file_shows_and_dry_runs_commands_and_times_them() {
    let out_file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("io-passthru-out-{}", std::process::id()));
    // --read with --input-file: the data goes into the file (over its start, not truncated).
    std::fs::write(&out_file, vec![b'x'; 600]).unwrap();
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-o",
        "2",
        "-n",
        "1",
        "-l",
        "512",
        "-r",
        "-i",
        out_file.to_str().unwrap(),
    ]);
    let written = std::fs::read(&out_file).unwrap();
    let _ = std::fs::remove_file(&out_file);
    assert!(ok, "{err}");
    assert_eq!(out, "", "no dump when the data goes to a file");
    assert_eq!(written.len(), 600);
    assert!(written[..512].iter().all(|&b| b == 0) && written[512..].iter().all(|&b| b == b'x'));
    // --dry-run prints the command and sends nothing (an opcode the controller refuses succeeds).
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-o",
        "0x7f",
        "-n",
        "1",
        "-6",
        "7",
        "-d",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("opcode       : 7f\n"), "{out}");
    assert!(out.contains("\ncdw12        : 00000007\n"), "{out}");
    assert_eq!(err, "");
    // --show-command prints it and sends it; --latency times it.
    let (ok, out, err) = tool(&[
        "--device",
        "model",
        "io-passthru",
        "-o",
        "0",
        "-n",
        "1",
        "-s",
        "-T",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("opcode       : 00\n"), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("IO Command Flush latency: ") && lines[0].ends_with(" us"),
        "{err}"
    );
    assert_eq!(
        lines[1],
        "IO Command Flush is Success and result: 0x00000000"
    );
}

#[test]
fn list_json_names_each_namespace() {
    let v = model_json(&["--model-size", "2m", "list"]);
    let d = &v["Devices"][0];
    assert_eq!(d["NameSpace"], 1);
    assert_eq!(d["DevicePath"], "model");
    assert_eq!(d["SerialNumber"], "MODEL0001");
    assert_eq!(d["ModelNumber"], "Kangrejos NVMe Model");
    assert_eq!(d["Firmware"], "1.0");
    assert_eq!(d["MaximumLBA"], 4096);
    assert_eq!(d["PhysicalSize"], 2 << 20);
    assert_eq!(d["SectorSize"], 512);
    assert_eq!(v["Devices"].as_array().unwrap().len(), 1);
    let (ok, out, err) = tool(&["--device", "model", "list"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Node"), "{out}");
    assert!(out.contains("MODEL0001"), "{out}");
}

/// `--interrupts` / `--poll`: every command that does I/O runs in either mode, and the two cannot
/// be asked for together.
#[test]
fn io_commands_run_with_interrupts_and_with_polling() {
    for mode in ["--interrupts", "--poll"] {
        for args in [
            &["write", "--lba", "0", "--pattern", "7", "--blocks", "2"][..],
            &["read", "--lba", "0", "--blocks", "1"],
            &["flush"],
            &["write-zeroes", "-s", "0", "-c", "3"],
            &[
                "bench",
                "--rw",
                "randrw",
                "--iodepth",
                "8",
                "--runtime",
                "0.2",
                "--verify",
                "--json",
            ],
        ] {
            let mut all = vec!["--device", "model", "--model-size", "1m", mode];
            all.extend_from_slice(args);
            let (ok, out, err) = tool(&all);
            assert!(ok, "{all:?}: {err}");
            if args[0] == "bench" {
                assert!(out.contains("\"verify_errors\":0"), "{all:?}: {out}");
            }
        }
    }
    let (ok, _, err) = tool(&[
        "--device",
        "model",
        "--poll",
        "--interrupts",
        "read",
        "--lba",
        "0",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
}
