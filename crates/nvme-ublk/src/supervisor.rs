//! What the daemon does when a queue thread fails.
//!
//! libublk starts the device only once every queue thread has fetched its requests, and cannot be
//! told that one never will: a queue that fails before then (its ring cannot be made, say for want
//! of a file descriptor) would leave the main thread waiting forever, deaf to SIGTERM, which the
//! daemon handles itself. So such a failure ends the process, with its reason. First a thread made
//! for the purpose asks the kernel to delete the device. The failure may be that no file descriptor
//! is left, so that thread made its control ring before any queue started, and holds a spare
//! descriptor that it closes to open the control device. The kernel removes the device once the
//! process's descriptors close, and closing the vfio descriptors stops the controller's DMA.
//!
//! libublk's `run_target` also returns on a failure to start without ending the queue threads,
//! which keep the device open; dropping the control handle would then wait for the device to
//! close, for ever. So that failure ends the process the same way.
//!
//! A queue that fails while serving stops the device as SIGTERM would, and the daemon then exits
//! with the reason.

use std::fs::File;
use std::sync::Mutex;
use std::sync::mpsc::{self, Sender};

use anyhow::{Context, Result};
use libublk::ctrl::UblkCtrl;
use libublk::{UblkError, ublk_init_ctrl_task_ring};
use signal_hook::iterator::Handle;

/// Entries of the supervisor thread's control ring (libublk's own default).
const CONTROL_RING_ENTRIES: u32 = 16;

/// How a queue thread failed.
#[derive(Debug)]
pub enum Failure {
    /// Before the queue fetched its requests: the device cannot start.
    Setup(anyhow::Error),
    /// While serving.
    Serving(anyhow::Error),
}

/// Acts on queue threads' failures (see the module's documentation); shared by the queue threads
/// and the main thread.
pub struct Supervisor {
    /// To the thread that deletes the device and ends the process.
    abandon: Sender<String>,
    /// Ends the main thread's wait for a signal.
    signals: Handle,
    /// The first failure while serving.
    failure: Mutex<Option<String>>,
}

impl Supervisor {
    /// Readies the thread that ends the process, deleting ublk device `dev_id` if `delete`, when a
    /// queue cannot be set up; `signals` is the handle of the iterator the main thread waits on.
    pub fn new(dev_id: u32, delete: bool, signals: Handle) -> Result<Self> {
        let id = i32::try_from(dev_id).context("ublk device id")?;
        let (abandon, reasons) = mpsc::channel::<String>();
        let (ready, prepared) = mpsc::sync_channel::<Result<()>>(1);
        std::thread::Builder::new()
            .name("ublk-abandon".into())
            .spawn(move || {
                let spare = match prepare() {
                    Ok(spare) => {
                        let _ = ready.send(Ok(()));
                        spare
                    }
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                // Disconnected (the daemon is stopping normally): nothing to do.
                if let Ok(reason) = reasons.recv() {
                    eprintln!("nvme-ublk: {reason}");
                    drop(spare);
                    if !delete {
                        eprintln!(
                            "nvme-ublk: ublk device {id} is left as it is: another daemon may \
                             take it over, or `nvme-ublk --delete {id}` gives it up"
                        );
                    } else if let Err(err) =
                        UblkCtrl::new_simple(id).and_then(|ctrl| ctrl.del_dev_async())
                    {
                        eprintln!("nvme-ublk: ublk device {id} was not deleted: {err}");
                    }
                    std::process::exit(1);
                }
            })
            .context("starting the supervisor thread")?;
        prepared
            .recv()
            .context("the supervisor thread ended")?
            .context("preparing the supervisor thread")?;
        Ok(Self {
            abandon,
            signals,
            failure: Mutex::new(None),
        })
    }

    /// Acts on queue `qid`'s failure: see the module's documentation.
    pub fn queue_failed(&self, qid: u16, failure: Failure) {
        match failure {
            Failure::Setup(err) => self.abandon(format!("queue {qid}: {err:#}")),
            Failure::Serving(err) => {
                tracing::error!("queue {qid}: {err:#}");
                if let Ok(mut first) = self.failure.lock() {
                    first.get_or_insert_with(|| format!("queue {qid}: {err:#}"));
                }
                self.signals.close();
            }
        }
    }

    /// Ends the process with `reason`, after asking the kernel to delete the device. For failures
    /// that leave queue threads waiting for a device that will not start.
    pub fn abandon(&self, reason: String) -> ! {
        if let Err(unsent) = self.abandon.send(reason) {
            // The supervisor thread is gone: end the process from here.
            eprintln!("nvme-ublk: {}", unsent.0);
            std::process::exit(1);
        }
        // The process ends from the supervisor thread.
        loop {
            std::thread::park();
        }
    }

    /// The first failure while serving, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// Makes the calling thread's control ring (libublk keeps one per thread) and opens the spare
/// descriptor.
fn prepare() -> Result<File> {
    ublk_init_ctrl_task_ring(|ring| {
        if ring.is_none() {
            *ring = Some(
                io_uring::IoUring::<io_uring::squeue::Entry128>::builder()
                    .build(CONTROL_RING_ENTRIES)
                    .map_err(UblkError::IOError)?,
            );
        }
        Ok(())
    })
    .context("making the control ring")?;
    File::open("/dev/null").context("opening a spare descriptor")
}
