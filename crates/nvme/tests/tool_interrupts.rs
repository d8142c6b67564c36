//! `nvme-tool --interrupts` / `--poll` on the model: every command that does I/O runs in either
//! mode, and the two cannot be asked for together.

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
