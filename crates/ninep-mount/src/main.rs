//! `mount.ninep`: mounts a 9P2000.L server's export with the kernel's v9fs over any connection
//! mount.ninep can make (TCP, a unix socket, vsock), authenticating with MUNGE where the server
//! asks for it.
//!
//! The kernel's v9fs connects by itself only over TCP, unix sockets, virtio and RDMA, and never
//! authenticates. mount.ninep connects, speaks Tversion, Tauth (when the server asks) and a
//! trial Tattach, then hands the connected socket to the kernel (`trans=fd`) with `mount(2)`
//! and exits; the kernel keeps the socket for the mount's lifetime. mount(8) runs it for
//! `mount -t ninep SOURCE DIR` when it is installed as `/sbin/mount.ninep` (cargo cannot name a
//! binary with a dot: it builds `ninep-mount`, installed under that name).

#![forbid(unsafe_code)]

mod connect;
mod options;
mod session;
mod source;

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::options::Options;
use crate::session::Attach;
use crate::source::Source;

/// mount(8)'s exit codes.
const EX_USAGE: u8 = 1;
const EX_FAIL: u8 = 32;

/// Mount a 9P2000.L server's export (such as ninepd's) with the kernel's v9fs.
///
/// SOURCE is `tcp:HOST[:PORT][:ANAME]` (PORT defaults to 564; an IPv6 HOST in brackets),
/// `unix:PATH[:ANAME]` (PATH without ':') or `vsock:CID:PORT[:ANAME]` (CID 2 is the host seen
/// from a virtual machine, 1 this machine). Whatever follows the address after a ':' is the
/// aname, the export or directory to attach (it may hold ':'; after a TCP host a field of
/// digits is the port, so a numeric aname needs the port written out).
///
/// Options (-o, comma-separated): the generic mount flags (ro, rw, nosuid, nodev, noexec,
/// noatime, sync, ...), v9fs's own (msize=, cache=, access=, uname=, aname=, posixacl,
/// dfltuid=, dfltgid=, debug=, locktimeout=, ...), and munge_socket=PATH, the munged to encode
/// a credential with when the server asks for MUNGE authentication (default
/// /run/munge/munge.socket.2). trans, rfdno, wfdno, version and port are mount.ninep's to set.
///
/// Exit status: 0 mounted, 1 bad usage (source, option), 32 mount failure (server down,
/// authentication or attach refused, mount(2) refused).
#[derive(Debug, Parser)]
#[command(name = "mount.ninep", version)]
struct Args {
    /// Where the server is, and optionally the aname: see above.
    source: String,

    /// The directory to mount on.
    dir: PathBuf,

    /// Options, comma-separated (may be given more than once).
    #[arg(short = 'o', value_name = "OPTIONS")]
    options: Vec<String>,

    /// Sloppy: ignore unknown options (with a warning) instead of refusing them.
    #[arg(short = 's')]
    sloppy: bool,

    /// Fake: connect, authenticate and attach, but do not mount.
    #[arg(short = 'f')]
    fake: bool,

    /// No mtab: accepted for mount(8)'s sake (there is no /etc/mtab to write).
    #[arg(short = 'n')]
    no_mtab: bool,

    /// Verbose: say what was done.
    #[arg(short = 'v')]
    verbose: bool,

    /// The filesystem type mount(8) was given (`ninep`, or `ninep.SUBTYPE`).
    #[arg(short = 't', value_name = "TYPE")]
    fs_type: Option<String>,
}

fn main() -> ExitCode {
    // Before parsing: SOURCE and DIR are required, and the packaging step has neither.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "--generate-man")
    {
        return generate_man();
    }
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EX_USAGE } else { 0 });
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("mount.ninep: {message}");
            ExitCode::from(code)
        }
    }
}

/// `--generate-man` (for packaging, not in `--help`): the manual page, mount.ninep(8), from
/// the arguments' documentation.
fn generate_man() -> ExitCode {
    use clap::CommandFactory;
    let man = clap_mangen::Man::new(Args::command()).section("8");
    match man.render(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mount.ninep: cannot write the manual page: {e}");
            ExitCode::from(EX_FAIL)
        }
    }
}

type Failure = (u8, String);

fn usage(message: impl std::fmt::Display) -> Failure {
    (EX_USAGE, message.to_string())
}

fn failed(message: impl std::fmt::Display) -> Failure {
    (EX_FAIL, message.to_string())
}

fn run(args: &Args) -> Result<(), Failure> {
    if let Some(ty) = &args.fs_type
        && ty != "ninep"
        && !ty.starts_with("ninep.")
    {
        return Err(usage(format!("-t {ty}: mount.ninep mounts type ninep")));
    }
    let source = Source::parse(&args.source).map_err(usage)?;
    let (mut options, ignored) =
        Options::parse(&args.options.join(","), args.sloppy).map_err(usage)?;
    for option in &ignored {
        eprintln!("mount.ninep: ignoring unknown option `{option}` (-s)");
    }
    if let Some(aname) = &source.aname {
        match &options.aname {
            Some(other) if other != aname => {
                return Err(usage(format!(
                    "the source names aname `{aname}` and -o aname=`{other}`: give one"
                )));
            }
            Some(_) => {}
            None => {
                options.kernel.push(format!("aname={aname}"));
                options.aname = Some(aname.clone());
            }
        }
    }
    if !args.dir.is_dir() {
        return Err(usage(format!("{} is not a directory", args.dir.display())));
    }

    let mut conn = connect::connect(&source.address)
        .map_err(|e| failed(format!("cannot connect to {}: {e}", source.address)))?;
    let who = Attach {
        uname: options.uname.as_deref().unwrap_or(""),
        aname: options.aname.as_deref().unwrap_or(""),
        n_uname: rustix::process::getuid().as_raw(),
        munge_socket: options
            .munge_socket
            .as_deref()
            .unwrap_or(ninep::munge::DEFAULT_SOCKET),
    };
    let outcome = session::prepare(&mut conn, &who)
        .map_err(|e| failed(format!("{}: {e}", source.address)))?;
    if args.verbose {
        println!(
            "mount.ninep: {} speaks 9P2000.L{}; the attach was accepted",
            source.address,
            if outcome.authenticated {
                ", authenticated with MUNGE"
            } else {
                ""
            }
        );
    }
    if args.fake {
        return Ok(());
    }
    conn.end_timeouts()
        .map_err(|e| failed(format!("cannot prepare the connection: {e}")))?;
    let fd = conn.as_raw_fd();
    let mut data = format!("trans=fd,rfdno={fd},wfdno={fd},version=9p2000.L");
    for option in &options.kernel {
        data.push(',');
        data.push_str(option);
    }
    let data = CString::new(data).map_err(|_| usage("an option holds a NUL byte"))?;
    rustix::mount::mount(
        args.source.as_str(),
        &args.dir,
        "9p",
        options.flags,
        data.as_c_str(),
    )
    .map_err(|e| {
        let hint = match e {
            rustix::io::Errno::PERM => " (mounting needs root)",
            rustix::io::Errno::NODEV => " (the kernel has no 9p filesystem: modprobe 9p)",
            _ => " (the kernel's log may say more)",
        };
        failed(format!(
            "mount(2) of {} on {} failed: {e}{hint}",
            args.source,
            args.dir.display()
        ))
    })?;
    if args.verbose {
        println!(
            "mount.ninep: mounted {} on {}",
            args.source,
            args.dir.display()
        );
    }
    Ok(())
}
