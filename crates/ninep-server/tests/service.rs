//! `ninepd` as a service: exports from a configuration file, reloads on SIGHUP, systemd's
//! socket activation and readiness protocol, statistics on SIGUSR1 and `--trace-protocol`.
//! The server binaries here run with their sandbox on (the default).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{O_RDONLY, O_RDWR, errno};
use ninep::{Client, NOFID};
use ninep_server::config::{self, Defaults};
use ninep_server::{Config, Server, listen};

const MSIZE: u32 = 1 << 16;

/// A notification socket the test owns, as systemd's `NOTIFY_SOCKET`.
struct Notify {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Notify {
    fn new(dir: &Path) -> Notify {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Notify { socket, path }
    }

    /// Waits (up to 30 s) for a datagram with the line `line`, and returns the datagram.
    fn wait_for(&self, line: &str, server: &mut Child) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            // Whether it had exited before this read: what it sent before exiting is read
            // first.
            let exited = server.try_wait().unwrap();
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.lines().any(|l| l == line) {
                    return text;
                }
            } else if let Some(status) = exited {
                panic!("the server exited ({status}) before sending {line}");
            }
        }
        panic!("no {line} from the server within 30 s");
    }
}

/// A `ninepd` started with `args`, its standard error in a file, readiness on `notify`.
fn spawn(args: &[&str], notify: &Notify, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .args(args)
        .env("NOTIFY_SOCKET", &notify.path)
        .stderr(std::fs::File::create(log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, signal).unwrap();
}

/// Stops the server with SIGTERM, checks that it says STOPPING=1 and exits 0.
fn stop(mut child: Child, notify: &Notify) {
    signal(&child, rustix::process::Signal::TERM);
    notify.wait_for("STOPPING=1", &mut child);
    assert!(child.wait().unwrap().success());
}

async fn client(socket: &Path) -> Client {
    let c = Client::connect_unix(socket).await.unwrap();
    c.version(MSIZE, "9P2000.L").await.unwrap();
    c
}

fn export_table(name: &str, dir: &Path, options: &str) -> String {
    format!("[export.{name}]\npath = \"{}\"\n{options}\n", dir.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_from_a_file_have_their_own_options_and_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let (rw, ro, root_only, tcp_only) = (
        tmp.path().join("rw"),
        tmp.path().join("ro"),
        tmp.path().join("root-only"),
        tmp.path().join("far-hosts"),
    );
    for dir in [&rw, &ro, &root_only, &tcp_only] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::create_dir(rw.join("sub")).unwrap();
    std::fs::write(ro.join("f"), b"read me").unwrap();
    let file = tmp.path().join("ninepd.toml");
    let text = [
        "default = \"rw\"\n".to_string(),
        export_table("rw", &rw, "root_squash = false"),
        export_table("ro", &ro, "read_only = true\nroot_squash = false"),
        // The test's unix peer is its own user (root when run by cargo xtask test): admitted
        // by uid here, refused below.
        export_table(
            "root-only",
            &root_only,
            &format!(
                "allow_uids = [{}]\nallow_hosts = [\"127.0.0.0/8\"]",
                rustix::process::geteuid().as_raw()
            ),
        ),
        export_table("far-hosts", &tcp_only, "allow_hosts = [\"10.0.0.0/8\"]"),
    ]
    .concat();
    std::fs::write(&file, text).unwrap();
    let loaded = config::load(&file, &Defaults::default()).unwrap();
    let server = Server::with_exports(&Config::new("."), loaded.exports).unwrap();
    let socket = tmp.path().join("s");
    let (unix, _file) = listen::bind_unix(&socket).unwrap();
    let unix_task = tokio::spawn(listen::serve(
        server.clone(),
        listen::Bound::Unix(unix.into_std().unwrap(), _file),
    ));
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let tcp_task = tokio::spawn(listen::serve(server.clone(), listen::Bound::Tcp(tcp)));

    let c = client(&socket).await;
    // The default export, by an empty aname; a directory beneath it, by name.
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.lcreate(0, b"new", O_RDWR, 0o644, 0).await.unwrap();
    assert!(rw.join("new").exists());
    c.attach(1, NOFID, b"", b"rw/sub", 0).await.unwrap();
    c.mkdir(1, b"made", 0o755, 0).await.unwrap();
    assert!(rw.join("sub/made").is_dir());
    // The read-only one, by name and by path: reads work, changes get EROFS.
    c.attach(2, NOFID, b"", b"ro", 0).await.unwrap();
    c.walk(2, 3, &["f"]).await.unwrap();
    c.lopen(3, O_RDONLY).await.unwrap();
    assert_eq!(&c.read(3, 0, 100).await.unwrap()[..], b"read me");
    assert_eq!(
        errno(c.lcreate(2, b"no", O_RDWR, 0o644, 0).await),
        libc::EROFS
    );
    let by_path = ro.display().to_string();
    c.attach(4, NOFID, b"", by_path.as_bytes(), 0)
        .await
        .unwrap();
    assert_eq!(errno(c.mkdir(4, b"no", 0o755, 0).await), libc::EROFS);
    // No rename or link across exports, whatever their options.
    assert_eq!(errno(c.renameat(0, b"new", 2, b"moved").await), libc::EXDEV);
    // Unknown names and paths; the admission lists.
    assert_eq!(
        errno(c.attach(5, NOFID, b"", b"other", 0).await),
        libc::ENOENT
    );
    assert_eq!(
        errno(c.attach(5, NOFID, b"", b"/nowhere", 0).await),
        libc::ENOENT
    );
    c.attach(5, NOFID, b"", b"root-only", 0).await.unwrap();
    assert_eq!(
        errno(c.attach(6, NOFID, b"", b"far-hosts", 0).await),
        libc::EACCES,
        "a unix peer is not a host of an allowed network"
    );
    let t = Client::connect_tcp(tcp_addr).await.unwrap();
    t.version(MSIZE, "9P2000.L").await.unwrap();
    t.attach(0, NOFID, b"", b"root-only", 0).await.unwrap();
    assert_eq!(
        errno(t.attach(1, NOFID, b"", b"far-hosts", 0).await),
        libc::EACCES,
        "127.0.0.1 is not in 10.0.0.0/8"
    );
    unix_task.abort();
    tcp_task.abort();
}

#[test]
fn check_config_names_the_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ninepd.toml");
    std::fs::write(
        &file,
        export_table("a", tmp.path(), "read_only = true") + &export_table("b", tmp.path(), ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("a=") && said.contains("(read-only)"),
        "{said}"
    );

    std::fs::write(
        &file,
        export_table("a", tmp.path(), "read_only = true\nmulti_usr = true"),
    )
    .unwrap();
    for check in [true, false] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ninepd"));
        if check {
            cmd.arg("--check-config");
        }
        let out = cmd
            .arg("--config")
            .arg(&file)
            .args(["--listen", "unix:/nonexistent/never.sock"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        let expected = format!("{}:4:1: export.a.multi_usr: unknown field", file.display());
        assert!(said.contains(&expected), "{said}");
    }
    // A directory and a configuration file are one or the other.
    let out = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .arg(tmp.path())
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_exports_and_open_fids_outlive_their_export() {
    let tmp = tempfile::tempdir().unwrap();
    let roots = tmp.path().join("srv");
    let [a, b, c_dir, outside] = ["srv/a", "srv/b", "srv/c", "outside"].map(|d| {
        let dir = tmp.path().join(d);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    });
    std::fs::write(b.join("kept-open"), b"still here").unwrap();
    let file = tmp.path().join("ninepd.toml");
    let sandbox = format!("sandbox_roots = [\"{}\"]\n", roots.display());
    let write_config = |tables: &[(&str, &Path)]| {
        let mut text = sandbox.clone();
        for (name, dir) in tables {
            text += &export_table(name, dir, "root_squash = false");
        }
        std::fs::write(&file, text).unwrap();
    };
    write_config(&[("a", &a), ("b", &b)]);
    let notify = Notify::new(tmp.path());
    let socket = tmp.path().join("ninepd.sock");
    let log = tmp.path().join("stderr");
    let mut server = spawn(
        &[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            &format!("unix:{}", socket.display()),
        ],
        &notify,
        &log,
    );
    notify.wait_for("READY=1", &mut server);

    let c = client(&socket).await;
    c.attach(0, NOFID, b"", b"b", 0).await.unwrap();
    c.walk(0, 1, &["kept-open"]).await.unwrap();
    c.lopen(1, O_RDWR).await.unwrap();
    assert_eq!(errno(c.attach(9, NOFID, b"", b"c", 0).await), libc::ENOENT);

    // b goes, c comes.
    write_config(&[("a", &a), ("c", &c_dir)]);
    signal(&server, rustix::process::Signal::HUP);
    notify.wait_for("RELOADING=1", &mut server);
    notify.wait_for("READY=1", &mut server);
    c.attach(2, NOFID, b"", b"c", 0).await.unwrap();
    c.attach(3, NOFID, b"", b"a", 0).await.unwrap();
    assert_eq!(
        errno(c.attach(4, NOFID, b"", b"b", 0).await),
        libc::ENOENT,
        "new attaches no longer find a removed export"
    );
    // The fids in b keep working until clunked: the open file, and walks from the root.
    assert_eq!(&c.read(1, 0, 100).await.unwrap()[..], b"still here");
    c.write(1, 0, Bytes::from_static(b"STILL")).await.unwrap();
    c.walk(0, 5, &["kept-open"]).await.unwrap();
    c.clunk(1).await.unwrap();
    assert_eq!(std::fs::read(b.join("kept-open")).unwrap(), b"STILL here");

    // A broken file, and one with an export outside the sandbox, are refused; c stays.
    for (text, why) in [
        (
            format!("{sandbox}[export.c]\npath = 7\n"),
            "export.c.path: invalid type",
        ),
        // Widening sandbox_roots takes a restart too.
        (
            format!("sandbox_roots = [\"{}\"]\n", tmp.path().display())
                + &export_table("x", &outside, ""),
            "restart the server",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        signal(&server, rustix::process::Signal::HUP);
        notify.wait_for("RELOADING=1", &mut server);
        notify.wait_for("READY=1", &mut server);
        let said = std::fs::read_to_string(&log).unwrap();
        assert!(
            said.contains("reload refused") && said.contains(why),
            "{said}"
        );
        c.attach(6, NOFID, b"", b"c", 0).await.unwrap();
        c.clunk(6).await.unwrap();
    }
    // A file replaced (written elsewhere and renamed over it, as editors do) is not the file
    // the sandbox lets the server read: the reload says so.
    let replacement = tmp.path().join("ninepd.toml.new");
    std::fs::write(&replacement, sandbox.clone() + &export_table("a", &a, "")).unwrap();
    std::fs::rename(&replacement, &file).unwrap();
    signal(&server, rustix::process::Signal::HUP);
    notify.wait_for("RELOADING=1", &mut server);
    notify.wait_for("READY=1", &mut server);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("write changes into the file in place"),
        "{said}"
    );
    c.attach(6, NOFID, b"", b"c", 0).await.unwrap();
    drop(c);
    stop(server, &notify);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_the_sockets_passed_in() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::write(export.join("f"), b"activated").unwrap();
    let socket = tmp.path().join("activated.sock");
    let unix = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    // Descriptors 3 and 4 in the server, as systemd passes them: bash moves them there
    // (they are inherited without close-on-exec) and sets LISTEN_PID to its own pid, which
    // exec keeps.
    for fd in [
        std::os::fd::AsFd::as_fd(&unix),
        std::os::fd::AsFd::as_fd(&tcp),
    ] {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).unwrap();
    }
    let (u, t) = (
        std::os::fd::AsRawFd::as_raw_fd(&unix),
        std::os::fd::AsRawFd::as_raw_fd(&tcp),
    );
    let notify = Notify::new(tmp.path());
    let log = tmp.path().join("stderr");
    let script = format!(
        "exec 100<&{u} 101<&{t}; exec {u}<&- {t}<&-; exec 3<&100 4<&101 100<&- 101<&-; \
         LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=unix:tcp exec \"$0\" \"$@\""
    );
    let mut server = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_ninepd")])
        .arg(&export)
        .arg("--no-root-squash")
        .env("NOTIFY_SOCKET", &notify.path)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    drop((unix, tcp));
    let ready = notify.wait_for("READY=1", &mut server);
    assert!(ready.contains("STATUS=serving"), "{ready}");

    let c = client(&socket).await;
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.walk(0, 1, &["f"]).await.unwrap();
    c.lopen(1, O_RDONLY).await.unwrap();
    assert_eq!(&c.read(1, 0, 100).await.unwrap()[..], b"activated");
    let t = Client::connect_tcp(tcp_addr).await.unwrap();
    t.version(MSIZE, "9P2000.L").await.unwrap();
    t.attach(0, NOFID, b"", b"", 0).await.unwrap();
    drop((c, t));
    stop(server, &notify);
    // The socket's file is systemd's: the server leaves it.
    assert!(
        socket.exists(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_logs_statistics_and_trace_protocol_logs_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let notify = Notify::new(tmp.path());
    let socket = tmp.path().join("ninepd.sock");
    let log = tmp.path().join("stderr");
    let mut server = spawn(
        &[
            export.to_str().unwrap(),
            "--no-root-squash",
            "--trace-protocol",
            "--log-level",
            "debug",
            "--listen",
            &format!("unix:{}", socket.display()),
        ],
        &notify,
        &log,
    );
    notify.wait_for("READY=1", &mut server);
    let c = Arc::new(client(&socket).await);
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    for _ in 0..3 {
        c.getattr(0, ninep::consts::getattr::BASIC).await.unwrap();
    }
    c.walk(0, 1, &[] as &[&str]).await.unwrap();
    c.lcreate(1, b"f", O_RDWR, 0o644, 0).await.unwrap();
    c.write(1, 0, Bytes::from_static(b"PAYLOAD-NOT-LOGGED"))
        .await
        .unwrap();
    c.read(1, 0, 100).await.unwrap();
    assert_eq!(errno(c.walk(0, 2, &["missing"]).await), libc::ENOENT);
    signal(&server, rustix::process::Signal::USR1);
    // The report is logged by the server's signal task: wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let said = loop {
        let said = std::fs::read_to_string(&log).unwrap();
        if said.contains("statistics: Twrite") || Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(c);
    stop(server, &notify);
    for expected in [
        "statistics: Tgetattr count=3 errors=0 p50=",
        "statistics: Twalk count=2 errors=1 ",
        "statistics: Twrite count=1 errors=0 ",
        "<- Getattr { fid: 0,",
        "-> Getattr(",
        "<- Twrite { fid: 1, offset: 0, count: 18 }",
        "-> Write { count: 18 }",
        "-> Rread { count: 18 }",
        "-> Lerror { ecode: 2 }",
        "<- Version { msize: 65536, version: b\"9P2000.L\" }",
        "-> Version { msize: 65536, version: b\"9P2000.L\" }",
    ] {
        assert!(said.contains(expected), "no `{expected}` in\n{said}");
    }
    assert!(!said.contains("PAYLOAD"), "file data in the log:\n{said}");
}
