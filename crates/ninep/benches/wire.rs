//! Speed of the codec and of the client's round trip against a minimal in-process responder
//! over a unix socket (so the figures are the client's own overhead, not a file server's).
//!
//! `cargo bench -p ninep --bench wire`. Under `cargo test` (no `--bench` argument) it does a
//! short smoke run instead, so the workspace test pass stays quick.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ninep::consts::getattr;
use ninep::{Attr, Client, FrameReader, Qid, Request, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn codec(scale: u32) {
    let request = Request::Getattr {
        fid: 7,
        request_mask: getattr::ALL,
    };
    let response = Response::Getattr(Attr {
        qid: Qid {
            ty: 0,
            version: 1,
            path: 2,
        },
        ..Attr::default()
    });
    let mut buf = Vec::with_capacity(256);
    let n = 20_000 * scale;
    let start = Instant::now();
    for i in 0..n {
        buf.clear();
        response.encode(i as u16, &mut buf).unwrap();
    }
    let encode = start.elapsed() / n;
    let frame = {
        let mut b = Vec::new();
        request.encode(1, &mut b).unwrap();
        Bytes::from(b)
    };
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(Request::decode(std::hint::black_box(&frame)).unwrap());
    }
    let decode = start.elapsed() / n;
    println!("codec: encode Rgetattr {encode:?}/op, decode Tgetattr {decode:?}/op");
}

/// Answers every Tgetattr with a fixed Rgetattr, reusing one output buffer.
async fn responder(stream: UnixStream) {
    let (r, mut w) = stream.into_split();
    let mut frames = FrameReader::new(r, 1 << 20);
    let mut out = Vec::with_capacity(1 << 16);
    let reply = Response::Getattr(Attr::default());
    let file = vec![0x5a; 1 << 20];
    while let Ok(Some(frame)) = frames.next_frame().await {
        let Ok((tag, request)) = Request::decode(&frame) else {
            return;
        };
        out.clear();
        match request {
            Request::Version { msize, version } => {
                Response::Version { msize, version }.encode(tag, &mut out)
            }
            Request::Read { count, .. } => {
                let n = (count as usize).min(file.len());
                ninep::put_rread_header(&mut out, tag, n as u32).map(|()| {
                    out.extend_from_slice(&file[..n]);
                })
            }
            Request::Write { data, .. } => Response::Write {
                count: data.len() as u32,
            }
            .encode(tag, &mut out),
            _ => reply.encode(tag, &mut out),
        }
        .unwrap();
        if w.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn client_round_trips(scale: u32) {
    let dir = std::env::temp_dir().join(format!("ninep-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(responder(s));
        }
    });
    let client = Client::connect_unix(&path).await.unwrap();
    client.version(1 << 20, "9P2000.L").await.unwrap();

    for _ in 0..20 * scale {
        client.getattr(1, getattr::BASIC).await.unwrap();
    }
    let mut lat = Vec::with_capacity(200 * scale as usize);
    for _ in 0..200 * scale {
        let t = Instant::now();
        client.getattr(1, getattr::BASIC).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort_unstable();
    println!(
        "client: sequential Tgetattr round trip p50 {:?} p99 {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );

    let tasks = 32;
    let per_task = 50 * scale;
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    c.getattr(1, getattr::BASIC).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let took = start.elapsed();
    println!(
        "client: {tasks} pipelined tasks, {:.0} Tgetattr/s",
        f64::from(tasks * per_task) / took.as_secs_f64()
    );

    let chunk = (1 << 20) - ninep::P9_IOHDRSZ;
    let rounds = 3 * scale;
    let start = Instant::now();
    for i in 0..rounds {
        let data = client
            .read(1, u64::from(i) * u64::from(chunk), chunk)
            .await
            .unwrap();
        assert_eq!(data.len(), chunk as usize);
    }
    let read_rate = f64::from(rounds * chunk) / start.elapsed().as_secs_f64() / f64::from(1 << 20);
    let payload = Bytes::from(vec![0xa5; chunk as usize]);
    let start = Instant::now();
    for i in 0..rounds {
        let n = client
            .write(1, u64::from(i) * u64::from(chunk), payload.clone())
            .await
            .unwrap();
        assert_eq!(n, chunk);
    }
    let write_rate = f64::from(rounds * chunk) / start.elapsed().as_secs_f64() / f64::from(1 << 20);
    println!(
        "client: msize 1 MiB sequential Tread {read_rate:.0} MiB/s, Twrite {write_rate:.0} MiB/s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let scale = if std::env::args().any(|a| a == "--bench") {
        100
    } else {
        println!("smoke run (use cargo bench for figures)");
        1
    };
    codec(scale);
    for (name, rt) in [
        (
            "current_thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "multi_thread(2)",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
    ] {
        println!("runtime {name}:");
        rt.block_on(client_round_trips(scale));
    }
}
