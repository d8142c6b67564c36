//! `nvme-tool bench`: fio-style load with one queue pair per thread.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use nvme::{Completion, Controller, DmaMemory, Platform, QueuePair, Request};

/// The access pattern, named as in fio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rw {
    /// Random reads.
    Randread,
    /// Random writes.
    Randwrite,
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Random reads and writes, half each.
    Randrw,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "randread")]
    rw: Rw,
    /// Block size of each I/O (a multiple of the namespace's block size).
    #[arg(long, default_value = "4k", value_parser = crate::size::parse)]
    bs: u64,
    /// I/Os kept in flight per queue.
    #[arg(long, default_value_t = 1)]
    pub iodepth: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    runtime: f64,
    /// Queue pairs, one thread each.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Stamp written blocks, and check that reads of blocks this run has written return the stamp.
    #[arg(long)]
    verify: bool,
    /// After this many microseconds without a completion, sleep briefly between polls so the
    /// CPU is free for others (0: always spin).
    #[arg(long, default_value_t = 0)]
    hybrid_poll_us: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value_t = 1)]
    nsid: u32,
    /// Restrict I/O to the first SIZE bytes of the namespace.
    #[arg(long, value_parser = crate::size::parse)]
    size: Option<u64>,
}

/// What one thread measured.
struct Tally {
    latency_ns: Histogram<u64>,
    ios: u64,
    errors: u64,
    verify_errors: u64,
    /// Reads whose data was checked against the stamp.
    verified: u64,
    first_error: Option<String>,
}

/// One I/O slot of a thread: the buffer waits here between I/Os.
struct Slot<D> {
    buffer: Option<D>,
    started: Instant,
    offset: u64,
    write: bool,
    /// Whether a read must return the stamp: the unit was fully written before it was sent.
    check: bool,
}

/// Which I/O units this run has finished writing, shared by all threads.
struct Written(Vec<AtomicU64>);

impl Written {
    fn new(units: u64, verify: bool) -> Written {
        let words = if verify { units.div_ceil(64) } else { 0 };
        Written((0..words).map(|_| AtomicU64::new(0)).collect())
    }
    fn mark(&self, unit: u64) {
        if let Some(w) = self.0.get((unit / 64) as usize) {
            w.fetch_or(1 << (unit % 64), Ordering::Release);
        }
    }
    fn contains(&self, unit: u64) -> bool {
        self.0
            .get((unit / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (unit % 64)) != 0)
    }
}

