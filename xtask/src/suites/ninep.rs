//! Suites of the 9P server: the kernel v9fs client and pjdfstest in the guest.

use super::Suite;

pub fn suites() -> Vec<Suite> {
    Vec::new()
}
