//! Expiry. A put may carry a deadline (ms since the Unix epoch,
//! `RecordMeta::deadline_ms`); the engine keeps no clock. A master's driver
//! asks [`Db::expire_due`] with its own time, which writes the expiry (a
//! delete carrying the deadline that passed) if the key's live version is
//! still the one due; readers compare [`Db::get_live`]'s deadline with
//! theirs. [`Db::deadlines`] lists what a new master must watch.

use crate::db::Db;
use crate::error::Result;
use crate::record::{RecordKind, RecordMeta, Seq};
use crate::state::{Core, Write};

/// A key's live version with its deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveValue {
    /// The seq that wrote it.
    pub seq: Seq,
    /// The value.
    pub value: Vec<u8>,
    /// When it expires, ms since the Unix epoch; 0: never.
    pub deadline_ms: u64,
}

impl Db {
    /// The live version of `key` and its deadline, or `None` if absent
    /// (whatever the deadline: hiding an expired key is the reader's call).
    pub fn get_live(&self, key: &[u8]) -> Result<Option<LiveValue>> {
        Self::check_key(key)?;
        let core = self.inner.read();
        let Some((_, loc)) = core.find_key(key)? else {
            return Ok(None);
        };
        let r = core.log.record(loc)?;
        Ok(match r.header.kind {
            RecordKind::Put => Some(LiveValue {
                seq: r.header.seq,
                value: r.value().to_vec(),
                deadline_ms: r.header.meta.deadline_ms,
            }),
            RecordKind::Delete => None,
        })
    }

    /// Expires `key` if its live version has a deadline at or before
    /// `now_ms`: appends a delete that carries that deadline (unsynced, as
    /// [`Db::delete_unsynced`]) and returns its seq; `None` when the key is
    /// absent, has no deadline or is not due (a later write moved it).
    pub fn expire_due(&self, key: &[u8], now_ms: u64) -> Result<Option<Seq>> {
        Self::check_key(key)?;
        let expire = |core: &mut Core| -> Result<Option<Seq>> {
            let Some((id, _)) = core.find_key(key)? else {
                return Ok(None);
            };
            let deadline_ms = match core.current(id)? {
                Some((_, h, _)) if h.kind == RecordKind::Put => h.meta.deadline_ms,
                _ => return Ok(None),
            };
            if deadline_ms == 0 || deadline_ms > now_ms {
                return Ok(None);
            }
            let meta = RecordMeta {
                term: core.term,
                deadline_ms,
                ..RecordMeta::default()
            };
            let w = Write {
                id,
                key,
                kind: RecordKind::Delete,
                value: &[],
                seq: None,
                meta: Some(meta),
            };
            core.append(w).map(|(seq, _)| Some(seq))
        };
        self.inner.mutate(key.len(), expire)
    }

    /// Every live key with a deadline, as `(deadline_ms, key)` in seq
    /// order: what a master that starts (or a new leader) must expire.
    pub fn deadlines(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for r in self.snapshot() {
            let r = r?;
            if r.meta.deadline_ms != 0 {
                out.push((r.meta.deadline_ms, r.key));
            }
        }
        Ok(out)
    }
}
