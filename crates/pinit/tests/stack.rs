//! A 16 MiB struct built in place by a thread with a 64 KiB stack, in a child process so that an overflow
//! (which aborts) only kills the child. `Box::new` of the same struct must overflow.

use std::process::Command;
use std::rc::Rc;
use std::sync::Arc;

use pinit::{InPlaceInit, Zeroable, init, init_array_from_fn, init_zeroed, value};

const MIB16: usize = 16 << 20;
const CASE_VAR: &str = "PINIT_STACK_CASE";

#[derive(Zeroable)]
struct Big {
    header: u64,
    data: [u8; MIB16],
}

fn check(big: &Big, expect: impl Fn(usize) -> u8) {
    assert_eq!(big.header, 7);
    for i in [0, 1, 4095, MIB16 / 2, MIB16 - 1] {
        assert_eq!(big.data[i], expect(i), "byte {i}");
    }
}

/// The control: `Box::new` builds the value on the stack first (in its own frame, so that the 16 MiB
/// temporary does not enlarge `run_case`'s frame).
#[inline(never)]
fn box_new() {
    let big = Box::new(Big {
        header: 7,
        data: [0; MIB16],
    });
    check(&big, |_| 0);
}

/// Builds one case. Runs only inside the child, on the small stack.
fn run_case(case: &str) {
    let (container, form) = case.split_once('/').expect("case is container/form");
    macro_rules! build {
        ($make:expr, $expect:expr) => {
            match container {
                "box" => check(&Box::init($make).unwrap(), $expect),
                "arc" => check(&Arc::init($make).unwrap(), $expect),
                "rc" => check(&Rc::init($make).unwrap(), $expect),
                other => panic!("unknown container {other}"),
            }
        };
    }
    match form {
        "initialiser" => build!(init!(Big { header: 7, data <- init_zeroed() }), |_| 0),
        "array_repeat" => build!(
            init!(Big {
                header: 7,
                data: [3; MIB16]
            }),
            |_| 3
        ),
        "zeroed_rest" => build!(
            init!(Big {
                header: 7,
                ..Zeroable::zeroed()
            }),
            |_| 0
        ),
        "array_from_fn" => build!(
            init!(Big { header: 7, data <- init_array_from_fn(|i| value(i as u8)) }),
            |i| i as u8
        ),
        "box_new" => box_new(),
        other => panic!("unknown form {other}"),
    }
}

/// The child's entry point: a no-op unless the parent selected a case.
#[test]
fn stack_child_entry() {
    let Ok(case) = std::env::var(CASE_VAR) else {
        return;
    };
    let worker = std::thread::Builder::new()
        .stack_size(64 << 10)
        .spawn(move || run_case(&case))
        .expect("spawn the small-stack thread");
    worker.join().expect("the case succeeds");
}

/// Runs `case` in a child process and reports whether it succeeded.
fn child_succeeds(case: &str) -> bool {
    child(case).status.success()
}

/// Runs `case` in a child process.
fn child(case: &str) -> std::process::Output {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "stack_child_entry",
            "--exact",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CASE_VAR, case)
        .output()
        .expect("run the child")
}

fn assert_fits(form: &str) {
    for container in ["box", "arc", "rc"] {
        let case = format!("{container}/{form}");
        assert!(
            child_succeeds(&case),
            "{case} did not fit in 64 KiB of stack"
        );
    }
}

#[test]
fn initialiser_field_fits_in_64k_stack() {
    assert_fits("initialiser");
}

#[test]
fn array_repeat_field_fits_in_64k_stack() {
    assert_fits("array_repeat");
}

#[test]
fn zeroed_rest_fits_in_64k_stack() {
    assert_fits("zeroed_rest");
}

#[test]
fn array_from_fn_field_fits_in_64k_stack() {
    assert_fits("array_from_fn");
}

#[test]
#[cfg(debug_assertions)]
fn box_new_overflows_64k_stack() {
    let out = child("box/box_new");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "Box::new of 16 MiB should overflow a 64 KiB stack in debug"
    );
    // The failure must be the overflow itself, not some other panic: Rust's guard-page report or
    // AddressSanitizer's, or (under LeakSanitizer, which reports nothing) death by a memory-fault signal.
    let reported = stderr.contains("has overflowed its stack") || stderr.contains("stack-overflow");
    let faulted = matches!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(6 | 7 | 11) // SIGABRT, SIGBUS, SIGSEGV
    );
    assert!(
        reported || faulted,
        "the control failed for another reason ({}): {stderr}",
        out.status
    );
}
