//! First come, first served among the waiters for the VM lock.
//!
//! `flock` wakes its waiters in no order, and a test process that releases the lock takes it again for its
//! next test within milliseconds, so a waiter could wait for a whole test binary, or longer. Waiters
//! therefore line up in a queue file beside the lock (`<lock>.queue`, one `ticket pid start-time` line
//! each, edited under its own short `flock`), and only the first in line tries the lock. Entries of
//! processes that have exited are dropped by whoever edits the queue next.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::lock::{Process, open_shared};

/// The queue file of the lock at `lock`.
pub(crate) fn queue_path(lock: &Path) -> PathBuf {
    let mut name = lock.as_os_str().to_owned();
    name.push(".queue");
    PathBuf::from(name)
}

/// One waiter's place in line; leaves the line when dropped.
#[derive(Debug)]
pub(crate) struct Ticket {
    queue: PathBuf,
    entry: Entry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    ticket: u64,
    process: Process,
}

impl Ticket {
    /// Joins the end of the line. `None` when the queue file cannot be used (a read-only file of
    /// another user): the caller then competes for the lock without a place in line.
    pub(crate) fn take(queue: &Path) -> Option<Ticket> {
        let me = Process::find(std::process::id())?;
        let mut taken = None;
        edit(queue, |entries| {
            let ticket = entries.iter().map(|e| e.ticket).max().unwrap_or(0) + 1;
            let entry = Entry {
                ticket,
                process: me,
            };
            entries.push(entry);
            taken = Some(entry);
        })
        .ok()?;
        Some(Ticket {
            queue: queue.to_path_buf(),
            entry: taken?,
        })
    }

    /// How many live waiters are ahead of this one, and how many wait in all.
    pub(crate) fn position(&self) -> (usize, usize) {
        match edit(&self.queue, |_| {}) {
            Ok(entries) => {
                let ahead = entries.iter().take_while(|e| **e != self.entry).count();
                (ahead.min(entries.len()), entries.len())
            }
            // The queue broke under us: do not block on it.
            Err(_) => (0, 1),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let entry = self.entry;
        let _ = edit(&self.queue, |entries| entries.retain(|e| *e != entry));
    }
}

/// Under the queue's own lock: reads the entries, drops those of exited processes, applies `change`,
/// writes them back in ticket order and returns them.
fn edit(queue: &Path, change: impl FnOnce(&mut Vec<Entry>)) -> std::io::Result<Vec<Entry>> {
    let file = open_shared(queue).map_err(std::io::Error::other)?;
    flock(&file, FlockOperation::LockExclusive)?;
    let mut text = String::new();
    (&file).read_to_string(&mut text)?;
    let mut entries: Vec<Entry> = text.lines().filter_map(parse).collect();
    entries.retain(|e| e.process.alive());
    change(&mut entries);
    entries.sort_by_key(|e| e.ticket);
    let text: String = entries
        .iter()
        .map(|e| format!("{} {} {}\n", e.ticket, e.process.pid, e.process.start))
        .collect();
    write_all(&file, text.as_bytes())?;
    Ok(entries)
}

fn write_all(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    file.set_len(0)?;
    file.write_all_at(bytes, 0)
}

fn parse(line: &str) -> Option<Entry> {
    let mut words = line.split_whitespace();
    let ticket = words.next()?.parse().ok()?;
    let pid = words.next()?.parse().ok()?;
    let start = words.next()?.parse().ok()?;
    Some(Entry {
        ticket,
        process: Process { pid, start },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_line_up_in_order_and_leave_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("vm.lock.queue");
        let first = Ticket::take(&queue).unwrap();
        let second = Ticket::take(&queue).unwrap();
        assert_eq!(first.position(), (0, 2));
        assert_eq!(second.position(), (1, 2));
        drop(first);
        assert_eq!(second.position(), (0, 1));
        let third = Ticket::take(&queue).unwrap();
        assert_eq!(third.position(), (1, 2));
        drop(second);
        drop(third);
        assert_eq!(std::fs::read_to_string(&queue).unwrap(), "");
    }

    #[test]
    fn exited_waiters_and_garbage_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("vm.lock.queue");
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        std::fs::write(&queue, format!("1 {dead} 12345\nnot an entry\n")).unwrap();
        let mine = Ticket::take(&queue).unwrap();
        assert_eq!(mine.position(), (0, 1), "a dead waiter is not waited for");
    }

    #[test]
    fn the_queue_sits_beside_the_lock() {
        assert_eq!(
            queue_path(Path::new("/run/lock/kangrejos-vm.lock")),
            Path::new("/run/lock/kangrejos-vm.lock.queue")
        );
    }
}
