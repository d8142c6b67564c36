//! When a polling queue thread sleeps instead of spinning while the controller works.
//!
//! Spinning finds a completion the moment it is posted, which is what queue depth 1 needs. With
//! many commands in flight on a slow controller it buys nothing: the controller stays busy with
//! what it holds whether the completions are reaped now or a little later. And it can cost: on
//! an emulated controller the emulator needs the host CPU the spinning vCPU takes. So once a
//! pass finds nothing, the thread naps when the commands in flight are expected to take at least
//! `threshold` to complete (from the recent time per completion), for a quarter of that time but
//! never longer than `threshold` (so one stall taken for device time cannot stop the queue for
//! long), in `io_uring_enter` on the ublk ring, so a new request still wakes it at once. On a fast
//! device the expected time stays under the threshold and the thread spins as before. The time per
//! completion is measured between completions of one busy period, so a queue that never has two
//! commands in flight at once (queue depth 1) learns nothing and keeps spinning.

use std::time::{Duration, Instant};

/// How much of the estimate each completion keeps (7/8, as TCP's smoothed RTT per sample): a pass
/// that reaps `n` completions keeps `KEEP^n`, so a burst after a stall counts as many samples.
const KEEP: f64 = 7.0 / 8.0;

/// Learns the time per completion of one queue and decides when its thread may nap.
#[derive(Debug)]
pub struct Pacer {
    threshold: Duration,
    /// Smoothed time between completions while the queue is busy (`None` until measured).
    per_completion: Option<Duration>,
    /// When the last completions were reaped, while the queue has stayed busy since.
    last_reap: Option<Instant>,
}

impl Pacer {
    /// A pacer that naps once the work in flight is expected to last `threshold` (zero: never).
    pub fn new(threshold: Duration) -> Self {
        Self {
            threshold,
            per_completion: None,
            last_reap: None,
        }
    }

    /// Whether the pacer ever naps (and so needs the clock).
    pub fn enabled(&self) -> bool {
        !self.threshold.is_zero()
    }

    /// `count` completions were reaped at `now`, the queue having been busy since the last call.
    pub fn reaped(&mut self, count: usize, now: Instant) {
        if count == 0 {
            return;
        }
        if let Some(last) = self.last_reap {
            let count = i32::try_from(count).unwrap_or(i32::MAX);
            let sample = now.saturating_duration_since(last).as_secs_f64() / f64::from(count);
            let estimate = match self.per_completion {
                None => sample,
                Some(old) => {
                    let keep = KEEP.powi(count);
                    old.as_secs_f64() * keep + sample * (1.0 - keep)
                }
            };
            self.per_completion = Some(Duration::from_secs_f64(estimate));
        }
        self.last_reap = Some(now);
    }

    /// The queue has nothing in flight: the time until its next completion says nothing of the
    /// device, so the next busy period starts its own measurement (the estimate is kept).
    pub fn idle(&mut self) {
        self.last_reap = None;
    }

