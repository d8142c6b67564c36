//! systemd integration without linking libsystemd: socket activation (the listening sockets
//! a `.socket` unit passes in, `LISTEN_FDS`) and readiness notification (`sd_notify`:
//! `READY=1` once serving, `RELOADING=1` around a reload, `STOPPING=1` when stopping).
//!
//! Both work the same under any service manager that speaks the protocol, and do nothing
//! when the variables are not set.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use sd_notify::NotifyState;

use crate::listen::{Bound, SocketFile};

/// The listening sockets passed in by the service manager (`LISTEN_FDS` from descriptor 3,
/// for this process by `LISTEN_PID`), in order: unix stream and TCP listeners. Empty when
/// none were passed. Call it before any thread starts: it unsets the variables, so that no
/// child inherits them.
pub fn activated() -> Result<Vec<Bound>> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut bound = Vec::new();
    for i in 0..fds.len() {
        let name = names.get(i).map_or("", String::as_str);
        let described = || format!("passed socket {} ({name})", 3 + i);
        if let Some(listener) = fds.take_unix_listener(i).ok().flatten() {
            let path = listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(format!("(passed socket {name})")));
            bound.push(Bound::Unix(listener, SocketFile::not_ours(path)));
        } else if let Some(listener) = fds.take_tcp_listener(i).with_context(|| {
            format!(
                "{} is neither a unix stream nor a TCP listener",
                described()
            )
        })? {
            bound.push(Bound::Tcp(listener));
        } else {
            bail!("{} was taken already", described());
        }
    }
    Ok(bound)
}

/// Tells the service manager the server is serving.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells the service manager a reload has started (end it with [`ready`]).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Tells the service manager the server is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

/// Sends `states` to `NOTIFY_SOCKET`, if there is one; a failure is only logged (the server
/// serves whether or not its manager hears it).
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}
