//! A first-fit allocator of page-aligned address ranges: IOVAs under VFIO, pool pages under uio.

use std::collections::BTreeMap;

/// Hands out disjoint, `granule`-aligned ranges of `[base, base + size)` and takes them back,
/// merging neighbours so the space does not fragment into unusable slivers.
#[derive(Debug)]
pub struct RangeAllocator {
    granule: u64,
    /// The managed space `[start, end)`: nothing outside it is ever handed out or taken back.
    start: u64,
    end: u64,
    /// Free ranges: start -> length, never adjacent (adjacent ones are merged).
    free: BTreeMap<u64, u64>,
}

impl RangeAllocator {
    /// Manages `[base, base + size)` in units of `granule` (a power of two; base and size are
    /// rounded inwards to it).
    pub fn new(base: u64, size: u64, granule: u64) -> Self {
        assert!(granule.is_power_of_two());
        let start = base.checked_next_multiple_of(granule).unwrap_or(u64::MAX);
        let end = base.saturating_add(size) & !(granule - 1);
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end - start);
        }
        Self {
            granule,
            start,
            end,
            free,
        }
    }

    /// Allocates `len` bytes (rounded up to the granule), or `None` when no free range fits.
    pub fn alloc(&mut self, len: u64) -> Option<u64> {
        let len = len.max(1).checked_next_multiple_of(self.granule)?;
        let (&start, &free_len) = self.free.iter().find(|&(_, &l)| l >= len)?;
        self.free.remove(&start);
        if free_len > len {
            self.free.insert(start + len, free_len - len);
        }
        Some(start)
    }

    /// Returns a range from [`alloc`](Self::alloc) (same `len`). Returns `false`, changing
    /// nothing, when the range overlaps free space (a double free), is misaligned or lies
    /// outside the managed space (it was never handed out).
    pub fn free(&mut self, start: u64, len: u64) -> bool {
        let Some(len) = len.max(1).checked_next_multiple_of(self.granule) else {
            return false;
        };
        let Some(end) = start.checked_add(len) else {
            return false;
        };
        if start < self.start || end > self.end || !start.is_multiple_of(self.granule) {
            return false;
        }
        let before = self.free.range(..end).next_back().map(|(&s, &l)| (s, l));
        if before.is_some_and(|(s, l)| s + l > start) {
            return false;
        }
        let (mut new_start, mut new_len) = (start, len);
        if let Some((s, l)) = before.filter(|&(s, l)| s + l == start) {
            self.free.remove(&s);
            new_start = s;
            new_len += l;
        }
        if let Some(l) = self.free.remove(&end) {
            new_len += l;
        }
        self.free.insert(new_start, new_len);
        true
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 4096;

    #[test]
    fn allocations_are_aligned_disjoint_and_bounded() {
        let mut a = RangeAllocator::new(0x1_0000, 4 * G, G);
        let x = a.alloc(1).unwrap();
        let y = a.alloc(G + 1).unwrap();
        let z = a.alloc(G).unwrap();
        assert_eq!((x, y, z), (0x1_0000, 0x1_0000 + G, 0x1_0000 + 3 * G));
        assert_eq!(a.alloc(1), None);
        assert_eq!(a.free_bytes(), 0);
    }

    #[test]
    fn freed_ranges_merge_with_both_neighbours() {
        let mut a = RangeAllocator::new(0, 3 * G, G);
        let x = a.alloc(G).unwrap();
        let y = a.alloc(G).unwrap();
        let z = a.alloc(G).unwrap();
        assert!(a.free(x, G));
        assert!(a.free(z, G));
        assert_eq!(
            a.alloc(2 * G),
            None,
            "two separate holes do not make one range"
        );
        assert!(a.free(y, G));
        assert_eq!(a.alloc(3 * G), Some(0));
    }

    #[test]
    fn double_free_is_refused() {
        let mut a = RangeAllocator::new(0, 4 * G, G);
        let x = a.alloc(2 * G).unwrap();
        assert!(a.free(x, 2 * G));
        assert!(!a.free(x, 2 * G));
        assert!(!a.free(x + G, G));
        assert_eq!(a.free_bytes(), 4 * G);
    }

    #[test]
    fn base_and_size_are_rounded_inwards() {
        let mut a = RangeAllocator::new(100, 2 * G, G);
        assert_eq!(a.free_bytes(), G);
        assert_eq!(a.alloc(G), Some(G));
        assert_eq!(RangeAllocator::new(0, G - 1, G).free_bytes(), 0);
    }

    #[test]
    fn oversized_requests_fail_cleanly() {
        let mut a = RangeAllocator::new(0, 4 * G, G);
        assert_eq!(a.alloc(u64::MAX), None);
        assert_eq!(a.alloc(5 * G), None);
        assert!(!a.free(0, u64::MAX));
        assert_eq!(RangeAllocator::new(u64::MAX - G, 4 * G, G).free_bytes(), 0);
    }

    #[test]
    fn ranges_never_handed_out_are_refused() {
        let mut a = RangeAllocator::new(4 * G, 4 * G, G);
        let x = a.alloc(4 * G).unwrap();
        assert!(!a.free(u64::MAX - G + 1, 2 * G), "wraps around");
        assert!(!a.free(0, G), "below the space");
        assert!(!a.free(7 * G, 2 * G), "runs past the end");
        assert!(!a.free(x + 1, G), "misaligned");
        assert_eq!(a.free_bytes(), 0);
        assert_eq!(a.alloc(1), None, "nothing bogus became allocatable");
        assert!(a.free(x, 4 * G));
        assert_eq!(a.free_bytes(), 4 * G);
    }
}
