//! The key API: binary keys bound to ids through the key index.
//!
//! A key is bound to one id for good (its records carry the key); only after
//! compaction dropped a deleted key's tombstone can a later put bind it to a
//! new id (see `Core::find_key`). Every mutation gets the next seq; `apply`
//! replays another database's record with its own seq, id and key, and
//! refuses one that contradicts the bindings here (`Error::Diverged`).

use crate::db::Db;
use crate::error::{Error, Result};
use crate::hash::key_hash;
use crate::log_iter::walk_history;
use crate::record::{Record, RecordKind, RecordMeta, Seq};
use crate::request::{repeat_of, unmet, How, Once, Request};
use crate::state::{Core, Write};
use crate::stats::{ScanPage, Version};

/// Most ids one `scan` call examines; a page may hold fewer keys than asked
/// and still have a next cursor.
pub const SCAN_IDS_PER_CALL_MAX: u64 = 1 << 16;

/// A put written now (`(seq, end of the record)`), or the outcome of a
/// request that must not be written again.
type Appended = std::result::Result<(Seq, u64), Once>;

/// A delete written now (`None`: the key was absent), or the outcome of a
/// request that must not be written again.
type Deleted = std::result::Result<Option<(Seq, u64)>, Once>;

/// The fields of a record written for `req`: this node's term and the id.
fn request_meta(core: &Core, req: Option<&Request>) -> Option<RecordMeta> {
    req.map(|r| RecordMeta {
        term: core.term,
        request_id: r.id,
        ..RecordMeta::default()
    })
}

