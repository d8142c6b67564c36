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
        .args(["--listen", "fd", "--log-level", "warn"])
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
        // --busy-poll is ignored on standard input and output.
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
    let c = loop {
        match Client::connect_unix(&socket).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
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
