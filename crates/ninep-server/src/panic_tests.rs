//! A handler panic, injected through the test build's [`crate::fault`] hook, answers its tag
//! with Rlerror(EIO) and leaves the connection serving, for requests run inline and as tasks.

use bytes::Bytes;
use ninep::{FrameReader, NOFID, Request, Response};
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use crate::{Config, Server, conn};

const MSIZE: u32 = 64 * 1024;
const EIO: u32 = rustix::io::Errno::IO.raw_os_error() as u32;

/// A client talking frame by frame to `conn::serve` over an in-memory pipe.
struct Client {
    r: FrameReader<ReadHalf<DuplexStream>>,
    w: WriteHalf<DuplexStream>,
}

impl Client {
    async fn send(&mut self, tag: u16, req: Request) {
        let mut frame = Vec::new();
        req.encode(tag, &mut frame).unwrap();
        self.w.write_all(&frame).await.unwrap();
    }

    /// The next reply; the connection closing instead is a failure.
    async fn recv(&mut self) -> (u16, Response) {
        let frame = self
            .r
            .next_frame()
            .await
            .unwrap()
            .expect("a reply, not a closed connection");
        Response::decode(&frame).unwrap()
    }
}

/// Serves a fresh export whose `request` handler panics; version and attach (fid 0) done.
async fn connect_with_panic_in(request: &'static str) -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    config.root_squash = false;
    let server = Server::new(&config).unwrap();
    server.fault.panic_in(request);
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let (sr, sw) = tokio::io::split(theirs);
    tokio::spawn(conn::serve(server, crate::Peer::Trusted, sr, sw));
    let (r, w) = tokio::io::split(ours);
    let mut c = Client {
        r: FrameReader::new(r, MSIZE),
        w,
    };
    c.send(
        0xffff,
        Request::Version {
            msize: MSIZE,
            version: Bytes::from_static(b"9P2000.L"),
        },
    )
    .await;
    assert!(matches!(c.recv().await, (0xffff, Response::Version { .. })));
    c.send(
        1,
        Request::Attach {
            fid: 0,
            afid: NOFID,
            uname: Bytes::new(),
            aname: Bytes::new(),
            n_uname: 0,
        },
    )
    .await;
    assert!(matches!(c.recv().await, (1, Response::Attach { .. })));
    (c, dir)
}

fn getattr() -> Request {
    Request::Getattr {
        fid: 0,
        request_mask: 0x7ff,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_handler_panic_answers_eio_and_the_connection_goes_on() {
    let (mut c, _dir) = connect_with_panic_in("Tstatfs").await;
    c.send(2, Request::Statfs { fid: 0 }).await;
    c.send(3, getattr()).await;
    // Inline requests are answered in order by the reader task, which must survive.
    assert_eq!(c.recv().await, (2, Response::Lerror { ecode: EIO }));
    assert!(matches!(c.recv().await, (3, Response::Getattr(_))));
    // The same request again: still answered, still EIO.
    c.send(2, Request::Statfs { fid: 0 }).await;
    assert_eq!(c.recv().await, (2, Response::Lerror { ecode: EIO }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_handler_panic_answers_eio_and_frees_its_tag() {
    let (mut c, _dir) = connect_with_panic_in("Tread").await;
    c.send(
        5,
        Request::Read {
            fid: 0,
            offset: 0,
            count: 10,
        },
    )
    .await;
    // Reusing tag 5 at once makes the server wait until the Tread's task is gone, so its
    // reply (if any) comes first: without the containment only the Rgetattr would come.
    c.send(5, getattr()).await;
    assert_eq!(c.recv().await, (5, Response::Lerror { ecode: EIO }));
    assert!(matches!(c.recv().await, (5, Response::Getattr(_))));
    // The finished request left the in-flight table: a Tflush of its tag is answered.
    c.send(6, Request::Flush { oldtag: 5 }).await;
    assert_eq!(c.recv().await, (6, Response::Flush));
}
