//! What a running server does on signals other than the ones that stop it: SIGHUP reloads the
//! configuration file, SIGUSR1 logs the per-operation statistics (see [`crate::stats`]).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, Defaults};
use crate::server::Server;
use crate::systemd;

/// Installs the handlers now (so that a signal sent as soon as the server says it is ready
/// never meets its default action, which ends the process) and serves them from tasks.
/// `config` is the configuration file, if the server was started from one; `sandbox_roots`
/// what its sandbox lets it reach. Call it inside the runtime.
pub fn install(
    server: &Arc<Server>,
    config: Option<PathBuf>,
    defaults: Defaults,
    sandbox_roots: Vec<PathBuf>,
) {
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => {
            let server = server.clone();
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    match &config {
                        Some(file) => reload(&server, file, &defaults, &sandbox_roots),
                        None => tracing::info!(
                            "SIGHUP: nothing to reload (the server was started without --config)"
                        ),
                    }
                }
            });
        }
        Err(e) => tracing::warn!("cannot handle SIGHUP, reloads are off: {e}"),
    }
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => {
            let server = server.clone();
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    log_stats(&server);
                }
            });
        }
        Err(e) => tracing::warn!("cannot handle SIGUSR1, statistics are off: {e}"),
    }
}

/// Reloads the configuration file: new attaches see its exports; a file that fails
/// validation, or that needs a restart, leaves the current exports in place.
pub fn reload(server: &Server, file: &std::path::Path, defaults: &Defaults, roots: &[PathBuf]) {
    systemd::reloading();
    let outcome = config::reload(file, defaults, roots)
        .map_err(anyhow::Error::from)
        .and_then(|exports| {
            let described = exports.describe();
            server.replace_exports(exports).map(|()| described)
        });
    match outcome {
        Ok(described) => tracing::info!("SIGHUP: reloaded, serving {described}"),
        Err(e) => tracing::error!(
            "SIGHUP: reload refused, still serving {}: {e:#}",
            server.export_path_hint()
        ),
    }
    systemd::ready(&format!("serving {}", server.export_path_hint()));
}

/// Logs the per-operation counts and latency percentiles, one line per request type.
pub fn log_stats(server: &Server) {
    let report = server.stats().report();
    if report.is_empty() {
        tracing::info!("statistics: no request yet");
    }
    for line in report.lines() {
        tracing::info!("statistics: {line}");
    }
}