/// The stamp of byte `i` of a block at byte offset `at`: any write to a block writes the same.
fn stamp(at: u64, i: usize) -> u8 {
    let x = (at + i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 | 1
}

pub fn run<P: Platform>(ctrl: &Controller<P>, args: &BenchArgs) -> Result<ExitCode> {
    let ns = ctrl
        .namespaces()
        .iter()
        .find(|ns| ns.id == args.nsid)
        .copied()
        .with_context(|| format!("no usable namespace {}", args.nsid))?;
    let bs = args.bs;
    if bs == 0 || !bs.is_multiple_of(ns.block_size() as u64) {
        bail!(
            "--bs {bs} is not a multiple of the {}-byte block",
            ns.block_size()
        );
    }
    if !(args.runtime > 0.0 && args.runtime < 1e6) {
        bail!("--runtime must be a positive number of seconds");
    }
    if args.iodepth == 0 || args.queues == 0 {
        bail!("--iodepth and --queues must be at least 1");
    }
    let buffers = bs
        .saturating_mul(args.iodepth as u64)
        .saturating_mul(args.queues as u64);
    if bs > 16 << 20 || buffers > 1 << 30 {
        bail!("--bs is at most 16 MiB and --bs x --iodepth x --queues at most 1 GiB of buffers");
    }
    let region = args.size.unwrap_or(ns.capacity()).min(ns.capacity());
    let units = region / bs;
    if units < args.queues as u64 {
        bail!("the region of {region} bytes holds fewer than one {bs}-byte I/O per queue");
    }
    let runtime = Duration::from_secs_f64(args.runtime);
    let mut qps = Vec::with_capacity(args.queues);
    for _ in 0..args.queues {
        qps.push(ctrl.queue_pair().context("opening a queue pair")?);
    }
    let depth = args.iodepth.min(qps[0].depth());
    let written = Written::new(units, args.verify);
    let started = Instant::now();
    let tallies: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = qps
            .into_iter()
            .enumerate()
            .map(|(t, qp)| {
                let job = Job {
                    rw: args.rw,
                    bs,
                    nsid: args.nsid,
                    block_shift: ns.block_shift,
                    depth,
                    verify: args.verify,
                    first_unit: units * t as u64 / args.queues as u64,
                    units_per_thread: units / args.queues as u64,
                    units,
                    seed: 0x5eed + t as u64,
                    runtime,
                    hybrid_poll: (args.hybrid_poll_us > 0)
                        .then(|| Duration::from_micros(args.hybrid_poll_us)),
                };
                let written = &written;
                scope.spawn(move || job.run(qp, written))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a bench thread panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut total = Tally::new()?;
    for t in tallies {
        let t = t?;
        total
            .latency_ns
            .add(&t.latency_ns)
            .context("merging histograms")?;
        total.ios += t.ios;
        total.errors += t.errors;
        total.verify_errors += t.verify_errors;
        total.verified += t.verified;
        total.first_error = total.first_error.or(t.first_error);
    }
    report(args, depth, elapsed, &total);
    if total.errors > 0 || total.verify_errors > 0 {
        if let Some(e) = &total.first_error {
            eprintln!("nvme-tool: first error: {e}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn report(args: &BenchArgs, depth: usize, elapsed: f64, t: &Tally) {
    let iops = t.ios as f64 / elapsed;
    let mb_s = iops * args.bs as f64 / 1e6;
    let q = |p: f64| t.latency_ns.value_at_quantile(p) as f64 / 1000.0;
    let (p50, p99, p999) = (q(0.5), q(0.99), q(0.999));
    let mean = t.latency_ns.mean() / 1000.0;
    let rw = format!("{:?}", args.rw).to_lowercase();
    if args.json {
        let doc = serde_json::json!({
            "rw": rw, "bs": args.bs, "iodepth": depth, "queues": args.queues,
            "runtime_s": elapsed, "ios": t.ios, "iops": iops, "mb_s": mb_s,
            "latency_us": { "p50": p50, "p99": p99, "p99_9": p999, "mean": mean,
                            "max": t.latency_ns.max() as f64 / 1000.0 },
            "errors": t.errors, "verified": t.verified, "verify_errors": t.verify_errors,
        });
        println!("{doc}");
        return;
    }
    println!(
        "rw={rw} bs={} iodepth={depth} queues={} runtime={elapsed:.2}s ios={}",
        args.bs, args.queues, t.ios
    );
    println!(
        "{:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "IOPS", "MB/s", "mean µs", "p50 µs", "p99 µs", "p99.9 µs"
    );
    println!("{iops:>12.0} {mb_s:>10.1} {mean:>10.1} {p50:>10.1} {p99:>10.1} {p999:>10.1}");
    if t.errors > 0 || t.verify_errors > 0 {
        println!("errors={} verify_errors={}", t.errors, t.verify_errors);
    }
}

impl Tally {
    fn new() -> Result<Tally> {
        Ok(Tally {
            latency_ns: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .context("creating a histogram")?,
            ios: 0,
            errors: 0,
            verify_errors: 0,
            verified: 0,
            first_error: None,
        })
    }
}

/// One thread's share of the benchmark.
struct Job {
    rw: Rw,
    bs: u64,
    nsid: u32,
    block_shift: u8,
    depth: usize,
    verify: bool,
    first_unit: u64,
    units_per_thread: u64,
    units: u64,
    seed: u64,
    runtime: Duration,
    hybrid_poll: Option<Duration>,
}

impl Job {
    fn run<P: Platform>(&self, mut qp: QueuePair<P>, written: &Written) -> Result<Tally> {
        let mut tally = Tally::new()?;
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut slots: Vec<Slot<P::Dma>> = Vec::with_capacity(self.depth);
        for _ in 0..self.depth {
            slots.push(Slot {
                buffer: Some(qp.alloc_buffer(self.bs as usize)?),
                started: Instant::now(),
                offset: 0,
                write: false,
                check: false,
            });
        }
        let mut stamped = vec![0u8; if self.verify { self.bs as usize } else { 0 }];
        let mut check = stamped.clone();
        let mut next_seq = 0u64;
        let mut done: Vec<Completion<P::Dma>> = Vec::with_capacity(self.depth);
        let mut idle: Vec<usize> = (0..self.depth).rev().collect();
        let deadline = Instant::now() + self.runtime;
        let mut in_flight = 0;
        let mut stopping = false;
        let mut empty_polls = 0u32;
        let mut idle_since = Instant::now();
        let interrupts = qp.interrupt().is_some();
        loop {
            if !stopping {
                while let Some(i) = idle.pop() {
                    let unit = match self.rw {
                        Rw::Read | Rw::Write => {
                            let u = self.first_unit + next_seq % self.units_per_thread;
                            next_seq += 1;
                            u
                        }
                        _ => rng.u64(0..self.units),
                    };
                    let write = match self.rw {
                        Rw::Write | Rw::Randwrite => true,
                        Rw::Randrw => rng.bool(),
                        Rw::Read | Rw::Randread => false,
                    };
                    let slot = &mut slots[i];
                    slot.offset = unit * self.bs;
                    slot.write = write;
                    slot.check = self.verify && !write && written.contains(unit);
                    let Some(buffer) = slot.buffer.take() else {
                        bail!("a buffer was lost");
                    };
                    if write && self.verify {
                        for (j, b) in stamped.iter_mut().enumerate() {
                            *b = stamp(slot.offset, j);
                        }
                        buffer.write(0, &stamped);
                    }
                    let lba = slot.offset >> self.block_shift;
                    let blocks = self.bs >> self.block_shift;
                    let req = if write {
                        Request::write(self.nsid, lba, blocks, buffer, false)
                    } else {
                        Request::read(self.nsid, lba, blocks, buffer)
                    };
                    slot.started = Instant::now();
                    if let Err(rejected) = qp.submit(req.with_tag(i as u64)) {
                        slot.buffer = rejected.request.buffer;
                        idle.push(i);
                        if !matches!(rejected.error, nvme::Error::QueueFull) {
                            return Err(rejected.error.into());
                        }
                        break;
                    }
                    in_flight += 1;
                }
            }
            qp.poll(|c| done.push(c));
            if done.is_empty() {
                // Nothing finished: look at the clock only now and then while spinning.
                empty_polls += 1;
                if interrupts {
                    // Sleeps until the queue's vector fires (bounded, for the deadline).
                    qp.wait_for_completions(Duration::from_millis(10))?;
                } else if let Some(after) = self.hybrid_poll {
                    if empty_polls == 1 {
                        idle_since = Instant::now();
                    } else if empty_polls.is_multiple_of(32) && idle_since.elapsed() > after {
                        std::thread::sleep(Duration::from_micros(10));
                    }
                }
                if (interrupts || empty_polls.is_multiple_of(256))
                    && !stopping
                    && (Instant::now() >= deadline || crate::stop_requested())
                {
                    stopping = true;
                }
                if stopping && in_flight == 0 {
                    return Ok(tally);
                }
                continue;
            }
            empty_polls = 0;
            let now = Instant::now();
            for c in done.drain(..) {
                let i = c.tag as usize;
                let slot = &mut slots[i];
                in_flight -= 1;
                tally.ios += 1;
                let _ = tally
                    .latency_ns
                    .record(now.duration_since(slot.started).as_nanos().max(1) as u64);
                if let Err(e) = &c.result {
                    tally.errors += 1;
                    tally.first_error.get_or_insert_with(|| e.to_string());
                }
                let Some(buffer) = c.buffer else {
                    bail!("the controller died: {:?}", c.result.err());
                };
                if self.verify && slot.write && c.result.is_ok() {
                    written.mark(slot.offset / self.bs);
                }
                if slot.check && c.result.is_ok() {
                    tally.verified += 1;
                    buffer.read(0, &mut check);
                    let good = check
                        .iter()
                        .enumerate()
                        .all(|(j, &b)| b == stamp(slot.offset, j));
                    if !good {
                        tally.verify_errors += 1;
                        tally.first_error.get_or_insert_with(|| {
                            format!("verify failed at byte offset {}", slot.offset)
                        });
                    }
                }
                slot.buffer = Some(buffer);
                idle.push(i);
            }
            if !stopping && (now >= deadline || crate::stop_requested()) {
                stopping = true;
            }
            if stopping && in_flight == 0 {
                return Ok(tally);
            }
        }
    }
}
