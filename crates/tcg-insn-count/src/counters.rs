//! The counters and their snapshot file: no QEMU in here.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One translation block: its instruction count and how many instructions it has run (the
/// generated code adds to `executed`).
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) executed: AtomicU64,
}

/// Every block translated so far. Blocks live as long as the process: QEMU keeps the address of
/// their counters in code it may run until it exits.
#[derive(Debug, Default)]
pub(crate) struct Blocks(Mutex<Vec<&'static Block>>);

impl Blocks {
    /// A new block's counter, at an address that stays valid until the process exits.
    pub(crate) fn add(&self) -> &'static Block {
        let block: &'static Block = Box::leak(Box::new(Block {
            executed: AtomicU64::new(0),
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
}

/// What a snapshot file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Guest instructions executed since QEMU started, over all vCPUs.
    pub instructions: u64,
}

impl Snapshot {
    /// Writes the snapshot to `path` so that a reader sees all of it or nothing.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "instructions {}", self.instructions)?;
        drop(f);
        std::fs::rename(&tmp, path)
    }

    /// Parses a snapshot file's text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Snapshot> {
        let n = text.trim().strip_prefix("instructions ")?;
        Some(Snapshot {
            instructions: n.parse().ok()?,
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
    /// gets a snapshot of `blocks`, and the request is removed. Polls every millisecond (a stat).
    pub(crate) fn serve(dir: &Path, blocks: &Blocks) -> ! {
        let request = dir.join("request");
        loop {
            std::thread::sleep(std::time::Duration::from_millis(1));
            let Ok(target) = std::fs::read_to_string(&request) else {
                continue;
            };
            let snapshot = Snapshot {
                instructions: blocks.total(),
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

    #[test]
    fn a_snapshot_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        Snapshot {
            instructions: 123_456_789_012,
        }
        .write(&path)
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            Snapshot::parse(&text),
            Some(Snapshot {
                instructions: 123_456_789_012
            })
        );
        assert!(!path.with_extension("tmp").exists());
        assert_eq!(Snapshot::parse("instructions x"), None);
        assert_eq!(Snapshot::parse(""), None);
    }

    #[test]
    fn the_total_sums_every_block() {
        let blocks = Blocks::default();
        let a = blocks.add();
        let b = blocks.add();
        a.executed.fetch_add(7, Relaxed);
        b.executed.fetch_add(5, Relaxed);
        a.executed.fetch_add(7, Relaxed);
        assert_eq!(blocks.total(), 19);
    }

    #[test]
    fn a_request_is_answered_with_the_total_at_that_time() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_path_buf();
        let blocks: &'static Blocks = Box::leak(Box::default());
        let block = blocks.add();
        block.executed.fetch_add(42, Relaxed);
        let served = dir.clone();
        std::thread::spawn(move || Snapshot::serve(&served, blocks));
        let wait = std::time::Duration::from_secs(10);
        assert_eq!(
            Snapshot::take(&dir, wait),
            Some(Snapshot { instructions: 42 })
        );
        block.executed.fetch_add(8, Relaxed);
        assert_eq!(
            Snapshot::take(&dir, wait),
            Some(Snapshot { instructions: 50 })
        );
        assert!(!dir.join("request").exists());
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
