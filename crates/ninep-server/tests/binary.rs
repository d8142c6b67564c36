//! The `ninepd` binary itself: the `fd` transport (the kernel's `trans=fd`) and its options.

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use ninep::{Client, NOFID};

/// Starts `ninepd --listen fd` with one end of a socket pair as its stdin and stdout.
fn spawn_fd_server(
    dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::os::unix::net::UnixStream) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let theirs: OwnedFd = theirs.into();
    let child = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .arg(dir)
        // The test acts as root on files root made: no root squash (see tests/trust.rs).
        .args(["--listen", "fd", "--log-level", "warn", "--no-root-squash"])
        .args(extra)
        .stdin(Stdio::from(theirs.try_clone().unwrap()))
        .stdout(Stdio::from(theirs))
        .spawn()
        .unwrap();
    (child, ours)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_one_client_on_stdin_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello"), b"over a pipe").unwrap();
    let (mut child, sock) = spawn_fd_server(
        dir.path(),
        // A socket on standard input and output is served as a socket, busy-polled too.
        &["--read-only", "--msize", "65536", "--busy-poll", "50"],
    );
    sock.set_nonblocking(true).unwrap();
    let c = Client::from_stream(tokio::net::UnixStream::from_std(sock).unwrap());
    assert_eq!(
        c.version(1 << 20, "9P2000.L").await.unwrap().0,
        65536,
        "--msize caps the msize"
    );
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.walk(0, 1, &["hello"]).await.unwrap();
    c.lopen(1, 0).await.unwrap();
    assert_eq!(&c.read(1, 0, 100).await.unwrap()[..], b"over a pipe");
    c.walk(0, 2, &["hello"]).await.unwrap();
    assert!(
        matches!(c.lopen(2, 1).await, Err(ninep::ClientError::Lerror(e)) if e == libc::EROFS as u32),
        "--read-only"
    );
    drop(c);
    // The client leaving ends the server.
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[test]
fn refuses_a_missing_export_and_bad_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .arg("/nonexistent/export")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/export"));
    let out = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .args([".", "--listen", "udp:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_ninepd"))
        .args([".", "--msize", "100"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    for bad in [
        ["--busy-poll", "-5"],
        ["--busy-poll", "soon"],
        ["--worker-threads", "x"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ninepd"))
            .arg(".")
            .args(bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains(bad[1]));
    }
}

/// Stops the child on drop, so a failing test leaves no server behind.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_unix_socket_busy_polling_on_one_worker_thread() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("export")).unwrap();
    std::fs::write(dir.path().join("export/f"), b"polled").unwrap();
    let socket = dir.path().join("sock");
    let _server = Running(
        Command::new(env!("CARGO_BIN_EXE_ninepd"))
            .arg(dir.path().join("export"))
            .args([
                "--no-root-squash",
                "--log-level",
                "warn",
                "--busy-poll",
                "100",
                "--worker-threads",
                "1",
            ])
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .spawn()
            .unwrap(),
    );
    let c = connect_when_up(&socket).await;
    c.version(1 << 20, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    for fid in 1..100 {
        c.walk(0, fid, &["f"]).await.unwrap();
        assert_eq!(c.getattr(fid, 0x7ff).await.unwrap().size, 6);
        c.lopen(fid, 0).await.unwrap();
        assert_eq!(&c.read(fid, 0, 100).await.unwrap()[..], b"polled");
        c.clunk(fid).await.unwrap();
    }
}

/// Starts `ninepd` on a unix socket, with its log on a pipe.
fn spawn_unix_server(export: &std::path::Path, socket: &std::path::Path) -> Running {
    Running(
        Command::new(env!("CARGO_BIN_EXE_ninepd"))
            .arg(export)
            .arg("--no-root-squash")
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Connects to a server that is starting, giving up after ten seconds.
async fn connect_when_up(socket: &std::path::Path) -> Client {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Client::connect_unix(socket).await {
            Ok(c) => return c,
            Err(e) if std::time::Instant::now() > deadline => panic!("ninepd never listened: {e}"),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// Sends `signal` to the server and waits for it to exit (see [`exit_of`]).
async fn stop(
    server: Running,
    signal: rustix::process::Signal,
) -> (std::process::ExitStatus, String) {
    let pid = rustix::process::Pid::from_child(&server.0);
    rustix::process::kill_process(pid, signal).unwrap();
    exit_of(server).await
}

/// Waits at most ten seconds for the server to exit; returns its status and its log.
async fn exit_of(mut server: Running) -> (std::process::ExitStatus, String) {
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = server.0.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "ninepd did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut log = String::new();
        std::io::Read::read_to_string(&mut server.0.stderr.take().unwrap(), &mut log).unwrap();
        (status, log)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_cleanly_on_sigterm_and_sigint_and_never_takes_a_live_socket() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"data").unwrap();
    let socket = dir.path().join("sock");
    let server = spawn_unix_server(dir.path(), &socket);
    let c = connect_when_up(&socket).await;
    c.version(1 << 20, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.walk(0, 1, &["f"]).await.unwrap();
    c.lopen(1, 0).await.unwrap();

    // A second server on the same socket would cut the first one off from new clients.
    let (status, log) = exit_of(spawn_unix_server(dir.path(), &socket)).await;
    assert!(!status.success());
    assert!(log.contains("another server is listening"), "{log}");
    assert_eq!(
        &c.read(1, 0, 10).await.unwrap()[..],
        b"data",
        "still served"
    );

    let (status, log) = stop(server, rustix::process::Signal::TERM).await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGTERM: stopping"), "{log}");
    assert!(!socket.exists(), "the socket file is removed");
    assert!(
        c.read(1, 0, 10).await.is_err(),
        "open connections are closed"
    );

    // A socket file whose server is gone is taken over.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let server = spawn_unix_server(dir.path(), &socket);
    let c = connect_when_up(&socket).await;
    c.version(1 << 20, "9P2000.L").await.unwrap();
    let (status, log) = stop(server, rustix::process::Signal::INT).await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("SIGINT: stopping"), "{log}");
    assert!(!socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_pipes_on_stdin_and_stdout_and_gives_them_back_blocking() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 300_000]).unwrap();
    let (requests_out, requests_in) = rustix::pipe::pipe().unwrap();
    let (replies_out, replies_in) = rustix::pipe::pipe().unwrap();
    // Shares the server's standard input's open file description, and so its flags.
    let probe = requests_out.try_clone().unwrap();
    let server = Running(
        Command::new(env!("CARGO_BIN_EXE_ninepd"))
            .arg(dir.path())
            .args(["--listen", "fd", "--no-root-squash"])
            .stdin(Stdio::from(requests_out))
            .stdout(Stdio::from(replies_in))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let c = Client::from_split(
        tokio::net::unix::pipe::Receiver::from_owned_fd(replies_out).unwrap(),
        tokio::net::unix::pipe::Sender::from_owned_fd(requests_in).unwrap(),
    );
    c.version(1 << 20, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.walk(0, 1, &["f"]).await.unwrap();
    c.lopen(1, 0).await.unwrap();
    let mut read = 0;
    while read < 300_000 {
        let data = c.read(1, read, 1 << 19).await.unwrap();
        assert!(!data.is_empty() && data.iter().all(|&b| b == 7));
        read += data.len() as u64;
    }
    assert_eq!(read, 300_000, "every byte, through 64 KiB pipes");

    let (status, log) = stop(server, rustix::process::Signal::TERM).await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("(pipes)"), "{log}");
    let flags = rustix::fs::fcntl_getfl(&probe).unwrap();
    assert!(
        !flags.contains(rustix::fs::OFlags::NONBLOCK),
        "standard input is left non-blocking"
    );
}

/// Sends one request on a blocking socket.
fn send(sock: &mut std::os::unix::net::UnixStream, tag: u16, request: &ninep::Request) {
    let mut frame = Vec::new();
    request.encode(tag, &mut frame).unwrap();
    std::io::Write::write_all(sock, &frame).unwrap();
}

/// Reads one reply from a blocking socket.
fn receive(sock: &mut std::os::unix::net::UnixStream) -> (u16, ninep::Response) {
    let mut size = [0; 4];
    std::io::Read::read_exact(sock, &mut size).unwrap();
    let mut frame = size.to_vec();
    frame.resize(u32::from_le_bytes(size) as usize, 0);
    std::io::Read::read_exact(sock, &mut frame[4..]).unwrap();
    ninep::Response::decode(&frame.into()).unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Clients that send large reads and do not read the replies hold the server to its budget
/// per connection (16 MiB at msize 1 MiB), not to a buffered 1 MiB reply for each of the 256
/// requests a connection may have in flight (1.2 GiB for these four); every reply then comes
/// whole.
#[test]
fn clients_that_do_not_read_replies_cannot_grow_the_server() {
    use ninep::{Request, Response};
    const CONNECTIONS: usize = 4;
    const READS: u16 = 300;
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big"), &content).unwrap();
    let socket = dir.path().join("sock");
    let server = spawn_unix_server(dir.path(), &socket);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut sock = loop {
            match std::os::unix::net::UnixStream::connect(&socket) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() > deadline => panic!("no server: {e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        };
        let setup = [
            Request::Version {
                msize: 1 << 20,
                version: "9P2000.L".into(),
            },
            Request::Attach {
                fid: 0,
                afid: NOFID,
                uname: "".into(),
                aname: "".into(),
                n_uname: 0,
            },
            Request::Walk {
                fid: 0,
                newfid: 1,
                wnames: vec!["big".into()],
            },
            Request::Lopen { fid: 1, flags: 0 },
        ];
        for request in &setup {
            send(&mut sock, 0, request);
            let (_, reply) = receive(&mut sock);
            assert!(!matches!(reply, Response::Lerror { .. }), "{reply:?}");
        }
        // In one write: the server stops reading this connection long before the last one,
        // and the socket's send buffer would not hold 300 small writes.
        let mut reads = Vec::new();
        for tag in 1..=READS {
            let count = 1 << 20;
            let read = Request::Read {
                fid: 1,
                offset: 0,
                count,
            };
            read.encode(tag, &mut reads).unwrap();
        }
        std::io::Write::write_all(&mut sock, &reads).unwrap();
        conns.push(sock);
    }
    // Let the server go as far as it can.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let rss = rss_kib(server.0.id());
    assert!(rss < 192 << 10, "the server holds {rss} KiB");
    for sock in &mut conns {
        let mut tags = std::collections::HashSet::new();
        for _ in 0..READS {
            let (tag, reply) = receive(sock);
            let Response::Read { data } = reply else {
                panic!("{reply:?}");
            };
            assert!(tags.insert(tag), "tag {tag} answered twice");
            assert!(data[..] == content[..data.len()] && !data.is_empty());
        }
    }
}

/// A TCP connection on standard input and output, as inetd hands one over, is served as TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_a_tcp_connection_handed_over_on_stdin_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"inetd").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let theirs: OwnedFd = listener.accept().unwrap().0.into();
    let server = Running(
        Command::new(env!("CARGO_BIN_EXE_ninepd"))
            .arg(dir.path())
            .args(["--listen", "fd", "--no-root-squash"])
            .stdin(Stdio::from(theirs.try_clone().unwrap()))
            .stdout(Stdio::from(theirs))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    ours.set_nonblocking(true).unwrap();
    let c = Client::from_stream(tokio::net::TcpStream::from_std(ours).unwrap());
    c.version(1 << 20, "9P2000.L").await.unwrap();
    c.attach(0, NOFID, b"", b"", 0).await.unwrap();
    c.walk(0, 1, &["f"]).await.unwrap();
    c.lopen(1, 0).await.unwrap();
    assert_eq!(&c.read(1, 0, 100).await.unwrap()[..], b"inetd");
    drop(c);
    let (status, log) = exit_of(server).await;
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("(a TCP socket)"), "{log}");
}