impl Db {
    /// Stores `value` under `key`; returns the write's seq.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        let (seq, end) = self.put_at(key, value, true)?.ok_or(Error::WouldBlock)?;
        self.inner.durable(end)?;
        Ok(seq)
    }

    /// Stores `value` under `key` like [`Db::put`], but returns without
    /// waiting for an fdatasync, whatever the fsync mode: the write is
    /// durable once a [`Db::sync`] called after this returned has returned.
    /// Readers see it at once (as they see a `put` waiting for its
    /// fdatasync). For a server that receives many writes on one thread:
    /// it appends them all, makes them durable with one `sync` on another
    /// thread, and answers them together.
    pub fn put_unsynced(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        Ok(self.put_at(key, value, true)?.ok_or(Error::WouldBlock)?.0)
    }

    /// [`Db::put_unsynced`] that never waits for slow work: `Ok(None)` when
    /// the write would first wait for the key index to grow or for the last
    /// rollover's fsyncs (then nothing was written; retry with
    /// `put_unsynced` on a thread that may block). An executor thread calls
    /// this, so no task stalls behind a table rebuild or an fdatasync.
    pub fn try_put_unsynced(&self, key: &[u8], value: &[u8]) -> Result<Option<Seq>> {
        Ok(self.put_at(key, value, false)?.map(|(seq, _)| seq))
    }

    /// Appends a put: `(seq, end of the record)`, or `None` when `wait` is
    /// false and the write would have to wait.
    fn put_at(&self, key: &[u8], value: &[u8], wait: bool) -> Result<Option<(Seq, u64)>> {
        Ok(self
            .put_as(key, value, How::default(), wait)?
            .map(|done| done.unwrap_or_else(|_| unreachable!("only a request can be a repeat"))))
    }

    /// [`Db::put_once`] and its kin.
    pub(crate) fn put_request(
        &self,
        key: &[u8],
        value: &[u8],
        how: How<'_>,
        wait: bool,
    ) -> Result<Option<Once>> {
        let done = self.put_as(key, value, how, wait)?;
        Ok(done.map(|d| d.map_or_else(|once| once, |(seq, _)| Once::Wrote(Some(seq)))))
    }

    /// Appends a put unless it repeats an earlier attempt of its request
    /// or its key is not as expected (`Err(outcome)`); `None` when `wait`
    /// is false and it would wait.
    fn put_as(
        &self,
        key: &[u8],
        value: &[u8],
        how: How<'_>,
        wait: bool,
    ) -> Result<Option<Appended>> {
        let req = how.req;
        Self::check_key(key)?;
        self.check_value(value)?;
        let ids_max = self.inner.opts.ids_max;
        loop {
            let append = |core: &mut Core| {
                if let Some(once) = repeat_of(core, req) {
                    return Ok(Some(Err(once)));
                }
                if let Some(conflict) = unmet(core, key, how.expect)? {
                    return Ok(Some(Err(conflict)));
                }
                let id = match core.find_key(key)? {
                    Some((id, _)) => id,
                    // A new key waits for the key index to grow, outside
                    // the lock (`Inner::grow_index`).
                    None if core.keys.needs_grow() => return Ok(None),
                    None => core.new_key_id(key, ids_max)?,
                };
                core.append(Write {
                    id,
                    key,
                    kind: RecordKind::Put,
                    value,
                    seq: None,
                    meta: request_meta(core, req),
                })
                .map(|w| Some(Ok(w)))
            };
            let bytes = key.len() + value.len();
            let done = if wait {
                self.inner.mutate(bytes, append)?
            } else {
                self.inner.try_mutate(bytes, append)?.flatten()
            };
            match done {
                Some(written) => return Ok(Some(written)),
                None if wait => self.inner.grow_index()?,
                None => return Ok(None),
            }
        }
    }

    /// The value of `key`, or `None`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_versioned(key)?.map(|(_, v)| v))
    }

    /// The value of `key` with the seq of the write that stored it.
    pub fn get_versioned(&self, key: &[u8]) -> Result<Option<(Seq, Vec<u8>)>> {
        Ok(self.get_live(key)?.map(|l| (l.seq, l.value)))
    }

    /// True if `key` holds a value.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Self::check_key(key)?;
        let core = self.inner.read();
        let Some((id, _)) = core.find_key(key)? else {
            return Ok(false);
        };
        Ok(matches!(core.current(id)?, Some((_, h, _)) if h.kind == RecordKind::Put))
    }

    /// Deletes `key`; returns the delete's seq, or `None` if it was absent
    /// (then nothing is written).
    pub fn delete(&self, key: &[u8]) -> Result<Option<Seq>> {
        match self.delete_at(key, true)?.ok_or(Error::WouldBlock)? {
            Some((seq, end)) => {
                self.inner.durable(end)?;
                Ok(Some(seq))
            }
            None => Ok(None),
        }
    }

    /// [`Db::delete`] without waiting for an fdatasync (see
    /// [`Db::put_unsynced`]).
    pub fn delete_unsynced(&self, key: &[u8]) -> Result<Option<Seq>> {
        let done = self.delete_at(key, true)?.ok_or(Error::WouldBlock)?;
        Ok(done.map(|(seq, _)| seq))
    }

    /// [`Db::delete_unsynced`] that never waits for slow work (see
    /// [`Db::try_put_unsynced`]): the outer `None` means retry on a thread
    /// that may block.
    pub fn try_delete_unsynced(&self, key: &[u8]) -> Result<Option<Option<Seq>>> {
        let done = self.delete_at(key, false)?;
        Ok(done.map(|d| d.map(|(seq, _)| seq)))
    }

    /// Appends a delete: the outer `None` when `wait` is false and it would
    /// have to wait, the inner `None` when the key was absent.
    fn delete_at(&self, key: &[u8], wait: bool) -> Result<Option<Option<(Seq, u64)>>> {
        let done = self.delete_as(key, How::default(), wait)?;
        Ok(done.map(|d| d.unwrap_or_else(|_| unreachable!("only a request can be a repeat"))))
    }

    /// [`Db::delete_once`] and its kin.
    pub(crate) fn delete_request(
        &self,
        key: &[u8],
        how: How<'_>,
        wait: bool,
    ) -> Result<Option<Once>> {
        let done = self.delete_as(key, how, wait)?;
        Ok(done.map(|d| d.map_or_else(|once| once, |w| Once::Wrote(w.map(|(seq, _)| seq)))))
    }

    /// Appends a delete unless it repeats an earlier attempt of its
    /// request or its key is not as expected.
    fn delete_as(&self, key: &[u8], how: How<'_>, wait: bool) -> Result<Option<Deleted>> {
        Self::check_key(key)?;
        let req = how.req;
        let append = |core: &mut Core| {
            if let Some(once) = repeat_of(core, req) {
                return Ok(Err(once));
            }
            if let Some(conflict) = unmet(core, key, how.expect)? {
                return Ok(Err(conflict));
            }
            let Some((id, _)) = core.find_key(key)? else {
                return Ok(Ok(None));
            };
            if !matches!(core.current(id)?, Some((_, h, _)) if h.kind == RecordKind::Put) {
                return Ok(Ok(None));
            }
            core.append(Write {
                id,
                key,
                kind: RecordKind::Delete,
                value: &[],
                seq: None,
                meta: request_meta(core, req),
            })
            .map(|w| Ok(Some(w)))
        };
        if wait {
            self.inner.mutate(key.len(), append).map(Some)
        } else {
            self.inner.try_mutate(key.len(), append)
        }
    }

    /// Up to `depth` versions of `key`, newest first (deletes included).
    pub fn history(&self, key: &[u8], depth: usize) -> Result<Vec<Version>> {
        Self::check_key(key)?;
        let core = self.inner.read();
        match core.find_key(key)? {
            Some((id, loc)) => walk_history(&core, id, loc, depth),
            None => Ok(Vec::new()),
        }
    }

    /// Up to `limit` live keys starting with `prefix`, from `cursor` (0 for
    /// the start) on. Order is by id: stable, and keys written after the scan
    /// started appear at its end.
    pub fn scan(&self, cursor: u64, prefix: &[u8], limit: usize) -> Result<ScanPage> {
        let core = self.inner.read();
        let bound = core.lookup.id_bound().max(core.next_id as u64);
        let mut page = ScanPage::default();
        let mut id = cursor.max(1);
        let stop = bound.min(id.saturating_add(SCAN_IDS_PER_CALL_MAX));
        while id < stop && page.keys.len() < limit {
            if let Some((loc, h, key)) = core.current(id as u32)? {
                if h.kind == RecordKind::Put && !key.is_empty() && key.starts_with(prefix) {
                    page.keys.push(core.log.record(loc)?.key().to_vec());
                }
            }
            id += 1;
        }
        page.next_cursor = (id < bound).then_some(id);
        Ok(page)
    }

    /// Writes a record from another database keeping its seq, id and key.
    /// Returns `false` (and writes nothing) if its seq is not above this
    /// database's: applying a record twice changes nothing.
    pub fn apply(&self, r: &Record) -> Result<bool> {
        self.apply_at(std::slice::from_ref(r), true)?
            .ok_or(Error::WouldBlock)
    }

    /// [`Db::apply`] that never waits for slow work: `Ok(None)`, with
    /// nothing written, when it would first wait for the key index to grow
    /// or for the last rollover's fsyncs (retry with `apply` on a thread
    /// that may block). Under `Fsync::Always` it still waits for its
    /// fdatasync: call it from an executor thread only in the other modes.
    pub fn try_apply(&self, r: &Record) -> Result<Option<bool>> {
        self.apply_at(std::slice::from_ref(r), false)
    }

    /// [`Db::apply`] for each record in order, with one durability wait for
    /// all of them: under `Fsync::Always` one fdatasync covers the batch
    /// (a follower acknowledging a frame of records needs no more). The
    /// records of an atomic batch (`batch_more` on all but its last) are
    /// appended under one hold of the write lock, so readers see all of
    /// them or none; `records` must not end inside one. Stops at the first
    /// error; the records before it stay written. Returns the database's
    /// seq after them.
    pub fn apply_all(&self, records: &[Record]) -> Result<Seq> {
        let mut end = None;
        for group in batches(records)? {
            if let Some(at) = self.append_applied(group, true)?.ok_or(Error::WouldBlock)? {
                end = Some(at);
            }
        }
        if let Some(end) = end {
            self.inner.durable(end)?;
        }
        Ok(self.seq())
    }

    /// [`Db::try_apply`] of one record or one whole atomic batch (see
    /// [`Db::apply_all`]): `Ok(None)`, with nothing written, when it would
    /// wait; else whether it wrote anything.
    pub fn try_apply_batch(&self, group: &[Record]) -> Result<Option<bool>> {
        if batches(group)?.count() > 1 {
            return Err(Error::InvalidRecord {
                detail: "try_apply_batch takes one record or one batch".into(),
            });
        }
        self.apply_at(group, false)
    }

    fn apply_at(&self, group: &[Record], wait: bool) -> Result<Option<bool>> {
        match self.append_applied(group, wait)? {
            None => Ok(None),
            Some(None) => Ok(Some(false)),
            Some(Some(end)) => {
                self.inner.durable(end)?;
                Ok(Some(true))
            }
        }
    }

    /// Appends `group` (one record or one atomic batch) keeping seqs, ids
    /// and keys, without waiting for it to be durable: `None` if it would
    /// block (only when `!wait`), `Some(None)` if no seq of it is above
    /// this database's, else the log position after it.
    fn append_applied(&self, group: &[Record], wait: bool) -> Result<Option<Option<u64>>> {
        for r in group {
            self.check_applied(r)?;
        }
        let bytes = group.iter().map(|r| r.key.len() + r.value.len()).sum();
        loop {
            let appended = std::cell::Cell::new(false);
            let append = |core: &mut Core| append_group(core, group, &appended);
            let done = match wait {
                true => self.inner.mutate(bytes, append),
                false => match self.inner.try_mutate(bytes, append) {
                    Ok(Some(done)) => Ok(done),
                    Ok(None) => return Ok(None),
                    Err(e) => Err(e),
                },
            };
            let done = match done {
                Ok(done) => done,
                Err(e) => {
                    if appended.get() {
                        // Half a batch: only a reopen (which cuts it) may
                        // go on from here.
                        self.inner.fail_for_good(&e);
                    }
                    return Err(e);
                }
            };
            match done {
                Applied::Written(end) => return Ok(Some(Some(end))),
                Applied::Old => return Ok(Some(None)),
                Applied::GrowIndex(n) if wait => self.inner.grow_index_for(n)?,
                Applied::GrowIndex(_) => return Ok(None),
            }
        }
    }

    /// What a record from another database must be to be applied here.
    fn check_applied(&self, r: &Record) -> Result<()> {
        Self::check_key(&r.key)?;
        self.check_value(&r.value)?;
        if r.kind == RecordKind::Delete && !r.value.is_empty() {
            return Err(Error::InvalidRecord {
                detail: format!(
                    "seq {}: a delete carries a {}-byte value",
                    r.seq,
                    r.value.len()
                ),
            });
        }
        if r.id == 0 || r.id > self.inner.opts.ids_max {
            return Err(Error::IdOutOfRange {
                id: r.id,
                max: self.inner.opts.ids_max,
            });
        }
        Ok(())
    }
}

