//! The bytes one connection may hold in large frames and replies.
//!
//! A client that sends large requests without reading the replies would otherwise make the
//! server read every request it sends and buffer a reply for each: 256 Treads of 1 MiB in
//! flight held 1.2 GiB for four such connections. With a budget, a large request waits for
//! room until written replies give their bytes back: a Twrite in the connection's reader,
//! before its payload is taken (the next frames stay in the socket), and a Tread or Treaddir in
//! its own task, before its reply is built (a Tflush or a small request behind it is still read).

use std::sync::Arc;

use ninep::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests whose frame and reply data stay under this are not counted: the limit on requests
/// in flight bounds them (256 of them hold under 16 MiB), and counting each metadata round
/// trip cost a third of the pipelined Tgetattr rate.
const COUNTED_FROM: usize = 64 << 10;

/// The budget whatever the msize: room for the 4 MiB a streaming client keeps in flight,
/// several times over.
const MIN_BUDGET: usize = 16 << 20;

/// One connection's byte budget (clones share it).
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: u32,
}

impl Budget {
    /// A budget for a connection whose frames are at most `max_frame` bytes: four of them, and
    /// at least [`MIN_BUDGET`].
    pub fn new(max_frame: u32) -> Budget {
        let total = max_frame.saturating_mul(4).max(MIN_BUDGET as u32);
        Budget {
            bytes: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until `bytes` fit in what is left, and holds them until the permit is dropped.
    /// A small request takes nothing (`None`); one larger than the whole budget takes all of it.
    pub async fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        if bytes < COUNTED_FROM {
            return None;
        }
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.total);
        // The semaphore is never closed, so this only fails if it were.
        self.bytes.clone().acquire_many_owned(bytes).await.ok()
    }
}

/// The most data a request's reply can carry: the count of a Tread or Treaddir, at most one
/// message; other replies are small.
pub fn reply_data(request: &Request, msize: u32) -> usize {
    match request {
        Request::Read { count, .. } | Request::Readdir { count, .. } => {
            (*count).min(msize) as usize
        }
        _ => 0,
    }
}

/// One permit for the bytes two parts of a request hold.
pub fn join(
    a: Option<OwnedSemaphorePermit>,
    b: Option<OwnedSemaphorePermit>,
) -> Option<OwnedSemaphorePermit> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.merge(b);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn large_requests_wait_for_room_and_small_ones_never_do() {
        let budget = Budget::new(1 << 20);
        assert!(budget.take(100).await.is_none(), "a small request");
        let most = budget.take(15 << 20).await.unwrap();
        let next = budget.take(2 << 20);
        tokio::pin!(next);
        tokio::select! {
            biased;
            _ = &mut next => panic!("took bytes that were not free"),
            () = std::future::ready(()) => {}
        }
        assert!(
            budget.take(4096).await.is_none(),
            "small ones pass meanwhile"
        );
        drop(most);
        assert_eq!(next.await.unwrap().num_permits(), 2 << 20);
        let all = budget.take(usize::MAX).await.unwrap();
        assert_eq!(all.num_permits(), 16 << 20, "capped at the whole budget");
    }

    #[test]
    fn reads_carry_their_count_up_to_one_message() {
        let read = |count| Request::Read {
            fid: 1,
            offset: 0,
            count,
        };
        assert_eq!(reply_data(&read(4096), 1 << 20), 4096);
        assert_eq!(reply_data(&read(u32::MAX), 1 << 20), 1 << 20);
        assert_eq!(reply_data(&Request::Clunk { fid: 1 }, 1 << 20), 0);
    }

    #[tokio::test]
    async fn joined_permits_give_back_both_parts() {
        let budget = Budget::new(1 << 20);
        let a = budget.take(1 << 20).await;
        let b = budget.take(2 << 20).await;
        let both = join(a, b).unwrap();
        assert_eq!(both.num_permits(), 3 << 20);
        assert!(join(None, None).is_none());
        drop(both);
        assert_eq!(budget.take(16 << 20).await.unwrap().num_permits(), 16 << 20);
    }
}
