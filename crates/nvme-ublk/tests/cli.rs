//! `nvme-ublk`'s refusals that need no device: they come before anything is opened.

use std::process::Command;

fn nvme_ublk(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nvme-ublk"))
        .args(args)
        .output()
        .expect("running nvme-ublk");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn uio_has_no_interrupts_and_the_wait_modes_exclude_each_other() {
    let (ok, err) = nvme_ublk(&["--device", "uio:0000:00:02.0", "--interrupts"]);
    assert!(!ok);
    assert!(err.contains("--interrupts needs vfio"), "{err}");
    let (ok, err) = nvme_ublk(&["--device", "vfio:0000:00:02.0", "--poll", "--interrupts"]);
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn bad_devices_and_sizes_are_refused_before_anything_is_opened() {
    for (args, expect) in [
        (
            &["--device", "pci:0000:00:02.0"][..],
            "bad device specification",
        ),
        (&["--device", "vfio:00:02.0"], "bad device specification"),
        (
            &["--device", "vfio:0000:00:02.0", "--queues", "0"],
            "at least 1",
        ),
        (
            &["--device", "vfio:0000:00:02.0", "--depth", "0"],
            "at least 1",
        ),
    ] {
        let (ok, err) = nvme_ublk(args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}

#[test]
fn recovery_options_exclude_what_the_device_already_fixes() {
    for (args, expect) in [
        (&[][..], "--device"),
        (
            &[
                "--device",
                "vfio:0000:00:02.0",
                "--recover",
                "0",
                "--queues",
                "2",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--device",
                "vfio:0000:00:02.0",
                "--recover",
                "0",
                "--depth",
                "8",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--device",
                "vfio:0000:00:02.0",
                "--recover",
                "0",
                "--recoverable",
            ],
            "cannot be used with",
        ),
        (
            &[
                "--device",
                "vfio:0000:00:02.0",
                "--recover",
                "0",
                "--id",
                "1",
            ],
            "cannot be used with",
        ),
        (
            &["--device", "vfio:0000:00:02.0", "--delete", "0"],
            "cannot be used with",
        ),
    ] {
        let (ok, err) = nvme_ublk(args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
