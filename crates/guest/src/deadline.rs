//! When a guest is given up on: deadlines that follow progress, not only the wall clock.
//!
//! A booting kernel has its boot limit (then the boot is retried). Once `/init` runs, the guest is
//! killed when it goes the stall limit without progress, or at the overall ceiling however much it
//! progresses. After the script's exit status, QEMU has the poweroff grace to exit. Every limit is already
//! multiplied by the run's slowdown.

use std::time::{Duration, Instant};

use crate::console::Stage;

/// The limits of one run, the slowdown included.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// What the builder's durations were multiplied by.
    pub slowdown: f64,
    /// From QEMU's start to `/init`'s first line; then the boot is retried.
    pub boot: Duration,
    /// The longest time without progress once `/init` runs.
    pub stall: Duration,
    /// The longest time from `/init`'s first line to the script's exit status.
    pub ceiling: Duration,
    /// From the exit status to QEMU's exit.
    pub poweroff: Duration,
}

impl Limits {
    /// `boot 20 s, stall 120 s, ceiling 360 s (slowdown ×1.00)`, for logs.
    pub fn describe(&self) -> String {
        format!(
            "boot {:.0?}, stall {:.0?}, ceiling {:.0?} (slowdown ×{:.2})",
            self.boot, self.stall, self.ceiling, self.slowdown
        )
    }
}

/// Which limit a deadline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Boot,
    Stall,
    Ceiling,
    Poweroff,
}

/// The moments the deadlines count from.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub started: Instant,
    /// `/init`'s first line.
    pub init: Option<Instant>,
    /// The last progress (or `/init`'s first line).
    pub progress: Instant,
    /// The script's exit status.
    pub exited: Option<Instant>,
}

impl Clock {
    pub fn new(started: Instant) -> Clock {
        Clock {
            started,
            init: None,
            progress: started,
            exited: None,
        }
    }

    /// Takes note of a console line: the stage it left the guest in, and whether it was progress.
    pub fn saw(&mut self, now: Instant, before: Stage, after: Stage, progressed: bool) {
        if before == Stage::Kernel && after != Stage::Kernel {
            self.init = Some(now);
            self.progress = now;
        }
        if progressed {
            self.progress = now;
        }
        if matches!(after, Stage::Exited(_)) && !matches!(before, Stage::Exited(_)) {
            self.exited = Some(now);
        }
    }

    /// The next deadline in `stage`, and the limit it comes from.
    pub fn deadline(&self, stage: Stage, limits: &Limits) -> (Instant, Limit) {
        match stage {
            Stage::Kernel => (self.started + limits.boot, Limit::Boot),
            Stage::Init | Stage::Script => {
                let init = self.init.unwrap_or(self.started);
                let stall = self.progress + limits.stall;
                let ceiling = init + limits.ceiling;
                if stall < ceiling {
                    (stall, Limit::Stall)
                } else {
                    (ceiling, Limit::Ceiling)
                }
            }
            Stage::Exited(_) => (
                self.exited.unwrap_or(self.started) + limits.poweroff,
                Limit::Poweroff,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn limits() -> Limits {
        Limits {
            slowdown: 1.0,
            boot: S(20),
            stall: S(10),
            ceiling: S(60),
            poweroff: S(15),
        }
    }

    #[test]
    fn progress_moves_the_stall_deadline_until_the_ceiling() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        assert_eq!(
            c.deadline(Stage::Kernel, &limits()),
            (t0 + S(20), Limit::Boot)
        );
        c.saw(t0 + S(3), Stage::Kernel, Stage::Init, true);
        assert_eq!(
            c.deadline(Stage::Init, &limits()),
            (t0 + S(13), Limit::Stall)
        );
        // A line every 8 s keeps it going past any fixed 10 s deadline...
        for k in 1..=6 {
            c.saw(t0 + S(3 + 8 * k), Stage::Script, Stage::Script, true);
        }
        assert_eq!(
            c.deadline(Stage::Script, &limits()),
            (t0 + S(61), Limit::Stall)
        );
        // ...until the ceiling, counted from /init, comes first.
        c.saw(t0 + S(59), Stage::Script, Stage::Script, true);
        assert_eq!(
            c.deadline(Stage::Script, &limits()),
            (t0 + S(63), Limit::Ceiling)
        );
    }

    #[test]
    fn lines_that_are_not_progress_do_not_move_the_deadline() {
        let t0 = Instant::now();
        let mut c = Clock::new(t0);
        c.saw(t0 + S(2), Stage::Kernel, Stage::Init, false);
        c.saw(t0 + S(5), Stage::Script, Stage::Script, false);
        assert_eq!(
            c.deadline(Stage::Script, &limits()),
            (t0 + S(12), Limit::Stall)
        );
        c.saw(t0 + S(7), Stage::Script, Stage::Exited(0), true);
        assert_eq!(
            c.deadline(Stage::Exited(0), &limits()),
            (t0 + S(22), Limit::Poweroff)
        );
    }
}
