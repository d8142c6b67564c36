//! `ninepd`: serve a directory over 9P2000.L.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ninep_server::listen::{self, Listen};
use ninep_server::sandbox::{self, SeccompMode, Want};
use ninep_server::{Config, Server, config, signals, systemd};

/// Serve a directory to 9P2000.L clients such as the Linux kernel's v9fs.
///
/// Example: `ninepd /srv/share` serves on a unix socket only its own user can connect to
/// (`/run/ninepd.sock` for root, `$XDG_RUNTIME_DIR/ninepd.sock` for others); mount it with
/// `mount -t 9p -o trans=unix,version=9p2000.L /run/ninepd.sock /mnt`.
///
/// Who clients act as: a server not running as root acts as its own user for every client,
/// so whoever can connect can do what that user can. A server running as root acts as the
/// client's user as far as it can tell who that is: a unix socket peer's own uid (root may
/// claim any uid with --multi-user), and for TCP, which tells nothing, the squash identity
/// (`nobody`). Root itself is squashed too unless --no-root-squash is given.
#[derive(Debug, Parser)]
#[command(name = "ninepd", version, long_about)]
struct Args {
    /// The directory to export (default: the current directory, unless --config names the
    /// exports). Clients can never reach anything outside it; a client may attach to a
    /// directory beneath it by naming it in `aname` (`mount -o aname=DIR/sub`).
    #[arg(conflicts_with = "config")]
    dir: Option<PathBuf>,

    /// Serve the exports of this TOML file instead of one directory: `[export.NAME]` tables
    /// with a `path` and options (read_only, multi_user, root_squash, squash_uid, squash_gid,
    /// allow_uids, allow_gids, allow_hosts, allow_cids); the command line's options are their
    /// defaults.
    /// At the top, `default` names the export of an empty aname and `sandbox_roots` the
    /// directories a reload may add exports beneath (default: the exports at start). A client
    /// names an export in `aname` by its name or path. SIGHUP reloads the file (new attaches
    /// see the new exports; attached clients keep theirs); SIGUSR1 logs per-request counts and
    /// latency percentiles.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the --config file (syntax, keys, that each export's directory opens) and exit:
    /// 0 if it can be served, 1 with the file, line and key of the first error otherwise.
    #[arg(long, requires = "config")]
    check_config: bool,

    /// Log each request and its reply, decoded, one line each at debug level (file data
    /// shows as its length only). Needs --log-level debug (or `ninep_server=debug`).
    #[arg(long)]
    trace_protocol: bool,

    /// Where to accept clients: `unix:PATH`, `tcp:HOST:PORT`, `vsock:PORT` (on every vsock
    /// CID of the machine) or `vsock:CID:PORT`, or `fd` for a single client on standard input
    /// and output (the kernel's `trans=fd`). Default: `unix:/run/ninepd.sock` for root,
    /// `unix:$XDG_RUNTIME_DIR/ninepd.sock` for other users, with mode 0600.
    /// A TCP listener lets every local user (and, off loopback, every host that reaches it)
    /// connect unauthenticated, and so does a vsock listener (on a host, every virtual machine
    /// with a vsock device; in a virtual machine, its host): as root they act as the squash
    /// identity, otherwise as the server's user (mount such a server with `mount.ninep`,
    /// which also authenticates with MUNGE under --auth munge). `fd` trusts standard input like the process that handed it over: its
    /// client may act as any user the server may (root squash still applies). 9P's registered
    /// TCP port is 564, which only root may bind; the examples use 5640, which any user may.
    #[arg(long, short = 'l')]
    listen: Option<Listen>,

    /// The unix socket file's permission bits, in octal (default 0600, or 0660 with
    /// --socket-group). Every user who can connect acts as the server's user when the
    /// server does not run as root.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    socket_mode: Option<u32>,

    /// Give the unix socket file to this group (a name or a number), whose members may then
    /// connect (mode 0660 unless --socket-mode says otherwise).
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    socket_group: Option<u32>,

    /// Allow `--listen tcp:` on an address other hosts can reach. Their clients are not
    /// authenticated: as root the server squashes them, otherwise they act as its user.
    #[arg(long)]
    allow_remote: bool,

    /// Running as root: let clients the server trusts as root (a root unix peer, `--listen
    /// fd`) act as root. By default uid 0 acts as the squash identity, so no client can
    /// create set-uid root files or give files away.
    #[arg(long)]
    no_root_squash: bool,