/// `records` cut into single records and whole atomic batches; an error if
/// they end inside a batch.
fn batches(records: &[Record]) -> Result<impl Iterator<Item = &[Record]>> {
    if let Some(r) = records.last().filter(|r| r.meta.batch_more) {
        return Err(Error::InvalidRecord {
            detail: format!(
                "seq {}: the records end inside an atomic batch (its last record is missing)",
                r.seq
            ),
        });
    }
    Ok(records.split_inclusive(|r| !r.meta.batch_more))
}

/// Appends the records of `group` above this database's seq, under the
/// write lock; the key index must have room for all their new keys first.
fn append_group(
    core: &mut Core,
    group: &[Record],
    appended: &std::cell::Cell<bool>,
) -> Result<Applied> {
    let fresh: Vec<&Record> = group.iter().filter(|r| r.seq > core.seq).collect();
    if fresh.is_empty() {
        return Ok(Applied::Old);
    }
    let mut unbound = 0;
    for r in &fresh {
        if !r.key.is_empty() && core.find_key(&r.key)?.is_none() {
            unbound += 1;
        }
    }
    if unbound > 0 && core.keys.needs_grow_by(unbound) {
        return Ok(Applied::GrowIndex(unbound));
    }
    let mut end = 0;
    for r in fresh {
        if r.seq <= core.seq {
            return Err(Error::InvalidRecord {
                detail: format!("seq {} after seq {} in one batch", r.seq, core.seq),
            });
        }
        if !bind_applied(core, r)? {
            return Err(Error::WouldBlock);
        }
        let w = Write {
            id: r.id,
            key: &r.key,
            kind: r.kind,
            value: &r.value,
            seq: Some(r.seq),
            meta: Some(r.meta),
        };
        end = core.append(w)?.1;
        appended.set(true);
    }
    Ok(Applied::Written(end))
}

