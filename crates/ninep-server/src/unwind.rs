//! Containing a panic in a request handler to that one request.
//!
//! A handler that panics (a bug) must still answer its tag, or the client waits on it for
//! ever; and metadata requests run in the connection's reader task, which a panic would end
//! along with every other request of the connection. [`catch_panic`] polls a future inside
//! `catch_unwind`, so a panic ends only that future. Unwinding drops what the future held
//! (fids, descriptors, credential guards) as on any other exit.
//!
//! No new dependency: `std::panic::catch_unwind` around each `poll`, with the future pinned on
//! the stack, is all `futures`' `FutureExt::catch_unwind` does, without a per-request box.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;

/// The payload of a caught panic.
pub type Panic = Box<dyn Any + Send>;

/// Runs `fut` to completion, returning the panic's payload instead if a poll panics.
///
/// `AssertUnwindSafe` is sound here in the sense that matters: what handlers share (the fid
/// table and each fid's state) sits behind mutexes whose users all recover from poisoning,
/// and each state change is a single assignment, so a panic leaves no half-made change that
/// a later request could trip over.
pub async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Panic> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        },
    )
    .await
}

/// The message of a panic, for the log line.
pub fn message(panic: &Panic) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_after_an_await_becomes_an_error() {
        let caught = catch_panic(async {
            tokio::task::yield_now().await;
            if true {
                panic!("handler bug {}", 7);
            }
            1
        })
        .await;
        let panic = caught.expect_err("the panic is caught");
        assert_eq!(message(&panic), "handler bug 7");
    }

    #[tokio::test]
    async fn a_future_that_does_not_panic_returns_its_output() {
        let out = catch_panic(async {
            tokio::task::yield_now().await;
            42
        })
        .await;
        assert_eq!(out.ok(), Some(42));
    }

    #[tokio::test]
    async fn a_literal_message_is_reported() {
        let panic = catch_panic(async { panic!("plain") }).await.unwrap_err();
        assert_eq!(message(&panic), "plain");
    }
}
