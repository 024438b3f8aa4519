//! An in-memory [`Backend`] for the HTTP tests: a `BTreeMap` of full key
//! histories and one sequence counter. Not for production; the edge's
//! cluster backend replaces it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::backend::{
    Backend, BackendError, Consistency, Entry, History, ScanPage, TxnAnswer, Version, WatchPage,
};

/// Default largest value [`MemBackend`] accepts: 16 MiB.
pub const MEM_VALUE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// In-memory backend used by the HTTP tests. Every version is kept forever.
/// Listings follow the engine's order: each key gets the next id when it is
/// first written, scans go by id, and the cursor is the next id to look at.
#[doc(hidden)]
#[derive(Debug)]
pub struct MemBackend {
    state: Mutex<MemState>,
    value_bytes_max: usize,
}

#[derive(Debug, Default)]
struct MemState {
    /// Sequence number of the newest write; the first write gets 1.
    seq: u64,
    /// Versions per key, oldest first; never empty.
    keys: BTreeMap<Vec<u8>, Vec<Version>>,
    /// Keys by id: `ids[i]` got id `i + 1` when it was first written.
    ids: Vec<Vec<u8>>,
    /// When set, every call fails with this error (fault injection).
    fail: Option<BackendError>,
    /// When set, `get` and `put` of this key panic (a simulated backend bug).
    panic_key: Option<Vec<u8>>,
}

impl Default for MemBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemBackend {
    /// An empty store accepting values up to [`MEM_VALUE_BYTES_MAX`].
    pub fn new() -> Self {
        Self::with_value_bytes_max(MEM_VALUE_BYTES_MAX)
    }

    /// An empty store accepting values up to `value_bytes_max` bytes.
    pub fn with_value_bytes_max(value_bytes_max: usize) -> Self {
        MemBackend {
            state: Mutex::new(MemState::default()),
            value_bytes_max,
        }
    }

    /// Makes every later call fail with `error` (`None` heals the store).
    pub fn fail_with(&self, error: Option<BackendError>) {
        self.lock().fail = error;
    }

    /// Makes `get` and `put` of `key` panic, as a backend bug would (`None` heals).
    pub fn panic_on(&self, key: Option<Vec<u8>>) {
        self.lock().panic_key = key;
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panicking test thread must not hide the store from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self) -> Result<MutexGuard<'_, MemState>, BackendError> {
        let state = self.lock();
        match &state.fail {
            Some(error) => Err(error.clone()),
            None => Ok(state),
        }
    }
}

impl MemState {
    fn panic_if(&self, key: &[u8]) {
        // Fault injection asked for by the test; the guard is released by unwinding.
        assert!(
            self.panic_key.as_deref() != Some(key),
            "MemBackend: injected panic on this key"
        );
    }

    fn live(&self, key: &[u8]) -> Option<Entry> {
        let newest = self.keys.get(key)?.last()?;
        let value = newest.value.clone()?;
        Some(Entry {
            value,
            seq: newest.seq,
        })
    }

    fn push(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        let versions = self.keys.entry(key).or_insert_with_key(|key| {
            self.ids.push(key.clone());
            Vec::new()
        });
        versions.push(Version { seq, value });
        seq
    }

