//! Suites of the `ninep` wire-format crate (fuzzing).

use super::Suite;

pub fn suites() -> Vec<Suite> {
    Vec::new()
}
