//! Deadlines that follow progress: a guest that keeps printing runs past its timeout, one that stops
//! printing is killed at the stall limit with its stage named.

use std::time::Duration;

/// Prints a line a second for 9 s with a 5 s timeout: a fixed deadline would kill it at 5 s; the
/// progress watch lets it finish (the ceiling is three times the timeout).
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_slow_but_steady_script_runs_past_its_timeout() {
    let out = guest::Vm::builder()
        .timeout(Duration::from_secs(5))
        .run("for i in 1 2 3 4 5 6 7 8 9; do sleep 1; echo step $i; done")
        .expect("a script that keeps printing is not killed");
    assert!(out.success(), "{}", out.log_tail());
    assert_eq!(
        out.stdout.lines().last(),
        Some("step 9"),
        "{}",
        out.log_tail()
    );
    assert!(
        out.elapsed > Duration::from_secs(9),
        "the script ran past the timeout: {:?}",
        out.elapsed
    );
}

/// Output that goes to a file is progress through `progress`, and `stage` lines are not output.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_progress_command_counts_lines_it_hides() {
    let out = guest::Vm::builder()
        .timeout(Duration::from_secs(30))
        .stall_limit(Duration::from_secs(3))
        .run(
            "stage quiet-work\n\
             for i in 1 2 3 4 5 6; do sleep 1; echo line $i; done | tee /tmp/log | progress writing\n\
             echo kept $(wc -l < /tmp/log)",
        )
        .expect("lines counted by progress keep the guest going");
    assert!(out.success(), "{}", out.log_tail());
    assert_eq!(out.stdout, "kept 6\n", "{}", out.log_tail());
}

/// Stops printing in a named stage: killed once the stall limit passes, long before its timeout, and
/// the error names the stage, how long it was quiet and its last line.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_script_that_stops_printing_fails_at_the_stall_limit() {
    let started = std::time::Instant::now();
    let err = guest::Vm::builder()
        .timeout(Duration::from_secs(300))
        .stall_limit(Duration::from_secs(3))
        .run("stage mount-everything; echo about-to-hang; sleep 1000")
        .expect_err("a script silent for 1000 s must stall");
    let waited = started.elapsed();
    let guest::Error::Stalled(stall) = &err else {
        panic!("expected a stall, got: {err}");
    };
    let guest::Stall {
        stage,
        step,
        quiet_for,
        limit,
        slowdown,
        last_line,
        ..
    } = &**stall;
    assert_eq!(*stage, guest::Stage::Script.describe());
    assert_eq!(step.as_deref(), Some("mount-everything"));
    assert_eq!(last_line.as_deref(), Some("about-to-hang"));
    assert_eq!(*limit, Duration::from_secs(3).mul_f64(*slowdown));
    assert!(quiet_for >= limit, "{err}");
    assert!(
        waited < Duration::from_secs(300),
        "killed at the stall limit, not the timeout: {waited:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("stalled while running the script, in its stage \"mount-everything\""),
        "{message}"
    );
    // A sleeping guest's vCPUs halt: the error says it was waiting, not spinning.
    assert!(
        stall
            .qemu_threads
            .iter()
            .flatten()
            .all(|t| !t.is_busy_vcpu()),
        "{message}"
    );
    assert!(
        message.contains("the guest was waiting, not spinning"),
        "{message}"
    );
}

/// A guest that stops printing because it spins: the stall error shows a vCPU thread busy in the
/// second before the kill, so spinning can be told from waiting.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_spinning_script_stalls_with_its_vcpu_busy() {
    let err = guest::Vm::builder()
        .timeout(Duration::from_secs(300))
        .stall_limit(Duration::from_secs(3))
        .run("echo about-to-spin; while :; do :; done")
        .expect_err("a silent spinning script must stall");
    let guest::Error::Stalled(stall) = &err else {
        panic!("expected a stall, got: {err}");
    };
    assert!(
        stall
            .qemu_threads
            .iter()
            .flatten()
            .any(|t| t.is_busy_vcpu()),
        "{err}"
    );
    assert!(
        err.to_string().contains("a vCPU ran: the guest was busy"),
        "{err}"
    );
}
