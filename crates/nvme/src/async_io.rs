//! A `Future` adapter over a queue pair, for single-threaded executors.
//!
//! Each [`Io`] future submits its request when first polled and completes when the queue pair
//! reports it. Polling any future reaps completions for all of them; since the driver polls
//! instead of taking interrupts, a pending future asks to be polled again at once.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::platform::Platform;
use crate::queue_pair::QueuePair;
use crate::request::{Completion, Request};

/// A queue pair shared by the futures of one thread.
pub struct AsyncQueuePair<P: Platform> {
    inner: RefCell<Inner<P>>,
}

struct Inner<P: Platform> {
    qp: QueuePair<P>,
    /// Completions reaped for a future that has not been polled since, by internal tag.
    results: Vec<Option<Completion<P::Dma>>>,
    /// Tags of futures dropped while their request was in flight.
    abandoned: Vec<bool>,
    free_tags: Vec<u64>,
}

impl<P: Platform> Inner<P> {
    /// Reaps completions into `results`.
    fn drive(&mut self) {
        let Inner {
            qp,
            results,
            abandoned,
            free_tags,
        } = self;
        qp.poll(|c| {
            let tag = c.tag as usize;
            if abandoned[tag] {
                abandoned[tag] = false;
                free_tags.push(c.tag);
            } else {
                results[tag] = Some(c);
            }
        });
    }
}

impl<P: Platform> AsyncQueuePair<P> {
    /// Wraps a queue pair.
    pub fn new(qp: QueuePair<P>) -> AsyncQueuePair<P> {
        let depth = qp.depth();
        AsyncQueuePair {
            inner: RefCell::new(Inner {
                qp,
                results: (0..depth).map(|_| None).collect(),
                abandoned: vec![false; depth],
                free_tags: (0..depth as u64).rev().collect(),
            }),
        }
    }

    /// A future that runs `req` and resolves to its completion (the request's own tag is
    /// kept). A request the queue pair refuses resolves to a completion carrying the error
    /// and the buffer.
    pub fn run(&self, req: Request<P::Dma>) -> Io<'_, P> {
        Io {
            owner: self,
            user_tag: req.tag,
            state: State::Waiting(Some(req)),
        }
    }

    /// Allocates DMA memory for request buffers.
    pub fn alloc_buffer(&self, len: usize) -> crate::Result<P::Dma> {
        self.inner.borrow().qp.alloc_buffer(len)
    }

    /// The queue pair back (requests still in flight stay with it).
    pub fn into_inner(self) -> QueuePair<P> {
        self.inner.into_inner().qp
    }
}

enum State<D> {
    Waiting(Option<Request<D>>),
    InFlight(u64),
    Done,
}

/// One request as a future; see [`AsyncQueuePair::run`].
pub struct Io<'a, P: Platform> {
    owner: &'a AsyncQueuePair<P>,
    user_tag: u64,
    state: State<P::Dma>,
}

// Nothing in `Io` relies on staying at one address: the request moves into the queue pair.
impl<P: Platform> Unpin for Io<'_, P> {}

impl<P: Platform> Future for Io<'_, P> {
    type Output = Completion<P::Dma>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut inner = this.owner.inner.borrow_mut();
        if let State::Waiting(req) = &mut this.state {
            let Some(tag) = inner.free_tags.pop() else {
                inner.drive();
                cx.waker().wake_by_ref();
                return Poll::Pending;
            };
            let Some(req) = req.take() else {
                inner.free_tags.push(tag);
                this.state = State::Done;
                return Poll::Ready(Completion {
                    tag: this.user_tag,
                    result: Err(Error::InvalidRequest(
                        "future polled after completion".into(),
                    )),
                    buffer: None,
                });
            };
            match inner.qp.submit(req.with_tag(tag)) {
                Ok(()) => this.state = State::InFlight(tag),
                Err(rejected) => {
                    inner.free_tags.push(tag);
                    if matches!(rejected.error, Error::QueueFull) {
                        this.state = State::Waiting(Some(rejected.request));
                        inner.drive();
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    this.state = State::Done;
                    return Poll::Ready(Completion {
                        tag: this.user_tag,
                        result: Err(rejected.error),
                        buffer: rejected.request.buffer,
                    });
                }
            }
        }
        let State::InFlight(tag) = this.state else {
            return Poll::Ready(Completion {
                tag: this.user_tag,
                result: Err(Error::InvalidRequest(
                    "future polled after completion".into(),
                )),
                buffer: None,
            });
        };
        if inner.results[tag as usize].is_none() {
            inner.drive();
        }
        match inner.results[tag as usize].take() {
            Some(mut c) => {
                inner.free_tags.push(tag);
                this.state = State::Done;
                c.tag = this.user_tag;
                Poll::Ready(c)
            }
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl<P: Platform> Drop for Io<'_, P> {
    fn drop(&mut self) {
        if let State::InFlight(tag) = self.state {
            let mut inner = self.owner.inner.borrow_mut();
            if inner.results[tag as usize].take().is_some() {
                inner.free_tags.push(tag);
            } else {
                inner.abandoned[tag as usize] = true;
            }
        }
    }
}

impl<P: Platform> std::fmt::Debug for AsyncQueuePair<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncQueuePair").finish_non_exhaustive()
    }
}

impl<P: Platform> std::fmt::Debug for Io<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("tag", &self.user_tag)
            .finish_non_exhaustive()
    }
}
