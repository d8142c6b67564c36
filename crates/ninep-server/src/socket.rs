//! Sockets whose descriptor the server drives itself (with `splice(2)`), in step with the
//! runtime's readiness events.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;

use tokio::io::Interest;

/// A socket registered with the runtime.
pub(crate) trait PolledSocket: AsFd + Sync {
    /// Waits until the runtime reports the socket ready for `interest`.
    fn ready_for(&self, interest: Interest) -> impl Future<Output = io::Result<()>> + Send;

    /// Runs `op` on the socket; a `WouldBlock` from it clears the readiness.
    fn try_io_for<R>(
        &self,
        interest: Interest,
        op: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R>;
}

/// tokio's stream sockets all offer the same two methods.
macro_rules! polled_socket {
    ($($socket:ty),*) => {$(
        impl PolledSocket for $socket {
            async fn ready_for(&self, interest: Interest) -> io::Result<()> {
                self.ready(interest).await.map(drop)
            }

            fn try_io_for<R>(
                &self,
                interest: Interest,
                op: impl FnOnce() -> io::Result<R>,
            ) -> io::Result<R> {
                self.try_io(interest, op)
            }
        }
    )*};
}

polled_socket!(tokio::net::UnixStream, tokio::net::TcpStream);

/// Runs the non-blocking `op` on `socket` until it does something other than `WouldBlock`,
/// waiting for readiness before each try.
pub(crate) async fn when_ready<R>(
    socket: &impl PolledSocket,
    interest: Interest,
    mut op: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    loop {
        socket.ready_for(interest).await?;
        match socket.try_io_for(interest, &mut op) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            result => return result,
        }
    }
}
