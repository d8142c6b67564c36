//! Bus Master cleared when the process exits without dropping its device handles.
//!
//! `std::process::exit`, or `main` returning while another thread still owns a handle, runs no
//! destructors, but it does run the C library's `atexit` handlers before the kernel frees the
//! process's memory. Every open device registers its config space file here, and the handler
//! clears Bus Master on each, so a controller left enabled cannot write into hugepages the
//! kernel is about to hand to someone else. A process killed by a signal runs no handler: then
//! closing `/dev/uioN` (uio_pci_generic clears Bus Master in its release hook) or the VFIO device
//! (the IOMMU mappings go first) is what stops the device, and the next open resets it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, TryLockError};
use std::time::{Duration, Instant};

use crate::pci;

/// Config space files of the open devices, by registration, with the process that opened them.
static OPEN: Mutex<Vec<(u64, u32, PathBuf)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
static HOOK: Once = Once::new();

/// A device's entry in the exit list, removed when dropped.
#[derive(Debug)]
pub(crate) struct ExitGuard {
    id: u64,
}

impl ExitGuard {
    /// Has Bus Master of the function whose config space is `config` cleared at process exit.
    pub(crate) fn register(config: PathBuf) -> ExitGuard {
        HOOK.call_once(|| {
            // SAFETY: `at_exit` is a plain `extern "C"` function that never unwinds (it catches
            // nothing because nothing in it panics: every failure is ignored) and lives for the
            // whole program. A failed registration (only on resource exhaustion) leaves the
            // documented signal-path behaviour.
            #[allow(unsafe_code)]
            let _ = unsafe { libc::atexit(at_exit) };
        });
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        OPEN.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, std::process::id(), config));
        ExitGuard { id }
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(id, _, _)| *id != self.id);
    }
}

extern "C" fn at_exit() {
    // Another thread may hold the list for a moment (opening or closing a device); other
    // threads keep running until the process ends, so wait a little rather than skip.
    let deadline = Instant::now() + Duration::from_millis(200);
    let open = loop {
        match OPEN.try_lock() {
            Ok(guard) => break guard,
            Err(TryLockError::Poisoned(p)) => break p.into_inner(),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => return,
        }
    };
    // A child of `fork` that exits without `exec` inherits the list and the hook, but not the
    // devices' owner role: only the process that opened a device stops it.
    let me = std::process::id();
    for (_, _, config) in open.iter().filter(|(_, pid, _)| *pid == me) {
        let _ = pci::clear_bus_master_at(config);
    }
}
