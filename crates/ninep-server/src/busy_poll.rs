//! Busy-polling a socket for a bounded time before sleeping, for low round-trip latency.
//!
//! On a virtual machine with idle CPUs, every wake-up of a sleeping reader costs tens of
//! microseconds (the halted virtual CPU has to be woken), more than a whole 9P metadata
//! request. [`BusyPoll`] trades CPU time for that latency, like QEMU's adaptive polling
//! (`poll-max-ns`): once the reader has taken what was available and finds the socket empty,
//! it keeps trying non-blocking reads for up to a budget before it waits on the runtime again.
//!
//! The spin reads the socket's descriptor directly with `recv(MSG_DONTWAIT)`. Asking the tokio
//! stream instead would see nothing: it makes no system call while the runtime believes the
//! socket is not ready. Bytes taken this way are safe for tokio, whose readiness is only a
//! hint that it checks with a real read.
//!
//! The spin must not hold up other tasks of the same worker (a connection's replies are
//! written by a separate task that the reader wakes), so on the first empty read after data
//! the reader yields once, and spins only when it is polled again, once the worker has
//! nothing else to run. Nor must it hold up other threads: between reads it gives the CPU to
//! any thread waiting for it (`sched_yield`). On two CPUs shared with a busy peer, a spin
//! that kept the CPU made round trips slower than no spin at all (64 against 14 us), since
//! the peer's thread, woken onto the spinning CPU, waited for the budget to run out.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::runtime::{Handle, RuntimeMetrics};

/// The most a spinning read takes at once. The buffer is zeroed up to this size first, on the
/// way to a reply when the bytes are already there; a read that fills it is followed by another
/// without yielding, so a large frame still comes in few system calls.
const SPIN_READ_MAX: usize = 8 * 1024;

/// A reader of a socket whose descriptor the spin can read directly.
pub trait SocketReader: AsyncRead + Unpin {
    /// The socket's descriptor.
    fn socket_fd(&self) -> BorrowedFd<'_>;
}

impl SocketReader for tokio::net::UnixStream {
    fn socket_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl SocketReader for tokio::net::TcpStream {
    fn socket_fd(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }
}

impl SocketReader for tokio::net::unix::OwnedReadHalf {
    fn socket_fd(&self) -> BorrowedFd<'_> {
        self.as_ref().as_fd()
    }
}

impl SocketReader for tokio::net::tcp::OwnedReadHalf {
    fn socket_fd(&self) -> BorrowedFd<'_> {
        self.as_ref().as_fd()
    }
}

/// Where the reader is between a read that returned data and sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Data was just returned: the next empty read yields once, so woken tasks run first.
    Fresh,
    /// Yielded after data (or a spin filled the buffer): the next empty read spins.
    Yielded,
    /// The budget ran out (or the stream ended): wait on the runtime until data comes.
    Sleeping,
}

/// An [`AsyncRead`] over a socket that spins for up to `budget` on non-blocking reads
/// before it lets the task sleep. A zero budget makes it a plain pass-through.
#[derive(Debug)]
pub struct BusyPoll<R> {
    inner: R,
    budget: Duration,
    state: State,
    /// When the current spin must stop; kept while the spin steps aside for other tasks.
    deadline: Option<Instant>,
    /// The runtime's queue of tasks woken from outside its workers.
    runtime: Option<RuntimeMetrics>,
    /// Spins run so far, whether or not they found data (for tests and statistics).
    spins: u64,
}

/// How a spin ended without data.
enum SpinEnd {
    /// The stream had bytes, ended or failed.
    Read(io::Result<()>),
    /// The budget is spent.
    Spent,
    /// A task was woken from outside the runtime's workers (a reply from the blocking pool,
    /// a client's caller): it may be waiting for this very worker.
    Interrupted,
}

