//! `ninepd`: serve a directory over 9P2000.L.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ninep_server::listen::{self, Listen};
use ninep_server::{Config, Server};

/// Serve a directory to 9P2000.L clients such as the Linux kernel's v9fs.
///
/// Example: `ninepd /srv/share --listen tcp:127.0.0.1:5640`, then on a client
/// `mount -t 9p -o trans=tcp,port=5640,version=9p2000.L 127.0.0.1 /mnt`.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The directory to export. Clients can never reach anything outside it; a client may
    /// attach to a directory beneath it by naming it in `aname` (`mount -o aname=DIR/sub`).
    #[arg(default_value = ".")]
    dir: PathBuf,

    /// Where to accept clients: `tcp:HOST:PORT`, `unix:PATH`, or `fd` for a single client on
    /// standard input and output (the kernel's `trans=fd`).
    #[arg(long, short = 'l', default_value = "tcp:127.0.0.1:5640")]
    listen: Listen,

    /// Refuse every modification (writes, creates, renames, attribute changes) with EROFS.
    #[arg(long)]
    read_only: bool,

    /// The largest message size offered to clients, in bytes; a client asking for less gets
    /// what it asked for. Larger messages mean fewer round trips for bulk data.
    #[arg(long, default_value_t = ninep_server::server::DEFAULT_MAX_MSIZE)]
    msize: u32,

    /// Act as each attaching user: files are created owned by the client's uid and gid and
    /// permissions are checked for that user. Needs root. Without it, every request runs as
    /// the server's own user.
    #[arg(long)]
    multi_user: bool,

    /// Log verbosity: error, warn, info, debug or trace (or a tracing filter directive).
    /// Logs go to standard error.
    #[arg(long, default_value = "info")]
    log_level: String,

    /// Threads running file operations that may block (data I/O, fsync, readdir).
    #[arg(long, default_value_t = 64)]
    blocking_threads: usize,

    /// After each request, keep polling the connection for the next one for up to this many
    /// microseconds before sleeping (0: off). Cuts round-trip latency where waking a sleeping
    /// CPU is slow (virtual machines), at the cost of a CPU spinning for up to that long after
    /// each request on an idle connection. Sockets only: `--listen fd` polls standard input
    /// only when it is a socket.
    /// With few CPUs, `--worker-threads 1` helps it further: every message the spin takes
    /// still wakes an idle worker thread otherwise.
    #[arg(long, value_name = "MICROS", default_value_t = 0)]
    busy_poll: u64,

    /// Threads running the connections and the file operations that cannot block, such as
    /// metadata, and reads and overwrites of in-memory files (default: one per CPU).
    /// Operations that may wait for a device run on the separate `--blocking-threads`.
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
}

/// An allocator that keeps freed memory for reuse: with the system allocator every 1 MiB reply
/// frame was fresh memory from the kernel, and page faults and page clearing took about a tenth
/// of the server's time in a TCP read stream.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ninepd: bad --log-level `{}`: {e}", args.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs redirected to a file or a journal stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Clients apply their own umask; the modes they send are final.
    rustix::process::umask(rustix::fs::Mode::empty());

    let config = Config {
        root: args.dir,
        read_only: args.read_only,
        max_msize: args.msize,
        multi_user: args.multi_user,
        busy_poll: std::time::Duration::from_micros(args.busy_poll),
    };
    let server = match Server::new(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ninepd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime
        .enable_all()
        .max_blocking_threads(args.blocking_threads.max(1));
    if let Some(n) = args.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ninepd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            served = listen::run(server, &args.listen) => served,
            signal = stop_signal() => {
                tracing::info!("{signal}: stopping");
                Ok(())
            }
        }
    });
    // The connections still open are dropped with their tasks here, and with them every fid,
    // open file and lock. A blocking read of standard input cannot be cancelled, hence the bound.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ninepd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long a stopping server waits for file operations already running on its threads.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits for SIGTERM or SIGINT, the signals that ask a service to stop, and names the one
/// that came.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    async fn one(kind: SignalKind, name: &'static str) -> &'static str {
        match signal(kind) {
            Ok(mut stream) => {
                stream.recv().await;
                name
            }
            Err(e) => {
                // No handler was installed: the signal's default action still ends the server.
                tracing::warn!("cannot handle {name}: {e}");
                std::future::pending().await
            }
        }
    }
    tokio::select! {
        name = one(SignalKind::terminate(), "SIGTERM") => name,
        name = one(SignalKind::interrupt(), "SIGINT") => name,
    }
}