/// What `apply` did under the lock.
enum Applied {
    /// The record's seq is not above this database's: nothing written.
    Old,
    /// The key index must grow by this many keys before the records' keys
    /// can be bound.
    GrowIndex(u64),
    /// Written; the log position after it.
    Written(u64),
}

/// Checks that applying `r` keeps every key bound to one id and binds its
/// key here if it is new (records the slot in the key index). False if the
/// key index must grow first (nothing done).
fn bind_applied(core: &mut Core, r: &Record) -> Result<bool> {
    if r.key.is_empty() {
        if let Some((_, _, k)) = core.current(r.id)? {
            if !k.is_empty() {
                return Err(Error::Diverged {
                    detail: format!("seq {}: id {} holds a key here", r.seq, r.id),
                });
            }
        }
        return Ok(true);
    }
    match core.find_key(&r.key)? {
        // The key's old id ends in a delete: the source dropped that delete
        // in a compaction and bound the key anew.
        Some((id, _))
            if id != r.id
                && matches!(core.current(id)?, Some((_, h, _)) if h.kind == RecordKind::Delete)
                && core.lookup.get(r.id)?.is_none() => {}
        Some((id, _)) if id != r.id => {
            return Err(Error::Diverged {
                detail: format!(
                    "seq {}: key is id {id} here, id {} in the record",
                    r.seq, r.id
                ),
            })
        }
        Some(_) => return Ok(true),
        None => {
            if let Some((_, _, k)) = core.current(r.id)? {
                if k != r.key.as_slice() {
                    return Err(Error::Diverged {
                        detail: format!("seq {}: id {} holds another key here", r.seq, r.id),
                    });
                }
            }
        }
    }
    if core.keys.needs_grow() {
        return Ok(false);
    }
    let io = core.log.io.clone();
    let hash = key_hash(&r.key, core.keys.seed);
    core.keys.insert(hash, r.id, &*io)?;
    Ok(true)
}
