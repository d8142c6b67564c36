//! Faults a test build can inject into request handling, to check that the server contains
//! them. Handlers have no panic a client could trigger, so this is the only way to exercise
//! the containment from outside. Compiled only under `cfg(test)`.

use std::sync::Mutex;

/// The faults armed on a server (none by default).
#[derive(Debug, Default)]
pub struct Faults {
    panic_in: Mutex<Option<&'static str>>,
}

impl Faults {
    /// Makes the handler of every later request named `request` (e.g. `"Tstatfs"`) panic.
    pub fn panic_in(&self, request: &'static str) {
        *self.panic_in.lock().unwrap() = Some(request);
    }

    /// Runs at the start of every handler. An armed panic happens after one yield, so it
    /// strikes in a later poll than the first, as a panic after an `.await` would.
    pub async fn inject(&self, request: &str) {
        let armed = *self.panic_in.lock().unwrap() == Some(request);
        if armed {
            tokio::task::yield_now().await;
            panic!("injected panic in {request}");
        }
    }
}
