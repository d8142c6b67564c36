//! The counters and their snapshot file: no QEMU in here.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Guest addresses from here up are the kernel's (the upper half of x86-64's address space).
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// One translation block: where it starts, its instruction count, and how many instructions it
/// has run (the generated code adds to `executed`).
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) executed: AtomicU64,
    vaddr: u64,
    insns: u32,
}

/// Every block translated so far. Blocks live as long as the process: QEMU keeps the address of
/// their counters in code it may run until it exits.
#[derive(Debug, Default)]
pub(crate) struct Blocks(Mutex<Vec<&'static Block>>);

impl Blocks {
    /// A new counter for the block of `insns` instructions at guest address `vaddr`, at an address
    /// that stays valid until the process exits.
    pub(crate) fn add(&self, vaddr: u64, insns: u32) -> &'static Block {
        let block: &'static Block = Box::leak(Box::new(Block {
            executed: AtomicU64::new(0),
            vaddr,
            insns,
        }));
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(block);
        block
    }

    /// Instructions executed by all blocks so far.
    pub(crate) fn total(&self) -> u64 {
        let blocks = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        blocks.iter().map(|b| b.executed.load(Relaxed)).sum()
    }

    /// The kernel's blocks that ran, by address (a block translated again adds to the same entry),
    /// in address order.
    pub(crate) fn kernel_counts(&self) -> Vec<BlockCount> {
        let blocks = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut by_address: HashMap<u64, BlockCount> = HashMap::new();
        for b in blocks.iter().filter(|b| b.vaddr >= KERNEL_HALF) {
            let executed = b.executed.load(Relaxed);
            if executed == 0 {
                continue;
            }
            let entry = by_address.entry(b.vaddr).or_insert(BlockCount {
                vaddr: b.vaddr,
                insns: b.insns,
                executed: 0,
            });
            entry.executed += executed;
        }
        let mut counts: Vec<BlockCount> = by_address.into_values().collect();
        counts.sort_by_key(|c| c.vaddr);
        counts
    }
}

/// What one kernel block (by its guest address) has run so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCount {
    pub vaddr: u64,
    /// Instructions in the block.
    pub insns: u32,
    /// Instructions it executed, over all its runs.
    pub executed: u64,
}

impl BlockCount {
    /// How many times the block ran (started; a run cut short by an interrupt counts whole).
    pub fn runs(&self) -> u64 {
        self.executed / u64::from(self.insns.max(1))
    }
}

/// What a snapshot file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Guest instructions executed since QEMU started, over all vCPUs.
    pub instructions: u64,
    /// The kernel's blocks that ran so far, in address order, when the plugin was asked for them
    /// (`blocks=on`); empty otherwise.
    pub blocks: Vec<BlockCount>,
}

