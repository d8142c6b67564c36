//! A QEMU TCG plugin that counts the instructions the guest executes.
//!
//! Wall time in a guest under TCG mixes the guest's own work with the emulator's (device emulation,
//! traps, the host's scheduling). Instructions do not: two drivers that run the same workload can be
//! compared by the guest instructions each needs per I/O, exactly and without the host's noise.
//!
//! How it counts: each translation block gets a counter, and QEMU's generated code adds the block's
//! instruction count to it whenever the block runs (an inline add, no call). A block run by both
//! vCPUs at the same instant can lose an add; that is rare, and the counts are totals over millions
//! of blocks.
//!
//! How it is read: QEMU loads the plugin with `-plugin libtcg_insn_count.so,dir=DIR`. A thread of
//! the plugin watches `DIR/request`: a file holding the path to write a snapshot to. It writes
//! `instructions N` (the total so far) to that path, atomically (a temporary file renamed), then
//! removes the request. [`Snapshot`] is the harness's side.
//!
//! With `blocks=on` every snapshot also lists the kernel's translation blocks that ran: address,
//! length and instructions executed. Matched against the guest's `/proc/kallsyms`, they say which
//! kernel functions the instructions went to, and how often each was entered.

mod counters;
mod plugin;

pub use counters::{BlockCount, Snapshot};
