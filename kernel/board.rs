// SPDX-License-Identifier: GPL-2.0

//! The board: notes in two intrusive lists under one mutex, processed by a work item.

use kernel::{
    impl_has_work, impl_list_arc_safe, impl_list_item,
    list::{List, ListArc, ListLinks},
    new_condvar, new_mutex, new_work,
    prelude::*,
    str::CString,
    sync::{
        Arc, CondVar, Mutex,
        atomic::{Atomic, Relaxed},
    },
    workqueue::{self, Work, WorkItem},
};

/// The largest note a write may post, in bytes.
pub(crate) const MAX_NOTE: usize = 1024;
/// Notes the board keeps at most; a post beyond fails with `ENOSPC`.
pub(crate) const MAX_NOTES: usize = 4096;

/// One posted note: an intrusive list node, so moving it between lists allocates nothing.
#[pin_data]
struct Note {
    seq: u64,
    /// FNV-1a 64 of `text`, written by the work item before it moves the note to `done`.
    checksum: Atomic<u64>,
    text: KVec<u8>,
    #[pin]
    links: ListLinks,
}

impl_list_arc_safe! {
    impl ListArcSafe<0> for Note { untracked; }
}

impl_list_item! {
    impl ListItem<0> for Note { using ListLinks { self.links }; }
}

/// What the mutex protects.
struct Notes {
    pending: List<Note>,
    done: List<Note>,
    count: usize,
    next_seq: u64,
}

impl Drop for Notes {
    fn drop(&mut self) {
        // The lists free their notes as they drop.
        pr_info!("freeing {} note(s)\n", self.count);
    }
}

/// The shared state. Pinned: the mutex, the condition variable and the work item hold addresses
/// the kernel keeps (wait lists, the workqueue's list), so it is built in place in its `Arc`.
#[pin_data]
pub(crate) struct Board {
    #[pin]
    notes: Mutex<Notes>,
    /// Signalled by the work item after it processed the pending notes.
    #[pin]
    processed: CondVar,
    #[pin]
    work: Work<Board>,
}

impl_has_work! {
    impl HasWork<Self> for Board { self.work }
}

impl WorkItem for Board {
    type Pointer = Arc<Board>;

    fn run(this: Arc<Board>) {
        let mut notes = this.notes.lock();
        while let Some(note) = notes.pending.pop_front() {
            note.checksum.store(fnv1a(&note.text), Relaxed);
            notes.done.push_back(note);
        }
        drop(notes);
        this.processed.notify_all();
    }
}

impl Board {
    pub(crate) fn new() -> Result<Arc<Board>> {
        Arc::pin_init(
            pin_init!(Board {
                notes <- new_mutex!(Notes {
                    pending: List::new(),
                    done: List::new(),
                    count: 0,
                    next_seq: 1,
                }),
                processed <- new_condvar!(),
                work <- new_work!("kangrejos::Board::work"),
            }),
            GFP_KERNEL,
        )
    }

    /// Queues `text` as a new note and schedules the work item.
    pub(crate) fn post(self: &Arc<Self>, text: KVec<u8>) -> Result {
        let mut notes = self.notes.lock();
        if notes.count >= MAX_NOTES {
            return Err(ENOSPC);
        }
        let seq = notes.next_seq;
        let note = ListArc::pin_init(
            try_pin_init!(Note {
                seq,
                checksum: Atomic::new(0),
                text,
                links <- ListLinks::new(),
            }),
            GFP_KERNEL,
        )?;
        notes.pending.push_back(note);
        notes.count += 1;
        notes.next_seq += 1;
        drop(notes);
        // Already queued: that run will see this note too.
        let _ = workqueue::system_unbound().enqueue(self.clone());
        Ok(())
    }

    /// The processed notes as text, once the notes posted so far are processed.
    pub(crate) fn render(&self) -> Result<KVVec<u8>> {
        let mut notes = self.notes.lock();
        while !notes.pending.is_empty() {
            if self.processed.wait_interruptible(&mut notes) {
                return Err(ERESTARTSYS);
            }
        }
        let mut out = KVVec::new();
        for note in notes.done.iter() {
            let head =
                CString::try_from_fmt(fmt!("{} {:016x} ", note.seq, note.checksum.load(Relaxed)))?;
            out.extend_from_slice(head.to_bytes(), GFP_KERNEL)?;
            out.extend_from_slice(&note.text, GFP_KERNEL)?;
            out.push(b'\n', GFP_KERNEL)?;
        }
        Ok(out)
    }

    /// Waits until the work item is idle (called at unload, when no file can post anymore).
    pub(crate) fn flush(&self) {
        // SAFETY: `self.work` is a `Work` initialised by `new` and pinned inside this live `Board`,
        // so its `work_struct` is valid; the workqueue abstraction has no flush of its own.
        unsafe { kernel::bindings::flush_work(Work::raw_get(&self.work)) };
    }
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
