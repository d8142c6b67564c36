//! How much slower than a quiet machine guests run right now, measured once per run.
//!
//! Under TCG every guest instruction is host CPU work, so a loaded host stretches everything a guest does.
//! The harness boots the empty guest once (QEMU start to exit, script `true`) and divides by the same
//! boot on a quiet machine: the quotient, the slowdown, scales every limit of the run. `cargo xtask test`
//! measures it before the first suite and hands it to every test process in `$GUEST_SLOWDOWN`; a test
//! process started on its own measures it at its first guest.

use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::vm::Vm;

/// The empty guest's boot, QEMU start to exit, on a quiet machine: 6.12 under multi-threaded TCG, 2
/// vCPUs, the base initramfs (busybox and the modules), best of several boots with nothing else running.
pub const REFERENCE_BOOT: Duration = Duration::from_millis(3200);

/// Slowdowns are clamped to this range: a machine is never counted faster than the reference (the limits
/// are meant for a quiet machine already), and a factor beyond the top says that something is broken
/// rather than slow.
pub const MIN_SLOWDOWN: f64 = 1.0;
pub const MAX_SLOWDOWN: f64 = 8.0;

/// The slowdown the calibration boot's own limits assume.
const CALIBRATION_LIMITS: f64 = 4.0;

/// The environment variable that passes a measured slowdown to child processes.
pub const SLOWDOWN_ENV: &str = "GUEST_SLOWDOWN";

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// The empty guest's boot as measured now (QEMU start to exit).
    pub boot: Duration,
    /// The same on a quiet machine ([`REFERENCE_BOOT`]).
    pub reference: Duration,
    /// `boot / reference`, clamped to [`MIN_SLOWDOWN`]..=[`MAX_SLOWDOWN`]: what the run's limits are
    /// multiplied by.
    pub slowdown: f64,
}

impl Calibration {
    /// The calibration for an empty-guest boot that took `boot`.
    pub fn from_boot(boot: Duration) -> Calibration {
        Calibration {
            boot,
            reference: REFERENCE_BOOT,
            slowdown: clamp(boot.as_secs_f64() / REFERENCE_BOOT.as_secs_f64()),
        }
    }

    /// `the empty guest booted in 4.1 s (quiet machine: 3.2 s): limits ×1.28`.
    pub fn describe(&self) -> String {
        format!(
            "the empty guest booted in {:.1} s (quiet machine: {:.1} s): guest limits ×{:.2}",
            self.boot.as_secs_f64(),
            self.reference.as_secs_f64(),
            self.slowdown
        )
    }
}

fn clamp(factor: f64) -> f64 {
    if factor.is_nan() {
        MIN_SLOWDOWN
    } else {
        factor.clamp(MIN_SLOWDOWN, MAX_SLOWDOWN)
    }
}

/// Boots the empty guest once and measures the machine's slowdown now.
pub fn calibrate() -> Result<Calibration> {
    let out = Vm::builder()
        .name("calibration")
        // Limits for a slow machine: this boot is what finds out how slow it is.
        .slowdown(CALIBRATION_LIMITS)
        .run("true")?;
    if !out.success() {
        return Err(Error::Invalid(format!(
            "the calibration guest failed: {}",
            out.log_tail()
        )));
    }
    Ok(Calibration::from_boot(out.elapsed))
}

/// The process's slowdown: `$GUEST_SLOWDOWN` if set, else measured by [`calibrate`] at the first call
/// (and kept for the rest of the process).
pub fn slowdown() -> Result<f64> {
    static MEASURED: Mutex<Option<f64>> = Mutex::new(None);
    if let Some(factor) = from_env()? {
        return Ok(factor);
    }
    // Held while measuring, so that parallel tests measure once.
    let mut measured = MEASURED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(factor) = *measured {
        return Ok(factor);
    }
    let calibration = calibrate()?;
    crate::paths::tell(&calibration.describe());
    *measured = Some(calibration.slowdown);
    Ok(calibration.slowdown)
}

/// `$GUEST_SLOWDOWN`, checked.
fn from_env() -> Result<Option<f64>> {
    let Some(raw) = std::env::var_os(SLOWDOWN_ENV) else {
        return Ok(None);
    };
    parse(&raw.to_string_lossy()).map(Some)
}

fn parse(raw: &str) -> Result<f64> {
    match raw.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 => Ok(clamp(f)),
        _ => Err(Error::Invalid(format!(
            "{SLOWDOWN_ENV}={raw:?}: expected a positive number such as 1.5"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slowdown_is_the_boot_against_the_reference_clamped() {
        let twice = Calibration::from_boot(REFERENCE_BOOT * 2);
        assert!((twice.slowdown - 2.0).abs() < 1e-9, "{twice:?}");
        assert!(twice.describe().contains("×2.00"), "{}", twice.describe());
        assert_eq!(
            Calibration::from_boot(REFERENCE_BOOT / 2).slowdown,
            MIN_SLOWDOWN
        );
        assert_eq!(
            Calibration::from_boot(REFERENCE_BOOT * 100).slowdown,
            MAX_SLOWDOWN
        );
    }

    #[test]
    fn the_environment_value_is_checked() {
        assert_eq!(parse("1.5").unwrap(), 1.5);
        assert_eq!(parse(" 0.5 ").unwrap(), MIN_SLOWDOWN);
        assert_eq!(parse("1e9").unwrap(), MAX_SLOWDOWN);
        for bad in ["", "x", "-2", "0", "NaN", "inf"] {
            assert!(matches!(parse(bad), Err(Error::Invalid(_))), "{bad:?}");
        }
    }
}
