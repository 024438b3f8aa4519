//! Group commit: concurrent durable writers share one fdatasync.
//!
//! Positions are bytes of `Log::appended`. A writer whose record ends at
//! `upto` returns once `synced >= upto`; one of the waiting writers (the
//! leader) runs the sync for everyone. Invariant: `synced` only grows, and
//! only to a position a completed sync covered, so a write is acknowledged
//! durable only after an fdatasync that began after it was appended.

use crate::error::{Error, Result};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Most fdatasyncs one group-commit leader runs back to back (its own,
/// then ones for writers that appended while it ran) before handing over.
pub const LEAD_ROUNDS_MAX: u32 = 4;

#[derive(Default)]
struct State {
    /// Log position known to be fdatasync'ed.
    synced: u64,
    /// A writer is syncing for everyone.
    leader: bool,
    /// Writers waiting for the leader.
    waiting: usize,
}

/// What group commit needs from the database.
pub trait Syncer {
    /// Ok if writes are accepted; the error to return otherwise.
    fn writable(&self) -> Result<()>;
    /// Makes the log durable up to the position returned (the position as
    /// it was when the sync began).
    fn sync_log(&self) -> Result<u64>;
    /// The log position appended so far.
    fn appended(&self) -> u64;
    /// A sync failed: stop accepting writes.
    fn fail(&self, e: &Error);
}

/// The group-commit state of one database.
pub struct GroupCommit {
    state: Mutex<State>,
    committed: Condvar,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupCommit {
    /// Group commit of a log already durable up to `synced`.
    pub fn new(synced: u64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State {
                synced,
                ..State::default()
            }),
            committed: Condvar::new(),
        }
    }

    /// Returns once the log is durable up to `upto`; one caller syncs for
    /// all who wait.
    ///
    /// A leader whose fdatasync covered its own write goes on with the next
    /// one while others wait for bytes appended meanwhile, at most
    /// [`LEAD_ROUNDS_MAX`] rounds: handing over would leave the disk idle
    /// until a woken writer runs, which on a small machine costs about as
    /// long as the fdatasync itself.
    pub fn commit(&self, upto: u64, db: &dyn Syncer) -> Result<()> {
        let mut st = lock(&self.state);
        loop {
            // Durable before a later fdatasync failed is still durable.
            if st.synced >= upto {
                return Ok(());
            }
            db.writable()?;
            if st.leader {
                st.waiting += 1;
                st = self.committed.wait(st).unwrap_or_else(|p| p.into_inner());
                st.waiting -= 1;
                continue;
            }
            st.leader = true;
            drop(st);
            self.lead(db);
            st = lock(&self.state);
        }
    }

    /// The leader's rounds of syncing.
    fn lead(&self, db: &dyn Syncer) {
        for round in 1.. {
            let result = db.sync_log();
            let appended = db.appended();
            let mut s = lock(&self.state);
            let go_on = match result {
                Ok(end) => {
                    s.synced = s.synced.max(end);
                    round < LEAD_ROUNDS_MAX && s.waiting > 0 && appended > s.synced
                }
                Err(e) => {
                    db.fail(&e);
                    false
                }
            };
            s.leader = go_on;
            // Woken writers find the lock free.
            drop(s);
            self.committed.notify_all();
            if !go_on {
                break;
            }
        }
    }
}
