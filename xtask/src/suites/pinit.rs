//! Suites of the `pinit` area.

use super::Suite;

pub fn suites() -> Vec<Suite> {
    Vec::new()
}