impl Snapshot {
    /// Writes the snapshot to `path` so that a reader sees all of it or nothing.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let f = std::fs::File::create(&tmp)?;
        let mut f = std::io::BufWriter::new(f);
        writeln!(f, "instructions {}", self.instructions)?;
        for b in &self.blocks {
            writeln!(f, "block {:x} {} {}", b.vaddr, b.insns, b.executed)?;
        }
        f.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path)
    }

    /// Parses a snapshot file's text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Snapshot> {
        let mut lines = text.lines();
        let n = lines.next()?.trim().strip_prefix("instructions ")?;
        let mut blocks = Vec::new();
        for line in lines {
            let mut fields = line.strip_prefix("block ")?.split(' ');
            let mut next = || fields.next();
            blocks.push(BlockCount {
                vaddr: u64::from_str_radix(next()?, 16).ok()?,
                insns: next()?.parse().ok()?,
                executed: next()?.parse().ok()?,
            });
        }
        Some(Snapshot {
            instructions: n.parse().ok()?,
            blocks,
        })
    }

    /// Asks the plugin serving `dir` for a snapshot and waits up to `timeout` for it; `None` if none
    /// came (no plugin loaded, or it did not answer in time).
    pub fn take(dir: &Path, timeout: std::time::Duration) -> Option<Snapshot> {
        let target = dir.join("snapshot");
        let _ = std::fs::remove_file(&target);
        let pending = dir.join("request.tmp");
        std::fs::write(&pending, target.to_str()?).ok()?;
        std::fs::rename(&pending, dir.join("request")).ok()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(text) = std::fs::read_to_string(&target) {
                let _ = std::fs::remove_file(&target);
                return Snapshot::parse(&text);
            }
            if std::time::Instant::now() >= deadline {
                // Withdrawn, so that a late plugin does not answer the next request's question.
                let _ = std::fs::remove_file(dir.join("request"));
                return None;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    /// Serves requests in `dir` until the process exits: each `dir/request` names a path, which
    /// gets a snapshot of `blocks` (with the kernel's blocks if `per_block`), and the request is
    /// removed. Polls every millisecond (a stat).
    pub(crate) fn serve(dir: &Path, blocks: &Blocks, per_block: bool) -> ! {
        let request = dir.join("request");
        loop {
            std::thread::sleep(std::time::Duration::from_millis(1));
            let Ok(target) = std::fs::read_to_string(&request) else {
                continue;
            };
            let snapshot = Snapshot {
                instructions: blocks.total(),
                blocks: match per_block {
                    true => blocks.kernel_counts(),
                    false => Vec::new(),
                },
            };
            if let Err(e) = snapshot.write(Path::new(target.trim())) {
                eprintln!("tcg-insn-count: cannot write {}: {e}", target.trim());
            }
            let _ = std::fs::remove_file(&request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL: u64 = 0xffff_ffff_8100_0000;

    fn total(instructions: u64) -> Snapshot {
        Snapshot {
            instructions,
            blocks: Vec::new(),
        }
    }

    #[test]
    fn a_snapshot_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let blocks = vec![
            BlockCount {
                vaddr: KERNEL,
                insns: 7,
                executed: 700,
            },
            BlockCount {
                vaddr: KERNEL + 0x40,
                insns: 3,
                executed: 9,
            },
        ];
        for snapshot in [
            total(123_456_789_012),
            Snapshot {
                instructions: 5,
                blocks,
            },
        ] {
            snapshot.write(&path).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(Snapshot::parse(&text), Some(snapshot));
            assert!(!path.with_extension("tmp").exists());
        }
        assert_eq!(Snapshot::parse("instructions x"), None);
        assert_eq!(Snapshot::parse(""), None);
        assert_eq!(Snapshot::parse("instructions 5\nblock 12 x 3"), None);
        assert_eq!(Snapshot::parse("instructions 5\nsomething else"), None);
    }

    #[test]
    fn the_total_sums_every_block() {
        let blocks = Blocks::default();
        let a = blocks.add(1, 7);
        let b = blocks.add(2, 5);
        a.executed.fetch_add(7, Relaxed);
        b.executed.fetch_add(5, Relaxed);
        a.executed.fetch_add(7, Relaxed);
        assert_eq!(blocks.total(), 19);
    }

    #[test]
    fn kernel_counts_merge_translations_of_one_address_and_leave_out_user_space_and_idle_blocks() {
        let blocks = Blocks::default();
        blocks.add(0x40_1000, 4).executed.fetch_add(400, Relaxed);
        blocks.add(KERNEL + 8, 2).executed.fetch_add(6, Relaxed);
        blocks.add(KERNEL, 5).executed.fetch_add(10, Relaxed);
        // Translated again (after a flush of the translation cache), with the same length.
        blocks.add(KERNEL, 5).executed.fetch_add(15, Relaxed);
        blocks.add(KERNEL + 16, 3);
        let counts = blocks.kernel_counts();
        assert_eq!(
            counts,
            [
                BlockCount {
                    vaddr: KERNEL,
                    insns: 5,
                    executed: 25
                },
                BlockCount {
                    vaddr: KERNEL + 8,
                    insns: 2,
                    executed: 6
                },
            ]
        );
        assert_eq!(counts[0].runs(), 5);
        assert_eq!(counts[1].runs(), 3);
    }

    #[test]
    fn a_request_is_answered_with_the_total_at_that_time() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        let blocks: &'static Blocks = Box::leak(Box::default());
        let block = blocks.add(KERNEL, 2);
        block.executed.fetch_add(42, Relaxed);
        let served = dir.clone();
        std::thread::spawn(move || Snapshot::serve(&served, blocks, false));
        let wait = std::time::Duration::from_secs(10);
        assert_eq!(Snapshot::take(&dir, wait), Some(total(42)));
        block.executed.fetch_add(8, Relaxed);
        assert_eq!(Snapshot::take(&dir, wait), Some(total(50)));
        assert!(!dir.join("request").exists());
    }

    #[test]
    fn a_plugin_serving_blocks_answers_with_the_kernel_blocks_too() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        let blocks: &'static Blocks = Box::leak(Box::default());
        blocks.add(KERNEL, 2).executed.fetch_add(42, Relaxed);
        blocks.add(0x1000, 1).executed.fetch_add(1, Relaxed);
        let served = dir.clone();
        std::thread::spawn(move || Snapshot::serve(&served, blocks, true));
        let snapshot = Snapshot::take(&dir, std::time::Duration::from_secs(10)).unwrap();
        assert_eq!(snapshot.instructions, 43);
        assert_eq!(
            snapshot.blocks,
            [BlockCount {
                vaddr: KERNEL,
                insns: 2,
                executed: 42
            }]
        );
    }

    #[test]
    fn without_a_plugin_a_request_times_out_and_is_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let started = std::time::Instant::now();
        assert_eq!(
            Snapshot::take(dir, std::time::Duration::from_millis(50)),
            None
        );
        assert!(started.elapsed() >= std::time::Duration::from_millis(50));
        assert!(!dir.join("request").exists());
    }
}
