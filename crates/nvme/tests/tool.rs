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
