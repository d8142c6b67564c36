//! `mount.ninep -f` (everything but `mount(2)`) against an in-process `ninepd` server and a
//! `munged` of its own: the exchange, MUNGE authentication, and each failure's exit code and
//! message, without a guest (the guest suite mounts for real).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ninep_server::listen::{self, Bound, Listen};
use ninep_server::{Config, Server};

/// Starts a server on `listen`, on a runtime of its own, serving until the test process ends;
/// returns its TCP address when it listens on TCP.
fn serve(export: &Path, listen: &Listen, munge_socket: Option<PathBuf>) -> Option<SocketAddr> {
    let mut config = Config::new(export);
    config.munge_socket = munge_socket;
    let server = Server::new(&config).unwrap();
    let bound = listen::bind(listen).unwrap();
    let addr = match &bound {
        Bound::Tcp(listener) => Some(listener.local_addr().unwrap()),
        _ => None,
    };
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _ = runtime.block_on(listen::serve(server, bound));
    });
    addr
}

fn mount_ninep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ninep-mount"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The exit code and what was printed.
fn run(args: &[&str]) -> (i32, String) {
    let out = mount_ninep(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

struct Dirs {
    _tmp: tempfile::TempDir,
    export: PathBuf,
    mnt: PathBuf,
    root: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let export = root.join("export");
    let mnt = root.join("mnt");
    std::fs::create_dir_all(export.join("sub")).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    Dirs {
        _tmp: tmp,
        export,
        mnt,
        root,
    }
}

#[test]
fn the_exchange_succeeds_over_unix_and_tcp() {
    let d = dirs();
    let socket = d.root.join("9p.sock");
    serve(&d.export, &Listen::Unix(socket.clone()), None);
    let port = serve(&d.export, &Listen::Tcp("127.0.0.1:0".into()), None)
        .unwrap()
        .port();
    let mnt = d.mnt.to_str().unwrap();
    for source in [
        format!("unix:{}", socket.display()),
        format!("unix:{}:sub", socket.display()),
        format!("tcp:127.0.0.1:{port}"),
        format!("tcp:127.0.0.1:{port}:sub"),
    ] {
        let (code, text) = run(&["-f", "-v", &source, mnt, "-o", "ro,msize=65536"]);
        assert_eq!(code, 0, "{source}: {text}");
        assert!(
            text.contains("speaks 9P2000.L; the attach was accepted"),
            "{source}: {text}"
        );
    }
}

#[test]
fn each_failure_has_its_exit_code_and_reason() {
    let d = dirs();
    let socket = d.root.join("9p.sock");
    serve(&d.export, &Listen::Unix(socket.clone()), None);
    let mnt = d.mnt.to_str().unwrap();
    let unix = format!("unix:{}", socket.display());
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-f", &format!("{unix}:no-such-dir"), mnt],
            32,
            "the server refused the attach to `no-such-dir`: No such file or directory",
        ),
        (
            &["-f", "unix:/nonexistent/9p.sock", mnt],
            32,
            "cannot connect to unix:/nonexistent/9p.sock",
        ),
        (&["-f", "nfs:server", mnt], 1, "is not tcp:HOST"),
        (&["-f", "vsock:2", mnt], 1, "vsock needs CID:PORT"),
        (
            &["-f", "-o", "bogus", &unix, mnt],
            1,
            "unknown option `bogus`",
        ),
        (
            &["-f", "-o", "rfdno=3", &unix, mnt],
            1,
            "option `rfdno` is set by mount.ninep",
        ),
        (
            &["-f", "-o", "aname=a", &format!("{unix}:b"), mnt],
            1,
            "give one",
        ),
        (&["-f", &unix, "/nonexistent"], 1, "is not a directory"),
        (&["-f", &unix], 1, "DIR"),
    ];
    for (args, want_code, want_text) in cases {
        let (code, text) = run(args);
        assert_eq!(code, *want_code, "{args:?}: {text}");
        assert!(text.contains(want_text), "{args:?}: {text}");
    }
    // -s sets unknown options aside with a warning.
    let (code, text) = run(&["-f", "-s", "-o", "bogus", &unix, mnt]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ignoring unknown option `bogus`"), "{text}");
}

/// A `munged` with a fresh key, stopped on drop.
struct Munged {
    child: std::process::Child,
    socket: PathBuf,
}

impl Drop for Munged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_munged(dir: &Path) -> Munged {
    std::fs::create_dir(dir).unwrap();
    let key = dir.join("key");
    let made = Command::new("mungekey")
        .arg("--create")
        .arg(format!("--keyfile={}", key.display()))
        .status()
        .expect("mungekey runs (apt-get install munge)");
    assert!(made.success());
    let socket = dir.join("sock");
    let child = Command::new("munged")
        .args(["--foreground", "--force"])
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--key-file={}", key.display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--seed-file={}", dir.join("seed").display()))
        .arg(format!("--log-file={}", dir.join("log").display()))
        .stderr(Stdio::null())
        .spawn()
        .expect("munged runs (apt-get install munge)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "munged did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Munged { child, socket }
}

#[test]
fn munge_authentication_when_the_server_asks() {
    let d = dirs();
    let good = start_munged(&d.root.join("good"));
    let other = start_munged(&d.root.join("other"));
    let addr = serve(
        &d.export,
        &Listen::Tcp("127.0.0.1:0".into()),
        Some(good.socket.clone()),
    );
    let source = format!("tcp:127.0.0.1:{}", addr.unwrap().port());
    let mnt = d.mnt.to_str().unwrap();
    let with = |socket: &Path| format!("munge_socket={}", socket.display());

    let (code, text) = run(&["-f", "-v", "-o", &with(&good.socket), &source, mnt]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("authenticated with MUNGE"), "{text}");

    let (code, text) = run(&["-f", "-o", &with(&other.socket), &source, mnt]);
    assert_eq!(code, 32, "{text}");
    assert!(
        text.contains("the server refused the attach: Operation not permitted"),
        "{text}"
    );

    let (code, text) = run(&["-f", "-o", "munge_socket=/nonexistent", &source, mnt]);
    assert_eq!(code, 32, "{text}");
    assert!(
        text.contains("munged did not give a credential: cannot talk to munged at /nonexistent"),
        "{text}"
    );
    drop(other);
    drop(good);
}
