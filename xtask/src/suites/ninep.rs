//! Suites of the `ninep` area.

use super::Suite;

pub fn suites() -> Vec<Suite> {
    Vec::new()
}
