//! A node's recent records and its waiting watches. The records the node
//! applied last are kept in a ring (contiguous seqs, bounded by
//! `WATCH_RING_BYTES_MAX`), so a watch near the head is answered from
//! memory; each waiting watch listens on its prefix's event, which a push
//! of records wakes only if one of their keys starts with that prefix.

use super::events::{Builder, Page};
use hypha_engine::{Db, Record};
use smol::lock::{Semaphore, SemaphoreGuard};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most key and value bytes of recent records a node keeps for watches.
pub const WATCH_RING_BYTES_MAX: usize = 4 << 20;

/// Most recent records a node keeps for watches.
pub const WATCH_RING_RECORDS_MAX: usize = 16_384;

/// Most watches reading the log at once (cursors older than the ring): each
/// reads up to `WATCH_SCAN_RECORDS_MAX` records on a blocking thread, so
/// many old cursors at once queue here instead of taking every core.
pub const WATCH_LOG_READERS_MAX: usize = 1;

/// The recent records and the waiting watches of one node.
pub struct Hub {
    state: Mutex<State>,
    log_readers: Semaphore,
    /// `earliest` of the database with `(compactions, earliest)`, so that a
    /// cursor below it is answered without reading the log again.
    earliest: Mutex<Option<(u64, u64)>>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            state: Mutex::default(),
            log_readers: Semaphore::new(WATCH_LOG_READERS_MAX),
            earliest: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Records with seqs `start + 1 ..= start + ring.len()`, in order.
    ring: VecDeque<Record>,
    start: u64,
    bytes: usize,
    /// One event per watched prefix; a watch holds a clone while it waits.
    waiting: HashMap<Vec<u8>, Arc<event_listener::Event>>,
    /// The lengths of the watched prefixes, sorted: a pushed key is looked
    /// up by its prefixes of these lengths only.
    lengths: Vec<usize>,
    /// When prefixes nobody waits on any more were last dropped.
    swept: Option<Instant>,
}

/// How often a push drops the prefixes nobody waits on: every push would
/// visit every watched prefix (10,000 watchers at 1,000 pushes/s are 10
/// million visits/s); a prefix left over meanwhile only costs a lookup.
const SWEEP_MS: u64 = 1_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Records just applied, in seq order: kept, and the watches waiting on
    /// a prefix of one of their keys woken. Records that do not follow the
    /// ring (a snapshot or a cut came between) start it anew.
    pub fn push(&self, records: &[Record]) {
        let mut s = self.lock();
        for r in records {
            let end = s.start + s.ring.len() as u64;
            if r.seq > s.start && r.seq <= end {
                continue; // sent again after a reconnect: held already
            }
            if r.seq != end + 1 {
                s.ring.clear();
                s.bytes = 0;
                s.start = r.seq - 1;
            }
            s.bytes += r.key.len() + r.value.len();
            s.ring.push_back(r.clone());
            while s.bytes > WATCH_RING_BYTES_MAX || s.ring.len() > WATCH_RING_RECORDS_MAX {
                let Some(old) = s.ring.pop_front() else {
                    break;
                };
                s.bytes -= old.key.len() + old.value.len();
                s.start = old.seq;
            }
        }
        let State {
            waiting,
            lengths,
            swept,
            ..
        } = &mut *s;
        if swept.is_none_or(|at| at.elapsed() >= Duration::from_millis(SWEEP_MS)) {
            *swept = Some(Instant::now());
            lengths.clear();
            waiting.retain(|prefix, e| {
                let held = Arc::strong_count(e) > 1;
                if held {
                    lengths.push(prefix.len());
                }
                held
            });
            lengths.sort_unstable();
            lengths.dedup();
        }
        for r in records {
            for &len in lengths.iter().take_while(|&&len| len <= r.key.len()) {
                if let Some(e) = waiting.get(&r.key[..len]) {
                    e.notify(usize::MAX);
                }
            }
        }
    }

    /// Forgets the ring: the database now ends at `seq` (a snapshot was
    /// swapped in, or the log was cut back).
    pub fn reset(&self, seq: u64) {
        let mut s = self.lock();
        s.ring.clear();
        s.bytes = 0;
        s.start = seq;
        *lock(&self.earliest) = None;
    }

    /// A turn to read the log (see [`WATCH_LOG_READERS_MAX`]).
    pub async fn log_reader(&self) -> SemaphoreGuard<'_> {
        self.log_readers.acquire().await
    }

    /// `watch::earliest` of `db`, read from the log once per compaction.
    pub async fn earliest(&self, db: Arc<Db>) -> u64 {
        let compactions = db.stats().compactions;
        if let Some((at, earliest)) = *lock(&self.earliest) {
            if at == compactions {
                return earliest;
            }
        }
        let _reader = self.log_reader().await;
        let (at, earliest) = smol::unblock(move || {
            let at = db.stats().compactions;
            (at, super::earliest(&db))
        })
        .await;
        *lock(&self.earliest) = Some((at, earliest));
        earliest
    }

    /// The event that wakes a watch of `prefix`; listen to it before
    /// reading, so a push in between is not missed.
    pub fn watch(&self, prefix: &[u8]) -> Arc<event_listener::Event> {
        let mut s = self.lock();
        if let Err(at) = s.lengths.binary_search(&prefix.len()) {
            s.lengths.insert(at, prefix.len());
        }
        s.waiting.entry(prefix.to_vec()).or_default().clone()
    }

    /// The page after `after` from the ring, or `None` if the ring does not
    /// reach back to it (read the log instead). A cursor past the ring's end
    /// (this node is behind it) gets an empty page at that cursor.
    pub fn read(&self, prefix: &[u8], values: bool, after: u64) -> Option<Page> {
        let s = self.lock();
        let end = s.start + s.ring.len() as u64;
        if after < s.start || (s.ring.is_empty() && after != s.start) {
            return (after > end).then(|| Page {
                events: Vec::new(),
                upto: after,
            });
        }
        let mut b = Builder::new(prefix, values, after);
        let skip = usize::try_from(after.saturating_sub(s.start)).unwrap_or(usize::MAX);
        for r in s.ring.iter().skip(skip) {
            if !b.push(r) {
                break;
            }
        }
        Some(b.finish())
    }
}