impl<R: SocketReader> BusyPoll<R> {
    /// Wraps `inner`; called inside a tokio runtime, the spin also steps aside for tasks woken
    /// from outside the runtime's workers.
    pub fn new(inner: R, budget: Duration) -> Self {
        Self {
            inner,
            budget,
            state: State::Fresh,
            deadline: None,
            runtime: Handle::try_current().ok().map(|h| h.metrics()),
            spins: 0,
        }
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// How many times the reader has spun.
    pub fn spins(&self) -> u64 {
        self.spins
    }

    /// Non-blocking reads until bytes come, the stream ends or fails, the budget is spent, or
    /// a task is woken from outside the runtime's workers.
    fn spin(&mut self, buf: &mut ReadBuf<'_>) -> SpinEnd {
        self.spins += 1;
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + self.budget);
        let want = buf.remaining().min(SPIN_READ_MAX);
        let dst = buf.initialize_unfilled_to(want);
        let got = loop {
            match rustix::net::recv(self.inner.socket_fd(), &mut *dst, RecvFlags::DONTWAIT) {
                // (bytes stored, bytes the message had): the same for a stream socket.
                Ok((n, _)) => break n,
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => {
                    self.deadline = None;
                    return SpinEnd::Read(Err(e.into()));
                }
            }
            if Instant::now() >= deadline {
                self.deadline = None;
                return SpinEnd::Spent;
            }
            if self
                .runtime
                .as_ref()
                .is_some_and(|r| r.global_queue_depth() > 0)
            {
                return SpinEnd::Interrupted;
            }
            // A thread waiting for this CPU (the peer, placed here when it was woken) runs
            // first: spinning past it would delay the very message being waited for.
            rustix::thread::sched_yield();
        };
        self.deadline = None;
        buf.advance(got);
        SpinEnd::Read(Ok(()))
    }
}

impl<R: SocketReader> AsyncRead for BusyPoll<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            this.deadline = None;
            this.state = after_read(&result, buf.filled().len() > before);
            return Poll::Ready(result);
        }
        if this.budget.is_zero() || buf.remaining() == 0 {
            return Poll::Pending;
        }
        match this.state {
            State::Fresh => {
                this.state = State::Yielded;
                yield_to_other_tasks(cx);
                Poll::Pending
            }
            State::Yielded => match this.spin(buf) {
                SpinEnd::Read(result) => {
                    let got = buf.filled().len() - before;
                    this.state = after_read(&result, got > 0);
                    if result.is_ok() && got == SPIN_READ_MAX {
                        // Filled all it asked for: more is likely waiting, nothing was woken.
                        this.state = State::Yielded;
                    }
                    Poll::Ready(result)
                }
                SpinEnd::Spent => {
                    // The inner reader registered the waker above: sleep until it fires.
                    this.state = State::Sleeping;
                    Poll::Pending
                }
                SpinEnd::Interrupted => {
                    // Let the worker run that task, then spin on to the same deadline.
                    yield_to_other_tasks(cx);
                    Poll::Pending
                }
            },
            State::Sleeping => Poll::Pending,
        }
    }
}

/// Has the task polled again once the worker has run every other task it has.
///
/// `tokio::task::yield_now` defers the wake-up until the worker runs out of tasks (a plain
/// self-wake would also get a parked worker thread woken to come and steal work, a costly
/// wake-up of the kind the spin is there to avoid). Only its first poll is needed.
fn yield_to_other_tasks(cx: &mut Context<'_>) {
    let yielding = std::pin::pin!(tokio::task::yield_now());
    let _ = yielding.poll(cx);
}

