//! Expiry on the master (or a failover group's leader), which owns it: an
//! index of the keys with a deadline, built from the database when the
//! master starts and fed by every TTL write it makes; a task that, at each
//! deadline by this node's clock, writes the key's expiry (`Db::expire_due`:
//! a delete carrying the deadline, only if the key's live version is still
//! the one due), which replicates like any write.
//!
//! The index holds one entry per key (its newest deadline), so its memory
//! is bounded by the keys that have one. A key rewritten without a TTL
//! keeps its entry until that deadline, when `expire_due` finds it no
//! longer due and drops it.

use super::{lock, Master};
use crate::requests::wall_ms;
use hypha_repl::MasterEvent;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest the expiry task sleeps without looking at the clock again (a
/// wall clock that jumps is noticed this fast).
pub const EXPIRY_RECHECK_MS: u64 = 1_000;

/// Most keys one pass expires before it yields (each is one append).
pub const EXPIRY_BATCH_KEYS: usize = 256;

/// The keys with a deadline, soonest first.
#[derive(Default)]
pub(super) struct Expiry {
    index: Mutex<Index>,
    /// Woken when a deadline earlier than the task's next one arrives.
    wake: event_listener::Event,
    /// Expiries written (for `/status` and the log).
    pub(super) expired: AtomicU64,
}

#[derive(Default)]
struct Index {
    by_time: BTreeSet<(u64, Arc<[u8]>)>,
    by_key: HashMap<Arc<[u8]>, u64>,
}

impl Expiry {
    /// `key` expires at `deadline_ms` (its newest TTL write).
    pub(super) fn note(&self, deadline_ms: u64, key: &[u8]) {
        let mut index = lock(&self.index);
        let key: Arc<[u8]> = Arc::from(key);
        if let Some(old) = index.by_key.insert(key.clone(), deadline_ms) {
            index.by_time.remove(&(old, key.clone()));
        }
        let first = index.by_time.first().map(|(d, _)| *d);
        index.by_time.insert((deadline_ms, key));
        drop(index);
        if first.is_none_or(|f| deadline_ms < f) {
            self.wake.notify(1);
        }
    }

    /// Takes the keys due at `now_ms`, at most `max`.
    fn due(&self, now_ms: u64, max: usize) -> Vec<Arc<[u8]>> {
        let mut index = lock(&self.index);
        let mut out = Vec::new();
        while out.len() < max {
            match index.by_time.first() {
                Some((d, _)) if *d <= now_ms => {}
                _ => break,
            }
            let Some((_, key)) = index.by_time.pop_first() else {
                break;
            };
            index.by_key.remove(&key);
            out.push(key);
        }
        out
    }

    fn next(&self) -> Option<u64> {
        lock(&self.index).by_time.first().map(|(d, _)| *d)
    }
}

impl Master {
    /// Expires keys at their deadlines until the future is dropped.
    pub(super) async fn expire_keys(self: Arc<Self>) {
        let db = self.db.clone();
        match smol::unblock(move || db.deadlines()).await {
            Ok(found) => {
                for (deadline_ms, key) in &found {
                    self.expiry.note(*deadline_ms, key);
                }
                if !found.is_empty() {
                    log::info!(
                        "master: {} keys have a deadline; expiring them on time",
                        found.len()
                    );
                }
            }
            Err(e) => log::error!("master: cannot list the keys with a deadline: {e}"),
        }
        loop {
            let woken = self.expiry.wake.listen();
            let now = wall_ms();
            let due = self.expiry.due(now, EXPIRY_BATCH_KEYS);
            if !due.is_empty() {
                self.expire(due, now).await;
                continue;
            }
            let wait = self
                .expiry
                .next()
                .map_or(EXPIRY_RECHECK_MS, |at| at.saturating_sub(now))
                .clamp(1, EXPIRY_RECHECK_MS);
            smol::future::or(
                async {
                    smol::Timer::after(Duration::from_millis(wait)).await;
                },
                woken,
            )
            .await;
        }
    }

    /// Writes the expiries of `keys` (those still due) and has them
    /// replicated and committed like writes.
    async fn expire(&self, keys: Vec<Arc<[u8]>>, now_ms: u64) {
        let (db, open) = (self.db.clone(), self.writes_open.clone());
        let wrote = smol::unblock(move || {
            let open = open.read().unwrap_or_else(|p| p.into_inner());
            let mut seqs = Vec::new();
            for key in keys.iter().filter(|_| *open) {
                match db.expire_due(key, now_ms) {
                    Ok(Some(seq)) => seqs.push(seq),
                    Ok(None) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(seqs)
        })
        .await;
        let seqs = match wrote {
            Ok(seqs) => seqs,
            Err(e) => {
                log::error!("master: expiring keys failed: {e}");
                return;
            }
        };
        let Some(&last) = seqs.last() else {
            return;
        };
        self.expiry
            .expired
            .fetch_add(seqs.len() as u64, Ordering::Relaxed);
        log::debug!("master: expired {} keys (up to seq {last})", seqs.len());
        if self.cfg.group.is_some() {
            self.handle(MasterEvent::Appended { seq: last });
        }
        if self.fsync_always() {
            if let Err(e) = self.committer.durable(&self.db, last).await {
                log::error!("master: expiries up to seq {last} are not durable: {e}");
                return;
            }
        }
        self.handle(MasterEvent::Committed { seq: last });
        self.report_durable(last);
    }
}
