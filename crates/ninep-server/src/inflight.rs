//! The requests in flight on one connection, by tag, so that Tflush and Tversion can cancel
//! them.
//!
//! Cancelling aborts the request's task, which drops its future: whatever it held (fids,
//! descriptors, a lock wait) is released by `Drop`. A watch channel whose sender lives inside
//! the task tells waiters when the task is gone, finished or cancelled; only then is Rflush
//! sent, so a reply for the old tag can never follow it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::task::AbortHandle;

#[derive(Debug)]
struct Entry {
    id: u64,
    abort: AbortHandle,
    done: watch::Receiver<()>,
}

/// The table of running requests of one connection.
#[derive(Debug, Default)]
pub struct InFlight {
    tasks: Mutex<HashMap<u16, Entry>>,
    next_id: Mutex<u64>,
}

/// Removes a finished (or dropped) request from the table.
struct Finish {
    table: Arc<InFlight>,
    tag: u16,
    id: u64,
    _done: watch::Sender<()>,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let mut tasks = self.table.lock();
        if tasks.get(&self.tag).is_some_and(|e| e.id == self.id) {
            tasks.remove(&self.tag);
        }
    }
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, HashMap<u16, Entry>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the request with `tag` (if any) is gone. A client may reuse a tag as soon
    /// as it has the reply, which the task sends just before it finishes.
    pub async fn wait(&self, tag: u16) {
        let waiter = self.lock().get(&tag).map(|e| e.done.clone());
        if let Some(mut done) = waiter {
            while done.changed().await.is_ok() {}
        }
    }

    /// Spawns the task of a request under `tag`.
    pub fn spawn<F>(self: &Arc<Self>, tag: u16, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let (tx, rx) = watch::channel(());
        let finish = Finish {
            table: self.clone(),
            tag,
            id,
            _done: tx,
        };
        // The table stays locked until the entry is in, so a task that finishes at once
        // cannot try to remove itself first.
        let mut tasks = self.lock();
        let handle = tokio::spawn(async move {
            let _finish = finish;
            fut.await;
        });
        tasks.insert(
            tag,
            Entry {
                id,
                abort: handle.abort_handle(),
                done: rx,
            },
        );
    }

    /// Cancels the request with `tag` (if any) and waits until its task is gone.
    pub async fn cancel(&self, tag: u16) {
        let waiter = self.lock().get(&tag).map(|e| {
            e.abort.abort();
            e.done.clone()
        });
        if let Some(mut done) = waiter {
            while done.changed().await.is_ok() {}
        }
    }

    /// Cancels every request and waits until all their tasks are gone.
    pub async fn cancel_all(&self) {
        let waiters: Vec<_> = self
            .lock()
            .values()
            .map(|e| {
                e.abort.abort();
                e.done.clone()
            })
            .collect();
        for mut done in waiters {
            while done.changed().await.is_ok() {}
        }
    }
}
