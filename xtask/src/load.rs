//! The machine's load during a test run: sampled in the background, summed up at the end, so that a
//! slow or failed run on a busy machine says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the load average is read.
const EVERY: Duration = Duration::from_secs(5);

/// Samples `/proc/loadavg` until stopped.
#[derive(Debug)]
pub struct LoadMonitor {
    samples: Arc<Mutex<Vec<f64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LoadMonitor {
    pub fn start() -> LoadMonitor {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(load) = read_loadavg() {
                        samples.lock().unwrap_or_else(|e| e.into_inner()).push(load);
                    }
                    // Short naps, so that stopping is quick.
                    for _ in 0..EVERY.as_millis() / 100 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        LoadMonitor {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The samples taken since the last call (a suite's share of the run).
    pub fn take(&self) -> Vec<f64> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for LoadMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The 1-minute load average.
fn read_loadavg() -> Option<f64> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What a set of 1-minute load samples says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSummary {
    pub samples: usize,
    pub median: f64,
    pub max: f64,
    /// The share of samples above the core count.
    pub above_share: f64,
}

impl LoadSummary {
    pub fn of(samples: &[f64], cores: usize) -> Option<LoadSummary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let above = samples.iter().filter(|&&l| l > cores as f64).count();
        Some(LoadSummary {
            samples: samples.len(),
            median: sorted[sorted.len() / 2],
            max: sorted[sorted.len() - 1],
            above_share: above as f64 / samples.len() as f64,
        })
    }

    /// The load stayed above the core count: over half the samples were.
    pub fn overloaded(&self) -> bool {
        self.above_share > 0.5
    }

    /// The warning printed after the summary when [`overloaded`](Self::overloaded).
    pub fn warning(&self, cores: usize) -> String {
        format!(
            "xtask: warning: the load average stayed above this machine's {cores} cores during the run \
             (1-minute load: median {:.1}, max {:.1}, above {cores} in {:.0}% of {} samples): other work \
             shared the CPUs, so the times above are stretched and guest tests ran closer to their limits",
            self.median,
            self.max,
            self.above_share * 100.0,
            self.samples
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_is_read_from_its_first_field() {
        assert_eq!(parse_loadavg("6.52 4.10 2.00 3/412 9911\n"), Some(6.52));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("x 1 2"), None);
        assert!(read_loadavg().is_some(), "/proc/loadavg is readable");
    }

    #[test]
    fn overloaded_means_above_the_cores_most_of_the_time() {
        let busy = LoadSummary::of(&[1.0, 5.0, 6.0, 7.5, 3.0], 2).unwrap();
        assert!(busy.overloaded());
        assert_eq!((busy.median, busy.max), (5.0, 7.5));
        let warning = busy.warning(2);
        assert!(
            warning.contains("median 5.0, max 7.5, above 2 in 80% of 5 samples"),
            "{warning}"
        );
        let spike = LoadSummary::of(&[0.5, 0.7, 9.0, 0.4], 2).unwrap();
        assert!(!spike.overloaded(), "one spike is not a busy run");
        assert_eq!(LoadSummary::of(&[], 2), None);
    }

    #[test]
    fn the_monitor_samples_at_once_and_stops_quickly() {
        let monitor = LoadMonitor::start();
        std::thread::sleep(Duration::from_millis(300));
        let first = monitor.take();
        assert_eq!(first.len(), 1, "{first:?}");
        assert!(monitor.take().is_empty());
        let started = std::time::Instant::now();
        drop(monitor);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
