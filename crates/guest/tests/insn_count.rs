//! Guest instructions counted by QEMU's `tcg-insn-count` plugin, read at the guest's host stamps.

use std::time::Duration;

/// A busy loop between two stamps counts many more instructions than a sleep of the same length,
/// and a run without the plugin has no count at all.
#[test]
#[ignore = "boots a QEMU guest: run by cargo xtask test"]
fn guest_instructions_are_counted_between_host_stamps() {
    let script = "host-stamp begin idle\nsleep 1\nhost-stamp end idle\n\
                  host-stamp begin busy\n\
                  i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done\n\
                  host-stamp end busy\necho done";
    let out = guest::Vm::builder()
        .accel(guest::Accel::Tcg)
        .count_instructions(true)
        .timeout(Duration::from_secs(60))
        .run(script)
        .expect("the guest runs");
    assert!(out.success(), "{}", out.log_tail());
    let loads = guest::loads_by_label(&out.host_stamps);
    let count = |label: &str| {
        loads
            .iter()
            .find(|(l, _)| l == label)
            .and_then(|(_, load)| load.guest_instructions)
            .unwrap_or_else(|| panic!("no count for {label}: {loads:?}"))
    };
    let (idle, busy) = (count("idle"), count("busy"));
    // 20,000 rounds of a shell loop are tens of millions of instructions; an idle second is the
    // timer's and the shell's few.
    assert!(busy > 10_000_000, "busy {busy}");
    assert!(busy > 3 * idle, "busy {busy}, idle {idle}");

    let plain = guest::Vm::builder()
        .accel(guest::Accel::Tcg)
        .timeout(Duration::from_secs(60))
        .run("host-stamp begin x\nhost-stamp end x")
        .expect("the guest runs");
    let loads = guest::loads_by_label(&plain.host_stamps);
    assert!(
        loads
            .iter()
            .all(|(_, load)| load.guest_instructions.is_none()),
        "{loads:?}"
    );
}
