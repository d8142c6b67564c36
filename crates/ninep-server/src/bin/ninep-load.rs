//! `ninep-load`: a 9P2000.L load generator for comparing servers.
//!
//! Prints one line per measurement, `name value unit`, so scripts can collect them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use ninep::{Client, NOFID, Request, Response};
use ninep_server::busy_poll::BusyPoll;

/// Drive a 9P2000.L server with a fixed workload and print what was measured.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server: `tcp:HOST:PORT` or `unix:PATH`.
    #[arg(long)]
    connect: String,
    /// The export name sent in Tattach (diod wants the exported path).
    #[arg(long, default_value = "")]
    aname: String,
    /// msize asked for in Tversion.
    #[arg(long, default_value_t = 1 << 20)]
    msize: u32,
    /// What to measure.
    #[arg(long, value_enum)]
    test: Test,
    /// Bytes streamed by the read and write tests.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: u64,
    /// Requests kept in flight by the pipelined test.
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Bytes kept in flight by the streaming test (whole msize-sized requests, at least one),
    /// so that servers with different msizes stream with the same window.
    #[arg(long, default_value_t = 4 << 20)]
    window: u64,
    /// Requests issued by the latency and pipelined tests.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Poll the socket for a reply for up to this many microseconds before sleeping (0: off),
    /// as `ninepd --busy-poll` does for requests; costs a spinning CPU while waiting.
    #[arg(long, value_name = "MICROS", default_value_t = 0)]
    busy_poll: u64,
    /// The runtime's worker threads. With `--busy-poll`, one keeps the other from being woken
    /// by every reply the spin takes.
    #[arg(long, value_name = "N", default_value_t = 2)]
    worker_threads: usize,
    /// Write the file once, untimed, before the timed pass, so that the timed writes overwrite
    /// pages the file already has (as fio does) instead of allocating new ones.
    #[arg(long)]
    layout: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Test {
    /// Twrite a file of `--bytes` in msize-sized chunks, then Tread it back (`--window` in flight).
    Stream,
    /// Only the Twrite half of `stream`.
    Write,
    /// Only the Tread half of `stream` (the file is written first, untimed).
    Read,
    /// Sequential Tgetattr round trips: p50 and p99 latency.
    Getattr,
    /// Tgetattr with `--depth` requests in flight: operations per second.
    Pipelined,
}

/// An allocator that keeps freed memory for reuse: the load generator then measures the
/// server rather than page faults of its own.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const O_RDWR: u32 = 2;
const O_TRUNC: u32 = 0o1000;

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads.max(1))
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let client = connect(&args.connect, Duration::from_micros(args.busy_poll)).await?;
    let (msize, _) = client.version(args.msize, "9P2000.L").await?;
    client
        .attach(0, NOFID, b"root", args.aname.as_bytes(), 0)
        .await
        .context("Tattach")?;
    println!("msize {msize} bytes");
    match args.test {
        Test::Stream | Test::Write | Test::Read => stream(&client, msize, &args).await,
        Test::Getattr => latency(&client, args.ops).await,
        Test::Pipelined => pipelined(&client, &args).await,
    }
}

async fn connect(to: &str, busy_poll: Duration) -> Result<Client> {
    if let Some(addr) = to.strip_prefix("tcp:") {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Client::from_split(BusyPoll::new(r, busy_poll), w))
    } else if let Some(path) = to.strip_prefix("unix:") {
        let (r, w) = tokio::net::UnixStream::connect(path).await?.into_split();
        Ok(Client::from_split(BusyPoll::new(r, busy_poll), w))
    } else {
        bail!("--connect wants tcp:HOST:PORT or unix:PATH, not {to}")
    }
}

async fn stream(client: &Client, msize: u32, args: &Args) -> Result<()> {
    let name = format!("ninep-load-{}", std::process::id());
    client.walk(0, 1, &[] as &[&str]).await?;
    let (_, iounit) = client
        .lcreate(1, name.as_bytes(), O_RDWR | O_TRUNC, 0o644, 0)
        .await
        .context("Tlcreate")?;
    // Requests of the server's iounit, as the kernel's v9fs client sends them.
    let most = msize - ninep::P9_IOHDRSZ;
    let chunk = u64::from(if iounit == 0 { most } else { iounit.min(most) });
    println!("request {chunk} bytes");
    let data = Bytes::from(vec![0x5a; chunk as usize]);
    let depth = (args.window / chunk).clamp(1, 64) as usize;

    // Untimed: a file to read back, or one the timed writes then overwrite.
    if args.layout || args.test == Test::Read {
        write_pass(client, &data, depth, args.bytes).await?;
    }
    if args.test != Test::Read {
        mark("writing")?;
        let (start, cpu) = (Instant::now(), own_cpu_seconds());
        write_pass(client, &data, depth, args.bytes).await?;
        report("write", args.bytes, start.elapsed(), cpu);
    }
    if args.test != Test::Write {
        mark("reading")?;
        let (start, cpu) = (Instant::now(), own_cpu_seconds());
        read_pass(client, chunk, depth, args.bytes).await?;
        report("read", args.bytes, start.elapsed(), cpu);
    }
    client.clunk(1).await?;
    // diod 1.0.24 has no Tunlinkat: fall back to Tremove.
    if client.unlinkat(0, name.as_bytes(), 0).await.is_err() {
        client.walk(0, 2, &[name.as_str()]).await?;
        client.remove(2).await?;
    }
    Ok(())
}

