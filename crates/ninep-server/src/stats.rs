//! Per-operation counts and latencies, as diod's `dtop` and Ganesha's statistics show them.
//!
//! Each request adds to three relaxed atomics of its message type (count, errors, one latency
//! bucket) and a fourth for the slowest, so the hot path takes no lock and allocates nothing.
//! Latencies go into log-scale buckets (four per power of two of nanoseconds), so a
//! percentile is read to within a sixth of its value. `ninepd` logs [`Stats::report`] on
//! SIGUSR1.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB: usize = 4;
/// Buckets: up to 2^48 ns (about three days); slower requests count in the last one.
const BUCKETS: usize = 48 * SUB;
/// Message types are below 128 and T-messages even: one slot per type / 2.
const SLOTS: usize = 64;

/// Counts and latencies of one request type.
#[derive(Debug)]
struct OpStats {
    count: AtomicU64,
    errors: AtomicU64,
    max_ns: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            count: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The server's counters, one set per request type.
#[derive(Debug)]
pub struct Stats {
    ops: Box<[OpStats]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ops: (0..SLOTS).map(|_| OpStats::default()).collect(),
        }
    }
}

/// What [`Stats::summary`] tells of one request type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSummary {
    /// The request's name (`Tread`).
    pub name: &'static str,
    pub count: u64,
    /// Requests answered with Rlerror.
    pub errors: u64,
    /// Upper bounds of the buckets holding the 50th, 90th and 99th percentiles.
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    /// Records one request of message type `ty` that took `elapsed` and failed or not.
    pub fn record(&self, ty: u8, elapsed: Duration, failed: bool) {
        let Some(op) = self.ops.get(usize::from(ty) / 2) else {
            return;
        };
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        op.count.fetch_add(1, Ordering::Relaxed);
        if failed {
            op.errors.fetch_add(1, Ordering::Relaxed);
        }
        op.buckets[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        op.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Every request type seen so far, in message-number order.
    pub fn summary(&self) -> Vec<OpSummary> {
        let mut out = Vec::new();
        for (slot, op) in self.ops.iter().enumerate() {
            let count = op.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let counts: Vec<u64> = op
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let max = Duration::from_nanos(op.max_ns.load(Ordering::Relaxed));
            // A bucket's bound can exceed the slowest request seen: the slowest is exact.
            let at = |q: f64| percentile(&counts, q).min(max);
            out.push(OpSummary {
                name: ninep::request_name((slot * 2) as u8).unwrap_or("T?"),
                count,
                errors: op.errors.load(Ordering::Relaxed),
                p50: at(0.50),
                p90: at(0.90),
                p99: at(0.99),
                max,
            });
        }
        out
    }

    /// One line per request type: `Tread count=10 errors=0 p50=12us p90=40us p99=90us
    /// max=120us`.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for op in self.summary() {
            let _ = writeln!(
                out,
                "{} count={} errors={} p50={} p90={} p99={} max={}",
                op.name,
                op.count,
                op.errors,
                micros(op.p50),
                micros(op.p90),
                micros(op.p99),
                micros(op.max)
            );
        }
        out
    }
}

/// A duration in whole microseconds, `12us`.
fn micros(d: Duration) -> String {
    format!("{}us", d.as_micros())
}

/// The bucket of a latency of `ns` nanoseconds: its power of two and the next two bits.
fn bucket(ns: u64) -> usize {
    if ns < 2 * SUB as u64 {
        return ns as usize;
    }
    let log = 63 - ns.leading_zeros() as usize;
    let sub = ((ns >> (log - 2)) & (SUB as u64 - 1)) as usize;
    (log * SUB + sub).min(BUCKETS - 1)
}

/// The largest latency bucket `index` holds.
fn bucket_bound(index: usize) -> u64 {
    if index < 2 * SUB {
        return index as u64;
    }
    let (log, sub) = (index / SUB, (index % SUB) as u64);
    let low = (1u64 << log) + (sub << (log - 2));
    low + (1u64 << (log - 2)) - 1
}

/// The bound of the bucket holding quantile `q` of `counts`.
fn percentile(counts: &[u64], q: f64) -> Duration {
    let total: u64 = counts.iter().sum();
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, &n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Duration::from_nanos(bucket_bound(i));
        }
    }
    Duration::ZERO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_falls_in_a_bucket_that_bounds_it_closely() {
        for ns in (0..10_000).chain([1 << 20, (1 << 30) + 12345, 1 << 47]) {
            let b = bucket(ns);
            assert!(bucket_bound(b) >= ns, "{ns} above its bucket's bound");
            assert!(
                b == 0 || bucket_bound(b - 1) < ns,
                "{ns} belongs in an earlier bucket"
            );
            // Within a quarter of the value (four sub-buckets per power of two).
            assert!(bucket_bound(b) - ns <= ns / 4 + 1, "{ns}: bucket too wide");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_and_counts_per_request_type() {
        let stats = Stats::default();
        let tgetattr = ninep::consts::msg::TGETATTR;
        for us in 1..=100 {
            stats.record(tgetattr, Duration::from_micros(us), us > 98);
        }
        stats.record(ninep::consts::msg::TREAD, Duration::from_millis(3), false);
        let summary = stats.summary();
        assert_eq!(summary.len(), 2);
        let getattr = summary.iter().find(|s| s.name == "Tgetattr").unwrap();
        assert_eq!((getattr.count, getattr.errors), (100, 2));
        let near = |d: Duration, us: u64| {
            let us = us as f64;
            (d.as_micros() as f64) >= us && (d.as_micros() as f64) <= us * 1.25
        };
        assert!(near(getattr.p50, 50), "p50 {:?}", getattr.p50);
        assert!(near(getattr.p90, 90), "p90 {:?}", getattr.p90);
        assert!(near(getattr.p99, 99), "p99 {:?}", getattr.p99);
        assert_eq!(getattr.max, Duration::from_micros(100));
        let report = stats.report();
        assert!(
            report.contains("Tread count=1 errors=0 p50=3000us"),
            "{report}"
        );
    }
}
