//! The budget of address space for mapped sealed data files.
//!
//! The newest data file is always mapped (at `file_size`, so that it never
//! needs a new mapping as it grows). A sealed file is mapped at its length
//! by the first read that finds room in the budget
//! (`Options::sealed_map_bytes`); a read that finds none reads the record
//! with `pread` instead and asks for the least recently read files to be
//! unmapped. Unmapping needs the write lock (a reader may hold a slice of
//! the mapping until it releases the read lock), so it runs when a write
//! lock is next released, or when a reader releasing the read lock finds
//! the write lock free (`Inner::read`'s guard).
//!
//! Invariant: the bytes charged here are the lengths of the sealed files'
//! mappings, and never exceed the budget: a read reserves a file's length
//! before mapping it and gives it back if the mapping fails or another
//! reader mapped the file first.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counters are `usize` (a mapping's size fits one by definition; 32-bit
/// MIPS has no 64-bit atomics).
///
/// Shared by the log (which charges and unmaps) and the database's lock
/// guards (which run the unmapping).
#[derive(Debug)]
pub struct MapBudget {
    /// Bytes of sealed files mapped.
    bytes: AtomicUsize,
    /// The budget.
    max: AtomicUsize,
    /// Counts unmapping rounds: a file read since the last round carries
    /// the current value.
    clock: AtomicUsize,
    /// Reads that found no room and read with `pread`.
    misses: AtomicUsize,
    /// A read found no room: unmap at the next chance.
    evict_due: AtomicBool,
}

impl MapBudget {
    pub fn new(max: u64) -> MapBudget {
        MapBudget {
            bytes: AtomicUsize::new(0),
            max: AtomicUsize::new(clamp(max)),
            clock: AtomicUsize::new(1),
            misses: AtomicUsize::new(0),
            evict_due: AtomicBool::new(false),
        }
    }

    pub fn set_max(&self, max: u64) {
        self.max.store(clamp(max), Ordering::Relaxed);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Bytes of sealed files mapped now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Reads that found no room in the budget.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed) as u64
    }

    pub fn now(&self) -> usize {
        self.clock.load(Ordering::Relaxed)
    }

    /// Charges `len` bytes if they fit; otherwise counts a miss and asks
    /// for an unmapping round.
    pub fn reserve(&self, len: usize) -> bool {
        let before = self.bytes.fetch_add(len, Ordering::AcqRel);
        if before.saturating_add(len) <= self.max() {
            return true;
        }
        self.bytes.fetch_sub(len, Ordering::AcqRel);
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.evict_due.store(true, Ordering::Release);
        false
    }

    /// Gives back `len` charged bytes (an unmapped file).
    pub fn release(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::AcqRel);
    }

    /// True if a read asked for an unmapping round (cheap: checked on every
    /// release of a lock).
    pub fn evict_due(&self) -> bool {
        self.evict_due.load(Ordering::Relaxed)
    }

    /// Starts an unmapping round: clears the request and moves the clock.
    pub fn begin_round(&self) -> bool {
        let due = self.evict_due.swap(false, Ordering::AcqRel);
        if due {
            self.clock.fetch_add(1, Ordering::Relaxed);
        }
        due
    }
}

fn clamp(max: u64) -> usize {
    usize::try_from(max).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_keeps_within_the_budget_and_asks_for_a_round() {
        let b = MapBudget::new(100);
        assert!(b.reserve(60));
        assert!(!b.evict_due());
        assert!(!b.reserve(41));
        assert_eq!(b.bytes(), 60);
        assert_eq!(b.misses(), 1);
        assert!(b.evict_due());
        assert!(b.begin_round());
        assert!(!b.evict_due());
        assert!(!b.begin_round());
        b.release(60);
        assert!(b.reserve(100));
    }
}