    /// How long to nap after a pass that found nothing to do, with `in_flight` commands at the
    /// controller (`None`: keep spinning).
    pub fn nap(&self, in_flight: usize) -> Option<Duration> {
        if !self.enabled() || in_flight == 0 {
            return None;
        }
        let expected = self
            .per_completion?
            .checked_mul(u32::try_from(in_flight).unwrap_or(u32::MAX))?;
        (expected >= self.threshold).then(|| (expected / 4).min(self.threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICRO: Duration = Duration::from_micros(1);

    /// Whether `nap` is `Some(expected)`, give or take the estimate's rounding.
    fn naps_about(nap: Option<Duration>, expected: Duration) -> bool {
        nap.is_some_and(|nap| nap.abs_diff(expected) < Duration::from_nanos(100))
    }

    /// Feeds `pacer` 64 completions `every` apart from `start`; returns the last one's time.
    fn feed(pacer: &mut Pacer, start: Instant, every: Duration) -> Instant {
        for i in 0..64 {
            pacer.reaped(1, start + every * i);
        }
        start + every * 63
    }

    /// A pacer that has seen completions every `every` while busy.
    fn learned(threshold: Duration, every: Duration) -> Pacer {
        let mut pacer = Pacer::new(threshold);
        feed(&mut pacer, Instant::now(), every);
        pacer
    }

    #[test]
    fn a_slow_deep_queue_naps_for_a_quarter_of_its_expected_work_at_most_the_threshold() {
        let pacer = learned(200 * MICRO, 40 * MICRO);
        // 8 × 40 µs expected.
        assert!(naps_about(pacer.nap(8), 80 * MICRO));
        // 32 × 40 µs expected: a quarter is 320 µs, over the threshold.
        assert!(naps_about(pacer.nap(32), 200 * MICRO));
    }

    #[test]
    fn a_shallow_or_fast_queue_keeps_spinning() {
        // Queue depth 1 on the same slow device: 40 µs of work expected, under the threshold.
        assert_eq!(learned(200 * MICRO, 40 * MICRO).nap(1), None);
        // A fast device at depth 32: 32 × 3 µs.
        assert_eq!(learned(200 * MICRO, 3 * MICRO).nap(32), None);
    }

    #[test]
    fn nothing_in_flight_nothing_measured_or_disabled_never_naps() {
        assert_eq!(learned(200 * MICRO, 40 * MICRO).nap(0), None);
        assert_eq!(Pacer::new(200 * MICRO).nap(32), None);
        let off = learned(Duration::ZERO, 40 * MICRO);
        assert!(!off.enabled());
        assert_eq!(off.nap(32), None);
    }

    #[test]
    fn several_completions_in_one_pass_divide_the_interval() {
        let mut pacer = Pacer::new(200 * MICRO);
        let start = Instant::now();
        pacer.reaped(1, start);
        pacer.reaped(4, start + 160 * MICRO);
        // 40 µs per completion, × 8 in flight = 320 µs expected.
        assert!(naps_about(pacer.nap(8), 80 * MICRO));
    }

    #[test]
    fn an_idle_gap_is_not_taken_for_device_time() {
        let mut pacer = learned(200 * MICRO, 10 * MICRO);
        let later = Instant::now() + Duration::from_secs(5);
        pacer.idle();
        pacer.reaped(1, later);
        pacer.reaped(1, later + 10 * MICRO);
        // Still 10 µs per completion: 32 × 10 µs is over the threshold, 8 × 10 µs is not.
        assert!(naps_about(pacer.nap(32), 80 * MICRO));
        assert_eq!(pacer.nap(8), None);
    }

    #[test]
    fn a_stall_is_forgotten_once_the_burst_behind_it_is_reaped() {
        let mut pacer = Pacer::new(200 * MICRO);
        let last = feed(&mut pacer, Instant::now(), 3 * MICRO);
        assert_eq!(pacer.nap(32), None);
        // The thread was away for 10 ms with commands in flight.
        let back = last + 10_000 * MICRO;
        pacer.reaped(1, back);
        assert!(naps_about(pacer.nap(32), 200 * MICRO));
        // The controller, fast all along, completes 32 commands in 96 µs, twice.
        pacer.reaped(32, back + 96 * MICRO);
        pacer.reaped(32, back + 192 * MICRO);
        assert_eq!(pacer.nap(32), None);
    }

    #[test]
    fn the_estimate_follows_a_slower_device() {
        let mut pacer = Pacer::new(200 * MICRO);
        let last = feed(&mut pacer, Instant::now(), 10 * MICRO);
        assert_eq!(pacer.nap(8), None);
        feed(&mut pacer, last + 50 * MICRO, 50 * MICRO);
        let nap = pacer.nap(8).expect("8 × ~50 µs is over the threshold");
        assert!(nap > 95 * MICRO && nap <= 100 * MICRO, "{nap:?}");
    }
}