    /// Running as root: the uid that squashed clients (TCP, and root unless
    /// --no-root-squash) act as. 0 trusts every such client as root, as servers without
    /// authentication did: only for clients you trust, such as a benchmark's.
    #[arg(long, value_name = "UID", default_value_t = ninep_server::trust::NOBODY)]
    squash_uid: u32,

    /// Running as root: the gid that squashed clients act as.
    #[arg(long, value_name = "GID", default_value_t = ninep_server::trust::NOGROUP)]
    squash_gid: u32,

    /// Authenticate clients: `munge` checks MUNGE credentials the way diod does (Tauth), so
    /// Debian's `mount.diod` mounts the server with the user it authenticated; the
    /// connection then acts as that user (root may act as anyone with --multi-user). TCP
    /// clients that do not authenticate are refused (EPERM); unix socket peers are known by
    /// their credentials and need not. `none` answers Tauth with ENOENT, which diod's clients
    /// take for "no authentication", and squashes TCP clients.
    #[arg(long, value_enum, default_value_t = AuthChoice::None)]
    auth: AuthChoice,

    /// The socket of the munged that checks credentials (with --auth munge).
    #[arg(long, value_name = "PATH", default_value = ninep_server::munge::DEFAULT_SOCKET)]
    munge_socket: PathBuf,

    /// Refuse every modification (writes, creates, renames, attribute changes) with EROFS.
    #[arg(long)]
    read_only: bool,

    /// The largest message size offered to clients, in bytes; a client asking for less gets
    /// what it asked for. Larger messages mean fewer round trips for bulk data.
    #[arg(long, default_value_t = ninep_server::server::DEFAULT_MAX_MSIZE)]
    msize: u32,

    /// Act as the uid each Tattach names: files are created owned by that user and
    /// permissions are checked for it. Needs root. A unix peer other than root may only name
    /// its own uid (others get EPERM); TCP clients act as the squash identity whatever they
    /// name. Without it, a connection acts as its peer's user (as root) or as the server's.
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

    /// The sandbox the server closes around itself before it serves anyone: `on` drops
    /// capabilities to those file operations need (none unless root), sets no_new_privs, and
    /// applies Landlock and seccomp (see --landlock and --seccomp) where the kernel offers them;
    /// `off` does none of it unless --landlock or --seccomp ask.
    #[arg(long, value_enum, default_value_t = SandboxChoice::On)]
    sandbox: SandboxChoice,

    /// Landlock: once serving, the process can open nothing outside the export (with
    /// --config, the exports or their `sandbox_roots`; besides, the unix socket's directory, to
    /// remove the socket's file, and for reading the --config file and, as root or with
    /// --multi-user, the user database), execute nothing, and neither bind nor connect TCP.
    /// Default: on where the kernel offers it (ABI 2 or later), with a warning where not; `on`
    /// refuses to start without it.
    #[arg(long, value_enum, value_name = "on|off")]
    landlock: Option<OnOff>,

    /// What a system call off the server's allow-list gets: `kill` (the process dies with
    /// SIGSYS), `errno` (it fails with EPERM), `log` (it runs and the kernel's audit log
    /// records it) or `off` (no filter). Default: kill where the kernel has seccomp, with a
    /// warning where not; given explicitly, the server refuses to start without it.
    #[arg(long, value_enum)]
    seccomp: Option<SeccompMode>,

    /// Print this manual page (roff, for man(1)) on standard output and exit: how the
    /// packages make ninepd(8).
    #[arg(long, hide = true)]
    generate_man: bool,

