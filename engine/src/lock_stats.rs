//! How long the write lock is held (the `lock-stats` feature).
//!
//! A hold's wall time includes time the scheduler gave the holder's CPU to
//! another thread, which the engine does not control: on a 2-core machine
//! with a writer, a reader and the checkpoint thread that can be
//! milliseconds. So each hold also counts the holder's involuntary context
//! switches (`getrusage(RUSAGE_THREAD)`): holds with none are what the code
//! itself took, blocking I/O included (that is a voluntary switch); holds
//! with some are reported apart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Holds longer than this are counted ([`HoldStats::own_over`]): the
/// engine's target for its longest hold.
pub const HOLD_TARGET_US: usize = 1000;

/// The longest holds so far, in microseconds.
#[derive(Default)]
pub(crate) struct HoldStats {
    /// Longest hold the scheduler did not interrupt.
    own_max_us: AtomicUsize,
    /// Holds the scheduler did not interrupt that took over
    /// `HOLD_TARGET_US`.
    own_over: AtomicUsize,
    /// Holds the scheduler interrupted, and the longest of them.
    preempted: AtomicUsize,
    preempted_max_us: AtomicUsize,
}

/// One hold being measured.
pub(crate) struct Hold {
    since: Instant,
    switches: i64,
    faults: i64,
    sleeps: i64,
    at: &'static std::panic::Location<'static>,
}

/// The calling thread's involuntary context switches, page faults (minor
/// and major) and voluntary context switches (sleeps) so far.
fn usage() -> (i64, i64, i64) {
    // SAFETY: getrusage writes a `rusage` into the zeroed value it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut u) != 0 {
            return (0, 0, 0);
        }
        (
            u.ru_nivcsw as i64,
            (u.ru_minflt + u.ru_majflt) as i64,
            u.ru_nvcsw as i64,
        )
    }
}

impl Hold {
    #[track_caller]
    pub(crate) fn start(at: &'static std::panic::Location<'static>) -> Hold {
        let (switches, faults, sleeps) = usage();
        Hold {
            since: Instant::now(),
            switches,
            faults,
            sleeps,
            at,
        }
    }
}

impl HoldStats {
    /// Records a hold that ends now.
    pub(crate) fn end(&self, h: &Hold) {
        let us = h.since.elapsed().as_micros().min(usize::MAX as u128) as usize;
        let (switches, faults, sleeps) = usage();
        if switches != h.switches {
            self.preempted.fetch_add(1, Ordering::Relaxed);
            self.preempted_max_us.fetch_max(us, Ordering::Relaxed);
            return;
        }
        if us > HOLD_TARGET_US {
            self.own_over.fetch_add(1, Ordering::Relaxed);
        }
        if self.own_max_us.fetch_max(us, Ordering::Relaxed) < us || us > HOLD_TARGET_US {
            log::debug!(
                "write-lock hold of {us} us (longest so far, or over target), taken at {}, \
                 {} page faults, {} sleeps",
                h.at,
                faults - h.faults,
                sleeps - h.sleeps
            );
        }
    }

    /// The longest hold the scheduler did not interrupt.
    pub(crate) fn own_max_us(&self) -> u64 {
        self.own_max_us.load(Ordering::Relaxed) as u64
    }

    /// Holds the scheduler did not interrupt that took over
    /// [`HOLD_TARGET_US`].
    pub(crate) fn own_over(&self) -> u64 {
        self.own_over.load(Ordering::Relaxed) as u64
    }

    /// Holds the scheduler interrupted and the longest of them.
    pub(crate) fn preempted(&self) -> (u64, u64) {
        (
            self.preempted.load(Ordering::Relaxed) as u64,
            self.preempted_max_us.load(Ordering::Relaxed) as u64,
        )
    }
}
