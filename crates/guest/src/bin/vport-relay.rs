//! Guest-side relay between a virtio-serial port and a socketpair, for the kernel's 9P `trans=fd`.
//!
//! `trans=fd` cannot use a virtio port directly (the port has no `write_iter`, so the kernel's writes fail)
//! and a port can be opened only once. So this opens the port once, creates a socketpair, places one end at
//! fd `FD` (inheritable), runs `CMD` with it, and leaves a helper process relaying bytes both ways until
//! either side closes:
//!
//! ```sh
//! vport-relay p9 3 mount -t 9p -o trans=fd,rfdno=3,wfdno=3,version=9p2000.L,aname=/srv,uname=root,access=user none /mnt
//! ```
//!
//! It exits with `CMD`'s status; the relay lives on (reparented to init) for as long as the mount does.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

const USAGE: &str = "usage: vport-relay PORT-NAME FD COMMAND [ARG...]";
/// The hidden mode of the helper process: relay between its stdin (the port) and stdout (the socket).
const PUMP: &str = "--pump";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(PUMP) {
        pump();
    }
    match run(&args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("vport-relay: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let [name, fd, command, rest @ ..] = args else {
        return Err(USAGE.to_owned());
    };
    let fd: i32 = fd
        .parse()
        .ok()
        .filter(|fd| *fd >= 3)
        .ok_or_else(|| format!("FD must be a number of at least 3, got {fd:?}\n{USAGE}"))?;
    let device = find_port(name)?;
    let port = File::options()
        .read(true)
        .write(true)
        .open(&device)
        .map_err(|e| format!("cannot open {}: {e}", device.display()))?;
    let (relay_end, command_end) =
        UnixStream::pair().map_err(|e| format!("cannot create a socketpair: {e}"))?;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Command::new(exe)
        .arg(PUMP)
        .stdin(Stdio::from(OwnedFd::from(port)))
        .stdout(Stdio::from(OwnedFd::from(relay_end)))
        .spawn()
        .map_err(|e| format!("cannot start the relay process: {e}"))?;

    let placed = rustix::io::fcntl_dupfd_cloexec(&command_end, fd)
        .map_err(|e| format!("cannot duplicate the socket to fd {fd}: {e}"))?;
    if placed.as_raw_fd() != fd {
        return Err(format!("fd {fd} is already open here; pick another FD"));
    }
    rustix::io::fcntl_setfd(&placed, rustix::io::FdFlags::empty())
        .map_err(|e| format!("cannot make fd {fd} inheritable: {e}"))?;
    drop(command_end);
    let status = Command::new(command)
        .args(rest)
        .status()
        .map_err(|e| format!("cannot run {command}: {e}"))?;
    drop(placed);
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(128),
    })
}

/// `/dev/<vportNpM>` of the port whose `/sys/class/virtio-ports/*/name` is `name`.
fn find_port(name: &str) -> Result<PathBuf, String> {
    let class = "/sys/class/virtio-ports";
    let mut seen = Vec::new();
    let entries = std::fs::read_dir(class).map_err(|e| format!("cannot list {class}: {e}"))?;
    for entry in entries.flatten() {
        let port_name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if port_name.trim() == name {
            return Ok(PathBuf::from("/dev").join(entry.file_name()));
        }
        seen.push(port_name.trim().to_owned());
    }
    Err(format!(
        "no virtio-serial port named {name:?} (ports: {seen:?})"
    ))
}

/// Relays stdin (the port) <-> stdout (the socket) until either side closes, then exits.
fn pump() -> ! {
    let open = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().map(File::from);
    let (port, socket) = match (
        open(std::io::stdin().as_fd()),
        open(std::io::stdout().as_fd()),
    ) {
        (Ok(p), Ok(s)) => (p, s),
        _ => {
            eprintln!("vport-relay: the relay process lacks its descriptors");
            std::process::exit(2)
        }
    };
    let (port_in, socket_out) = match (port.try_clone(), socket.try_clone()) {
        (Ok(p), Ok(s)) => (p, s),
        _ => std::process::exit(2),
    };
    std::thread::spawn(move || copy(port_in, socket_out));
    copy(socket, port);
}

/// Copies until end of file or an error, then ends the whole process (both directions).
fn copy(mut from: File, mut to: File) -> ! {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    std::process::exit(0)
}