    /// FNV-1a over every live key and value: equal contents give equal digests.
    fn digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (key, versions) in &self.keys {
            let Some(value) = versions.last().and_then(|v| v.value.as_ref()) else {
                continue;
            };
            for part in [key.as_slice(), b"\0", value.as_slice(), b"\0"] {
                for byte in part {
                    hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        hash
    }
}

impl Backend for MemBackend {
    async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<u64, BackendError> {
        if key.is_empty() {
            return Err(BackendError::BadRequest("the key is empty".into()));
        }
        if value.len() > self.value_bytes_max {
            return Err(BackendError::TooLarge(format!(
                "value is {} bytes; the limit is {} (--value-max)",
                value.len(),
                self.value_bytes_max
            )));
        }
        let mut state = self.check()?;
        state.panic_if(&key);
        Ok(state.push(key, Some(value)))
    }

    async fn delete(&self, key: Vec<u8>) -> Result<Option<u64>, BackendError> {
        let mut state = self.check()?;
        if state.live(&key).is_none() {
            return Ok(None);
        }
        Ok(Some(state.push(key, None)))
    }

    async fn put_if(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        expect: hypha_net::Expect,
    ) -> Result<Result<u64, Option<u64>>, BackendError> {
        let mut state = self.check()?;
        let current = state.live(&key).map(|e| e.seq);
        if !holds(expect, current) {
            return Ok(Err(current));
        }
        Ok(Ok(state.push(key, Some(value))))
    }

    async fn delete_if(
        &self,
        key: Vec<u8>,
        expect: hypha_net::Expect,
    ) -> Result<Result<Option<u64>, Option<u64>>, BackendError> {
        let mut state = self.check()?;
        let current = state.live(&key).map(|e| e.seq);
        if !holds(expect, current) {
            return Ok(Err(current));
        }
        Ok(Ok(current.map(|_| state.push(key, None))))
    }

    async fn txn(&self, txn: hypha_net::Txn) -> Result<TxnAnswer, BackendError> {
        let mut state = self.check()?;
        let failed: Vec<u32> = (0..txn.conds.len() as u32)
            .filter(|&i| !cond_holds(&state, &txn.conds[i as usize]))
            .collect();
        if !failed.is_empty() {
            let read = |k: &Vec<u8>| state.live(k).map(|e| (e.seq, e.value));
            let reads = txn.reads.iter().map(read).collect();
            let seq = state.seq;
            return Ok(TxnAnswer::Failed { seq, failed, reads });
        }
        for op in txn.ops {
            match op {
                // No clock here: the in-memory backend keeps keys for good.
                hypha_net::TxnOp::Put { key, value, .. } => {
                    state.push(key, Some(value));
                }
                hypha_net::TxnOp::Refresh { key, .. } => {
                    if let Some(live) = state.live(&key) {
                        state.push(key, Some(live.value));
                    }
                }
                hypha_net::TxnOp::Delete { key } if state.live(&key).is_some() => {
                    state.push(key, None);
                }
                hypha_net::TxnOp::Delete { .. } => {}
            }
        }
        Ok(TxnAnswer::Applied { seq: state.seq })
    }

    async fn watch(
        &self,
        prefix: Vec<u8>,
        after: Option<u64>,
        values: bool,
        wait_ms: u32,
    ) -> Result<WatchPage, BackendError> {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(wait_ms.into());
        let after = match after {
            Some(after) => after,
            None => self.check()?.seq,
        };
        loop {
            let page = self.check()?.events(&prefix, after, values);
            if !page.events.is_empty() || std::time::Instant::now() >= until {
                return Ok(page);
            }
            // A test backend: it polls.
            smol::Timer::after(std::time::Duration::from_millis(5)).await;
        }
    }

    async fn get(&self, key: Vec<u8>, _c: Consistency) -> Result<Option<Entry>, BackendError> {
        let state = self.check()?;
        state.panic_if(&key);
        Ok(state.live(&key))
    }

    async fn get_at(
        &self,
        key: Vec<u8>,
        _c: Consistency,
    ) -> Result<(Option<Entry>, u64), BackendError> {
        let state = self.check()?;
        state.panic_if(&key);
        Ok((state.live(&key), state.seq))
    }

    async fn history(
        &self,
        key: Vec<u8>,
        depth: u32,
        _c: Consistency,
    ) -> Result<History, BackendError> {
        let state = self.check()?;
        let Some(versions) = state.keys.get(&key) else {
            return Ok(History::default());
        };
        let depth = usize::try_from(depth).unwrap_or(usize::MAX);
        let mut versions: Vec<Version> = versions.iter().rev().take(depth).cloned().collect();
        // The same cut as a node's answer on the wire.
        let sizes = versions
            .iter()
            .map(|v| v.value.as_ref().map_or(0, Vec::len));
        let fit = hypha_net::batch_prefix_len(sizes, versions.len());
        let omitted = u32::try_from(versions.len() - fit).unwrap_or(u32::MAX);
        versions.truncate(fit);
        Ok(History {
            versions,
            omitted,
            applied_seq: state.seq,
        })
    }

    async fn scan(
        &self,
        cursor: u64,
        prefix: Vec<u8>,
        limit: u32,
        _c: Consistency,
    ) -> Result<ScanPage, BackendError> {
        let state = self.check()?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut id = cursor.max(1);
        let mut keys = Vec::new();
        while keys.len() < limit {
            let Some(key) = usize::try_from(id - 1).ok().and_then(|i| state.ids.get(i)) else {
                break;
            };
            let live = state
                .keys
                .get(key)
                .and_then(|versions| versions.last())
                .is_some_and(|newest| newest.value.is_some());
            if live && key.starts_with(&prefix) {
                keys.push(key.clone());
            }
            id += 1;
        }
        let next_cursor = (id <= state.ids.len() as u64).then_some(id);
        Ok(ScanPage {
            keys,
            next_cursor,
            applied_seq: state.seq,
        })
    }

    async fn digest(&self) -> Result<serde_json::Value, BackendError> {
        let state = self.check()?;
        Ok(serde_json::json!({
            "master": {"addr": "mem", "digest": format!("{:016x}", state.digest()), "seq": state.seq},
            "workers": [],
        }))
    }

    async fn status(&self) -> serde_json::Value {
        let state = self.lock();
        serde_json::json!({"role": "mem", "keys": state.keys.len(), "seq": state.seq})
    }

    fn metrics(&self, out: &mut String) {
        let state = self.lock();
        out.push_str("# HELP hypha_mem_seq Sequence number of the newest write.\n");
        out.push_str("# TYPE hypha_mem_seq gauge\n");
        out.push_str(&format!("hypha_mem_seq {}\n", state.seq));
    }

    fn value_bytes_max(&self) -> usize {
        self.value_bytes_max
    }
}

/// Whether a key whose live seq is `current` is as `expect` says.
impl MemState {
    /// Every version under `prefix` after `after`, one event each.
    fn events(&self, prefix: &[u8], after: u64, values: bool) -> WatchPage {
        let mut events: Vec<hypha_net::WatchEvent> = Vec::new();
        for (key, versions) in self.keys.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            for v in versions.iter().filter(|v| v.seq > after) {
                let kind = match v.value {
                    Some(_) => hypha_net::ChangeKind::Put,
                    None => hypha_net::ChangeKind::Delete,
                };
                let value = v.value.clone().filter(|_| values);
                let change = hypha_net::Change {
                    kind,
                    key: key.clone(),
                    value,
                };
                events.push(hypha_net::WatchEvent {
                    seq: v.seq,
                    changes: vec![change],
                });
            }
        }
        events.sort_by_key(|e| e.seq);
        WatchPage {
            upto: self.seq.max(after),
            events,
        }
    }
}

fn cond_holds(state: &MemState, cond: &hypha_net::TxnCond) -> bool {
    let live = state.live(&cond.key);
    match &cond.test {
        hypha_net::TxnTest::Expect(e) => holds(*e, live.map(|e| e.seq)),
        hypha_net::TxnTest::Value(v) => live.is_some_and(|e| e.value == *v),
    }
}

fn holds(expect: hypha_net::Expect, current: Option<u64>) -> bool {
    match expect {
        hypha_net::Expect::Seq(seq) => current == Some(seq),
        hypha_net::Expect::Absent => current.is_none(),
        hypha_net::Expect::Present => current.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_hides_key_but_keeps_history_newest_first() {
        smol::block_on(async {
            let mem = MemBackend::new();
            let c = Consistency::default();
            assert_eq!(mem.put(b"k".to_vec(), b"v1".to_vec()).await, Ok(1));
            assert_eq!(mem.put(b"k".to_vec(), b"v2".to_vec()).await, Ok(2));
            assert_eq!(mem.delete(b"k".to_vec()).await, Ok(Some(3)));
            assert_eq!(mem.delete(b"k".to_vec()).await, Ok(None));
            assert_eq!(mem.get(b"k".to_vec(), c).await, Ok(None));
            let history = mem.history(b"k".to_vec(), 2, c).await;
            let seqs: Vec<u64> = history
                .iter()
                .flat_map(|h| &h.versions)
                .map(|v| v.seq)
                .collect();
            assert_eq!(seqs, [3, 2]);
        });
    }

    #[test]
    fn scan_pages_through_live_prefixed_keys() {
        smol::block_on(async {
            let mem = MemBackend::new();
            let c = Consistency::default();
            for key in ["a", "b1", "b2", "b3", "c"] {
                mem.put(key.into(), b"v".to_vec()).await.ok();
            }
            mem.delete(b"b2".to_vec()).await.ok();
            let first = mem.scan(0, b"b".to_vec(), 1, c).await;
            assert_eq!(
                first.map(|p| (p.keys, p.next_cursor)),
                Ok((vec![b"b1".to_vec()], Some(3)))
            );
            // A key written during the scan comes at its end.
            mem.put(b"b0".to_vec(), b"v".to_vec()).await.ok();
            let next = mem.scan(3, b"b".to_vec(), 1, c).await;
            assert_eq!(
                next.map(|p| (p.keys, p.next_cursor)),
                Ok((vec![b"b3".to_vec()], Some(5)))
            );
            let last = mem.scan(5, b"b".to_vec(), 5, c).await;
            assert_eq!(
                last.map(|p| (p.keys, p.next_cursor)),
                Ok((vec![b"b0".to_vec()], None))
            );
        });
    }
}
