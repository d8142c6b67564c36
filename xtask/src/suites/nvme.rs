//! Suites of the `nvme` area.

use super::Suite;

pub fn suites() -> Vec<Suite> {
    Vec::new()
}