    /// Test only: after the sandbox is closed, attempt something it must forbid and report
    /// the outcome on standard error.
    #[cfg(feature = "test-hooks")]
    #[arg(long, hide = true)]
    test_misbehave: Vec<hooks::Misbehave>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthChoice {
    None,
    Munge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SandboxChoice {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

/// An allocator that keeps freed memory for reuse: with the system allocator every 1 MiB reply
/// frame was fresh memory from the kernel, and page faults and page clearing took about a tenth
/// of the server's time in a TCP read stream.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.generate_man {
        return generate_man();
    }
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

    let defaults = config::Defaults {
        read_only: args.read_only,
        multi_user: args.multi_user,
        root_squash: !args.no_root_squash,
        squash_uid: args.squash_uid,
        squash_gid: args.squash_gid,
    };
    if args.check_config {
        return check_config(
            args.config.as_deref().unwrap_or(std::path::Path::new("")),
            &defaults,
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let config = Config {
        root: dir.clone(),
        read_only: args.read_only,
        max_msize: args.msize,
        multi_user: args.multi_user,
        root_squash: !args.no_root_squash,
        squash_uid: args.squash_uid,
        squash_gid: args.squash_gid,
        munge_socket: (args.auth == AuthChoice::Munge).then(|| args.munge_socket.clone()),
        busy_poll: std::time::Duration::from_micros(args.busy_poll),
        trace_protocol: args.trace_protocol,
    };
    let (server, sandbox_roots) = match &args.config {
        Some(file) => match config::load(file, &defaults) {
            Ok(loaded) => (
                Server::with_exports(&config, loaded.exports),
                loaded.sandbox_roots,
            ),
            Err(e) => {
                eprintln!("ninepd: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => (Server::new(&config), vec![dir]),
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ninepd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let options = listen::ListenOptions {
        socket_mode: args.socket_mode,
        socket_group: args.socket_group,
        allow_remote: args.allow_remote,
    };
    // Sockets a service manager passed in (socket activation) unless --listen says otherwise.
    let activated = match args.listen {
        Some(_) => Ok(Vec::new()),
        None => systemd::activated(),
    };
    let bound = activated.and_then(|passed| {
        if !passed.is_empty() {
            return Ok(passed);
        }
        let at = args
            .listen
            .clone()
            .map_or_else(Listen::default_socket, Ok)?;
        Ok(vec![listen::bind_with(&at, &options)?])
    });
    let bound = match bound {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ninepd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let socket_dir = bound.iter().find_map(listen::Bound::socket_dir);
    // Worked out before the sandbox, which hides the cgroup files the CPU count is read from.
    let worker_threads = args.worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let reach = sandbox::landlock::Reach {
        exports: sandbox_roots.clone(),
        socket_dir,
        // Reloads read the configuration file again.
        read_files: args.config.iter().cloned().collect(),
    };
    if let Err(e) = close_sandbox(&args, reach) {
        eprintln!("ninepd: {e:#}");
        return ExitCode::FAILURE;
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime
        .enable_all()
        .max_blocking_threads(args.blocking_threads.max(1))
        .worker_threads(worker_threads.max(1));
    let runtime = runtime.build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ninepd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        #[cfg(feature = "test-hooks")]
        hooks::misbehave(&args.test_misbehave).await;
        // The handlers are in place before the server says it serves: a stop asked for as
        // soon as it serves never meets the signal's default action.
        let stop = stop_signal();
        signals::install(&server, args.config.clone(), defaults, sandbox_roots);
        let mut serving = tokio::task::JoinSet::new();
        for b in bound {
            serving.spawn(listen::serve(server.clone(), b));
        }
        systemd::ready(&format!("serving {}", server.export_path_hint()));
        let outcome = tokio::select! {
            served = serving.join_next() => match served {
                Some(Ok(served)) => served,
                Some(Err(e)) => Err(anyhow::anyhow!("a listener failed: {e}")),
                None => Ok(()),
            },
            signal = stop => {
                tracing::info!("{signal}: stopping");
                Ok(())
            }
        };
        systemd::stopping();
        outcome
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

/// Closes the sandbox the arguments ask for around the process, which has one thread yet, and
/// logs what is enforced.
fn close_sandbox(args: &Args, mut reach: sandbox::landlock::Reach) -> anyhow::Result<()> {
    let on = args.sandbox == SandboxChoice::On;
    let landlock = match args.landlock {
        Some(OnOff::On) => Want::Required,
        Some(OnOff::Off) => Want::Off,
        None if on => Want::IfAvailable,
        None => Want::Off,
    };
    let seccomp = match args.seccomp {
        Some(mode) => mode,
        None if on => SeccompMode::Kill,
        None => SeccompMode::Off,
    };
    // As root, the server acts as its clients' users (see ninep_server::trust), multi-user
    // or not: it switches identities and looks users up.
    let switches_identity = args.multi_user || rustix::process::geteuid().is_root();
    if switches_identity {
        // The C library loads what its user lookups need on first use: do one now, while
        // everything can still be read, and keep the user database readable.
        let _ = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0));
        reach.read_files.extend(sandbox::user_database());
    }
    let policy = sandbox::Policy {
        reach,
        landlock,
        seccomp,
        seccomp_required: args.seccomp.is_some(),
        no_new_privs: on,
        drop_caps: on,
        switches_identity,
    };
    let report = sandbox::enter(&policy)?;
    for missing in &report.missing {
        tracing::warn!("sandbox: not enforced, the kernel lacks it: {missing}");
    }
    if on || args.landlock.is_some() || args.seccomp.is_some() {
        tracing::info!("sandbox: {report}");
    } else {
        tracing::warn!("sandbox off: the server can reach whatever its user can");
    }
    Ok(())
}

/// `--generate-man`: the manual page, ninepd(8), from the options' documentation.
fn generate_man() -> ExitCode {
    use clap::CommandFactory;
    let man = clap_mangen::Man::new(Args::command()).section("8");
    match man.render(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ninepd: cannot write the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`: loads the file as a start would, and says what it would serve.
fn check_config(file: &std::path::Path, defaults: &config::Defaults) -> ExitCode {
    match config::load(file, defaults) {
        Ok(loaded) => {
            println!("{}: {}", file.display(), loaded.exports.describe());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ninepd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An octal permission mode such as `0660`.
fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("`{s}` is not an octal mode between 0 and 0777")),
    }
}

/// A group by number or by name.
fn parse_group(s: &str) -> Result<u32, String> {
    if let Ok(gid) = s.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("no group `{s}`")),
        Err(e) => Err(format!("cannot look up group `{s}`: {e}")),
    }
}

/// How long a stopping server waits for file operations already running on its threads.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs handlers for SIGTERM and SIGINT, the signals that ask a service to stop, and
/// returns a future that waits for either and names the one that came. Call it inside the
/// runtime.
fn stop_signal() -> impl std::future::Future<Output = &'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    fn one(
        kind: SignalKind,
        name: &'static str,
    ) -> impl std::future::Future<Output = &'static str> {
        let handler = signal(kind);
        async move {
            match handler {
                Ok(mut stream) => {
                    stream.recv().await;
                    name
                }
                Err(e) => {
                    // No handler was installed: the signal's default action still ends the
                    // server.
                    tracing::warn!("cannot handle {name}: {e}");
                    std::future::pending().await
                }
            }
        }
    }
    let term = one(SignalKind::terminate(), "SIGTERM");
    let int = one(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            name = term => name,
            name = int => name,
        }
    }
}

/// Misbehaviour on request, to show that the sandbox stops it (`--features test-hooks` only).
#[cfg(feature = "test-hooks")]
mod hooks {
    /// Something to attempt once the sandbox is closed.
    #[derive(Debug, Clone)]
    pub enum Misbehave {
        /// Open this path for reading.
        Open(std::path::PathBuf),
        /// Replace the process with this program.
        Exec(std::path::PathBuf),
        /// A system call the server never makes (`getpriority`; it returns a nice value, never
        /// a process ID, so its answer is the same inside any PID namespace).
        OffListSyscall,
        /// Allocate (without touching) this many bytes: more than the allocator has mapped,
        /// so it maps and names new memory, as a busy server does.
        Allocate(usize),
    }

    impl std::str::FromStr for Misbehave {
        type Err = String;

        fn from_str(s: &str) -> Result<Self, String> {
            if let Some(path) = s.strip_prefix("open:") {
                Ok(Misbehave::Open(path.into()))
            } else if let Some(path) = s.strip_prefix("exec:") {
                Ok(Misbehave::Exec(path.into()))
            } else if s == "syscall" {
                Ok(Misbehave::OffListSyscall)
            } else if let Some(bytes) = s.strip_prefix("alloc:") {
                bytes
                    .parse()
                    .map(Misbehave::Allocate)
                    .map_err(|e| format!("{s}: {e}"))
            } else {
                Err(format!(
                    "`{s}` is not open:PATH, exec:PATH, syscall or alloc:BYTES"
                ))
            }
        }
    }

    /// Attempts each, on a thread of the blocking pool (where file operations run), and prints
    /// `misbehave <what>: <outcome>` for each on standard error.
    pub async fn misbehave(what: &[Misbehave]) {
        for attempt in what {
            let attempt = attempt.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let result = match &attempt {
                    Misbehave::Open(path) => std::fs::File::open(path).map(drop),
                    Misbehave::Exec(path) => {
                        use std::os::unix::process::CommandExt;
                        Err(std::process::Command::new(path).exec())
                    }
                    Misbehave::OffListSyscall => rustix::process::getpriority_process(None)
                        .map(drop)
                        .map_err(std::io::Error::from),
                    Misbehave::Allocate(bytes) => {
                        let mut block = Vec::<u8>::new();
                        block
                            .try_reserve_exact(*bytes)
                            .map(|()| drop(std::hint::black_box(block)))
                            .map_err(std::io::Error::other)
                    }
                };
                let outcome = match result {
                    Ok(()) => "allowed".to_string(),
                    Err(e) => format!("denied: {e}"),
                };
                format!("{attempt:?}: {outcome}")
            })
            .await
            .expect("the attempt's thread");
            eprintln!("misbehave {outcome}");
        }
    }
}