/// Data arms the next spin; the end of the stream or an error does not.
fn after_read(result: &io::Result<()>, got_data: bool) -> State {
    if result.is_ok() && got_data {
        State::Fresh
    } else {
        State::Sleeping
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::UnixStream;

    use super::*;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }

        /// Lets the runtime run (its I/O driver, deferred wake-ups) until `n` wake-ups came.
        async fn until(&self, n: usize) {
            tokio::time::timeout(FOREVER, async {
                while self.get() < n {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("the task was not woken {n} times"));
        }
    }

    /// Long enough never to run out in a test that expects bytes during the spin.
    const FOREVER: Duration = Duration::from_secs(60);

    /// Our end as a spinning reader, the peer as a blocking std socket another thread can use.
    fn pair(budget: Duration) -> (BusyPoll<UnixStream>, std::os::unix::net::UnixStream) {
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let ours = UnixStream::from_std(ours).unwrap();
        (BusyPoll::new(ours, budget), peer)
    }

    /// Polls once by hand with `waker`. The runtime does not run meanwhile, so the tokio
    /// stream cannot learn of bytes that arrive: only a spin can return them.
    fn poll_once<R: SocketReader>(
        r: &mut BusyPoll<R>,
        waker: &Arc<Count>,
    ) -> Poll<io::Result<Vec<u8>>> {
        poll_for(r, waker, 64)
    }

    /// The bytes of a poll that must have returned some (or the end of the stream).
    #[track_caller]
    fn ready_bytes(poll: Poll<io::Result<Vec<u8>>>) -> Vec<u8> {
        match poll {
            Poll::Ready(Ok(bytes)) => bytes,
            other => panic!("expected a finished read, got {other:?}"),
        }
    }

    /// Polls once by hand for up to `len` bytes.
    fn poll_for<R: SocketReader>(
        r: &mut BusyPoll<R>,
        waker: &Arc<Count>,
        len: usize,
    ) -> Poll<io::Result<Vec<u8>>> {
        let waker = waker.clone().into();
        let mut cx = Context::from_waker(&waker);
        let mut bytes = vec![0u8; len];
        let mut buf = ReadBuf::new(&mut bytes);
        Pin::new(r)
            .poll_read(&mut cx, &mut buf)
            .map_ok(|()| buf.filled().to_vec())
    }

    /// Reads the first message through the runtime, so the reader is just past data.
    async fn first_message(
        r: &mut BusyPoll<UnixStream>,
        peer: &mut std::os::unix::net::UnixStream,
    ) {
        peer.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
    }

    /// A reader just past its first message and past the one yield that comes before a
    /// spin: its next poll with no bytes waiting spins.
    async fn about_to_spin(
        budget: Duration,
    ) -> (
        BusyPoll<UnixStream>,
        std::os::unix::net::UnixStream,
        Arc<Count>,
    ) {
        let (mut r, mut peer) = pair(budget);
        first_message(&mut r, &mut peer).await;
        let waker = Arc::new(Count::default());
        // The first empty read only yields: nothing spins, and the task is woken again
        // once the runtime has run its other tasks.
        assert!(poll_once(&mut r, &waker).is_pending());
        assert_eq!(r.spins(), 0);
        waker.until(1).await;
        (r, peer, waker)
    }

    /// Writes `bytes` from another thread a little later, while the reader is spinning.
    fn write_later<W: Write + Send + 'static>(
        mut peer: W,
        bytes: &'static [u8],
    ) -> std::thread::JoinHandle<W> {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            peer.write_all(bytes).unwrap();
            peer
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn bytes_arriving_during_the_spin_are_returned_in_the_same_poll() {
        let (mut r, peer, waker) = about_to_spin(FOREVER).await;
        let writer = write_later(peer, b"world");
        assert_eq!(ready_bytes(poll_once(&mut r, &waker)), b"world");
        assert_eq!(r.spins(), 1);
        let _peer = writer.join().unwrap();
        // After data, the next empty read yields again before spinning.
        assert!(poll_once(&mut r, &waker).is_pending());
        assert_eq!(r.spins(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_spin_that_fills_its_read_reads_on_without_yielding() {
        let (mut r, mut peer, waker) = about_to_spin(FOREVER).await;
        let big: Vec<u8> = (0..SPIN_READ_MAX + 1000).map(|i| i as u8).collect();
        peer.write_all(&big).unwrap();
        let mut got = Vec::new();
        for _ in 0..2 {
            got.extend(ready_bytes(poll_for(&mut r, &waker, 2 * SPIN_READ_MAX)));
        }
        assert_eq!(got, big);
        assert_eq!(
            r.spins(),
            2,
            "the rest came from a second spin, with no yield between"
        );
        // The rest was short of a full read: the next empty read yields first.
        assert!(poll_once(&mut r, &waker).is_pending());
        assert_eq!(r.spins(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_task_woken_from_outside_the_runtime_interrupts_the_spin() {
        let (mut r, peer, waker) = about_to_spin(FOREVER).await;
        // Another thread wakes a task while the reader spins (as the blocking pool does with
        // a reply): the spin stops long before its budget and lets the task run.
        let (handle, (tx, rx)) = (Handle::current(), tokio::sync::oneshot::channel());
        let spawner = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            handle.spawn(async move { tx.send(()).unwrap() });
        });
        assert!(poll_once(&mut r, &waker).is_pending());
        assert_eq!(r.spins(), 1);
        spawner.join().unwrap();
        rx.await.unwrap();
        waker.until(2).await;
        // Polled again, it spins on: bytes arriving now come back from that poll.
        let writer = write_later(peer, b"after");
        assert_eq!(ready_bytes(poll_once(&mut r, &waker)), b"after");
        assert_eq!(r.spins(), 2);
        let _peer = writer.join().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn after_the_budget_the_reader_sleeps_until_the_runtime_wakes_it() {
        let (mut r, mut peer, waker) = about_to_spin(Duration::from_millis(1)).await;
        assert!(poll_once(&mut r, &waker).is_pending()); // spins, finds nothing
        assert_eq!(r.spins(), 1);
        // Polled again (say, a spurious wake-up), it does not spin a second time.
        assert!(poll_once(&mut r, &waker).is_pending());
        assert_eq!((waker.get(), r.spins()), (1, 1));
        // Bytes now reach the task the ordinary way: the runtime wakes the registered waker.
        peer.write_all(b"late").unwrap();
        waker.until(2).await;
        assert_eq!(ready_bytes(poll_once(&mut r, &waker)), b"late");
        assert_eq!(r.spins(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_end_of_the_stream_during_the_spin_passes_through() {
        let (mut r, mut peer) = pair(FOREVER);
        first_message(&mut r, &mut peer).await;
        let waker = Arc::new(Count::default());
        assert!(poll_once(&mut r, &waker).is_pending());
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(peer);
        });
        assert!(
            ready_bytes(poll_once(&mut r, &waker)).is_empty(),
            "EOF reads nothing"
        );
        closer.join().unwrap();
        assert_eq!(r.spins(), 1);
        // Past the end, reads keep returning it without spinning.
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).await.unwrap(), 0);
        assert_eq!(r.spins(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reset_connection_during_the_spin_is_an_error() {
        let (mut r, mut peer) = pair(FOREVER);
        first_message(&mut r, &mut peer).await;
        // A unix socket closed with unread data resets its peer.
        tokio::io::AsyncWriteExt::write_all(&mut r.inner, b"unread")
            .await
            .unwrap();
        let waker = Arc::new(Count::default());
        assert!(poll_once(&mut r, &waker).is_pending());
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(peer);
        });
        match poll_once(&mut r, &waker) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("expected a reset, got {other:?}"),
        }
        closer.join().unwrap();
        assert_eq!(r.spins(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stream_read_in_pieces_arrives_whole_and_in_order() {
        let (mut r, mut peer) = pair(FOREVER);
        let mut got = Vec::new();
        for chunk in [&b"one"[..], b"two", b"three"] {
            peer.write_all(chunk).unwrap();
            let mut part = vec![0; chunk.len()];
            r.read_exact(&mut part).await.unwrap();
            got.extend(part);
        }
        drop(peer);
        r.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"onetwothree");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_zero_budget_neither_yields_nor_spins() {
        let (mut r, mut peer) = pair(Duration::ZERO);
        first_message(&mut r, &mut peer).await;
        let waker = Arc::new(Count::default());
        for _ in 0..3 {
            assert!(poll_once(&mut r, &waker).is_pending());
        }
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert_eq!((waker.get(), r.spins()), (0, 0));
        // It still reads what comes, through the runtime.
        peer.write_all(b"plain").unwrap();
        waker.until(1).await;
        assert_eq!(ready_bytes(poll_once(&mut r, &waker)), b"plain");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn tcp_read_halves_spin_too() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (r, _w) = server.into_split();
        let mut r = BusyPoll::new(r, FOREVER);
        client.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        r.read_exact(&mut got).await.unwrap();
        let waker = Arc::new(Count::default());
        assert!(poll_once(&mut r, &waker).is_pending());
        let writer = write_later(client, b"pong");
        assert_eq!(ready_bytes(poll_once(&mut r, &waker)), b"pong");
        assert_eq!(r.spins(), 1);
        drop(writer.join().unwrap());
    }
}
