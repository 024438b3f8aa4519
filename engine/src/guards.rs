//! The guards of the lock on [`Core`]: the write guard (which records how
//! long it was held with the `lock-stats` feature) and the read guard; both
//! run an unmapping round a read asked for when they are released (see
//! `maps`).

use crate::maps::MapBudget;
use crate::state::Core;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The write lock on [`Core`]; with the `lock-stats` feature it records
/// how long it was held (`Inner::write_holds`).
pub(crate) struct WriteGuard<'a> {
    pub(crate) guard: RwLockWriteGuard<'a, Core>,
    #[cfg(feature = "lock-stats")]
    pub(crate) hold: crate::lock_stats::Hold,
    #[cfg(feature = "lock-stats")]
    pub(crate) stats: &'a crate::lock_stats::HoldStats,
}

impl std::ops::Deref for WriteGuard<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.guard
    }
}

impl std::ops::DerefMut for WriteGuard<'_> {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.guard
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // (A load first: a write pays no atomic swap unless a read asked.)
        if self.guard.log.maps.evict_due() {
            self.guard.log.unmap_cold();
        }
        #[cfg(feature = "lock-stats")]
        self.stats.end(&self.hold);
    }
}

/// The read lock on [`Core`] (see [`Inner::read`]).
pub(crate) struct ReadGuard<'a> {
    pub(crate) guard: Option<RwLockReadGuard<'a, Core>>,
    pub(crate) lock: &'a RwLock<Core>,
    pub(crate) maps: &'a MapBudget,
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = Core;
    fn deref(&self) -> &Core {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.guard = None;
        unmap_if_free(self.lock, self.maps);
    }
}

/// An unmapping round a read asked for, if the write lock is free (never
/// waits for it).
pub(crate) fn unmap_if_free(lock: &RwLock<Core>, maps: &MapBudget) {
    if maps.evict_due() {
        if let Ok(mut core) = lock.try_write() {
            core.log.unmap_cold();
        }
    }
}