/// Twrites `bytes` of `data` at offset 0 onwards, `depth` requests in flight.
async fn write_pass(client: &Client, data: &Bytes, depth: usize, bytes: u64) -> Result<()> {
    let chunk = data.len() as u64;
    let mut offset = 0;
    let mut inflight = std::collections::VecDeque::new();
    while offset < bytes || !inflight.is_empty() {
        while offset < bytes && inflight.len() < depth {
            let n = chunk.min(bytes - offset) as usize;
            let req = Request::Write {
                fid: 1,
                offset,
                data: data.slice(..n),
            };
            inflight.push_back((client.start(&req)?, n));
            offset += n as u64;
        }
        let (pending, n) = inflight.pop_front().expect("one in flight");
        match pending.wait().await? {
            Response::Write { count } if count as usize == n => {}
            other => bail!("Twrite: {other:?}"),
        }
    }
    Ok(())
}

/// Treads `bytes` from offset 0 onwards in `chunk`s, `depth` requests in flight, asking again
/// for whatever a short reply left out.
async fn read_pass(client: &Client, chunk: u64, depth: usize, bytes: u64) -> Result<()> {
    let mut inflight = std::collections::VecDeque::new();
    let (mut offset, mut total) = (0, 0);
    while offset < bytes || !inflight.is_empty() {
        while offset < bytes && inflight.len() < depth {
            let n = chunk.min(bytes - offset) as usize;
            inflight.push_back((start_read(client, offset, n)?, n, offset));
            offset += n as u64;
        }
        let (pending, n, at) = inflight.pop_front().expect("one in flight");
        match pending.wait().await? {
            Response::Read { data } if data.is_empty() => bail!("Tread: end of file at {at}"),
            Response::Read { data } => {
                total += data.len() as u64;
                if data.len() < n {
                    let rest = at + data.len() as u64;
                    let left = n - data.len();
                    inflight.push_back((start_read(client, rest, left)?, left, rest));
                }
            }
            other => bail!("Tread: {other:?}"),
        }
    }
    if total != bytes {
        bail!("read back {total} bytes of {bytes}");
    }
    Ok(())
}

/// Prints a line that lets a script watching the server's CPU time start counting here.
fn mark(phase: &str) -> Result<()> {
    println!("{phase}");
    std::io::Write::flush(&mut std::io::stdout())?;
    Ok(())
}

fn start_read(client: &Client, offset: u64, count: usize) -> Result<ninep::PendingReply> {
    let req = Request::Read {
        fid: 1,
        offset,
        count: count as u32,
    };
    Ok(client.start(&req)?)
}

/// Prints the rate, and this process's CPU time per GiB since `cpu_before` (how much of a
/// CPU the client itself needed: near one CPU per second, the client is the bottleneck).
fn report(what: &str, bytes: u64, took: Duration, cpu_before: Option<f64>) {
    println!("{what} {:.1} MB/s", bytes as f64 / took.as_secs_f64() / 1e6);
    if let (Some(before), Some(after)) = (cpu_before, own_cpu_seconds()) {
        let gib = bytes as f64 / f64::from(1u32 << 30);
        println!(
            "{what}-client-cpu {:.0} ms/GiB",
            (after - before) * 1e3 / gib
        );
    }
}

/// This process's user plus system CPU time (all threads), in seconds.
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the parenthesised command name, utime and stime are the 12th and 13th fields,
    // in USER_HZ (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

async fn latency(client: &Client, ops: usize) -> Result<()> {
    let mut samples = Vec::with_capacity(ops);
    for _ in 0..ops / 10 {
        client.getattr(0, 0x7ff).await?;
    }
    for _ in 0..ops {
        let t = Instant::now();
        client.getattr(0, 0x7ff).await?;
        samples.push(t.elapsed());
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!("getattr-p50 {:.1} us", pick(0.50).as_secs_f64() * 1e6);
    println!("getattr-p99 {:.1} us", pick(0.99).as_secs_f64() * 1e6);
    Ok(())
}

async fn pipelined(client: &Client, args: &Args) -> Result<()> {
    let per_task = args.ops / args.depth.max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.depth.max(1))
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    c.getattr(0, 0x7ff).await?;
                }
                Ok::<_, ninep::ClientError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let took = start.elapsed();
    println!(
        "getattr-pipelined {:.0} ops/s",
        (per_task * args.depth.max(1)) as f64 / took.as_secs_f64()
    );
    Ok(())
}
