//! Atomic batches and transactions: several writes appended under one hold
//! of the write lock as consecutive records, all but the last marked
//! `FLAG_BATCH_MORE`. Readers see all of them or none, and recovery keeps
//! all or none (`FORMAT.md`, "Batches"). A transaction's conditions are
//! checked, and a failed one's reads taken, under that same hold.
//!
//! Nothing that can be checked before the first append is left to fail
//! after it (key and value sizes, ids, key-index room, the room of a
//! single-file database); an I/O failure in the middle makes the database
//! read-only, and the next open cuts the unfinished batch.

use crate::db::Db;
use crate::error::{Error, Result};
use crate::limits::{BATCH_READ_BYTES_MAX, BATCH_RECORDS_MAX, FILE_HEADER_BYTES};
use crate::record::{self, RecordKind, RecordMeta, Seq};
use crate::request::{repeat_of, Expect, Once, Request};
use crate::state::{Core, Write};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

/// One write of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
        /// When it expires, ms since the Unix epoch; 0: never.
        deadline_ms: u64,
    },
    /// Delete `key` (nothing is written for it when it is absent then).
    Delete {
        /// The key.
        key: &'a [u8],
    },
    /// Move `key`'s deadline, keeping its value: a put of the live value
    /// marked as a refresh (nothing is written when it is absent then).
    Refresh {
        /// The key.
        key: &'a [u8],
        /// The new deadline, ms since the Unix epoch (not 0).
        deadline_ms: u64,
    },
}

impl<'a> BatchOp<'a> {
    /// The key written.
    pub fn key(&self) -> &'a [u8] {
        match *self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } | BatchOp::Refresh { key, .. } => {
                key
            }
        }
    }

    /// The value given (a refresh's comes from the store).
    fn value(&self) -> &'a [u8] {
        match *self {
            BatchOp::Put { value, .. } => value,
            BatchOp::Delete { .. } | BatchOp::Refresh { .. } => &[],
        }
    }

    fn deadline_ms(&self) -> u64 {
        match *self {
            BatchOp::Put { deadline_ms, .. } | BatchOp::Refresh { deadline_ms, .. } => deadline_ms,
            BatchOp::Delete { .. } => 0,
        }
    }
}

/// What a transaction's condition asks of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test<'a> {
    /// As a conditional write's [`Expect`].
    Expect(Expect),
    /// It holds exactly this value.
    Value(&'a [u8]),
}

/// One condition of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond<'a> {
    /// The key.
    pub key: &'a [u8],
    /// What it must hold.
    pub test: Test<'a>,
}

/// A transaction: if every condition holds, apply the writes as one
/// atomic batch; otherwise write nothing and read `reads`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn<'a> {
    /// Conditions, checked against the store before the writes.
    pub conds: Vec<Cond<'a>>,
    /// Writes, in order (a later write of the same key wins).
    pub ops: Vec<BatchOp<'a>>,
    /// Keys read when a condition fails.
    pub reads: Vec<&'a [u8]>,
}

/// A key's live version: its seq and value.
pub type Live = Option<(Seq, Vec<u8>)>;

/// What a transaction came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every condition held and the writes are applied: the seq of the
    /// batch's last record, or `None` when there was nothing to write
    /// (only deletes of absent keys).
    Applied(Option<Seq>),
    /// A condition failed: nothing was written.
    Failed {
        /// Indexes of the conditions that failed.
        failed: Vec<u32>,
        /// The store's seq when they were checked.
        seq: Seq,
        /// The live version of each of `reads`, at that seq.
        reads: Vec<Live>,
    },
    /// An earlier attempt of the same request was applied; its last
    /// record's seq. Nothing was written now.
    Repeated(Seq),
    /// Whether an earlier attempt was applied cannot be told (see
    /// [`Once::Unknown`]): nothing was written.
    Unknown(String),
}

/// The writes of a batch that append a record, decided under the lock.
struct Plan {
    /// Indexes into the batch's ops.
    writes: Vec<usize>,
    /// Distinct keys the batch binds for the first time.
    new_keys: u64,
}

/// One attempt under the write lock.
enum Step {
    Done(TxnOutcome, Option<u64>),
    /// The key index needs room for this many keys first.
    Grow(u64),
}

impl Db {
    /// Applies `ops` as one atomic batch, durable as [`Db::put`] is; the
    /// seq of its last record (`None`: nothing to write).
    pub fn batch(&self, ops: &[BatchOp<'_>]) -> Result<Option<Seq>> {
        let txn = Txn {
            ops: ops.to_vec(),
            ..Txn::default()
        };
        let (outcome, end) = self.txn_at(&txn, None, true)?.ok_or(Error::WouldBlock)?;
        if let Some(end) = end {
            self.inner.durable(end)?;
        }
        match outcome {
            TxnOutcome::Applied(seq) => Ok(seq),
            other => unreachable!("a batch without conditions or request: {other:?}"),
        }
    }

    /// Runs `txn` (unsynced, as [`Db::put_unsynced`]): its conditions, and
    /// then its writes or its reads, under one hold of the write lock. With
    /// `req`, a retry that finds an earlier attempt is answered as
    /// [`Db::put_once`] does (the id goes in the batch's last record).
    /// `wait` false: never waits for slow work (`None`: retry with `wait`).
    pub fn txn(
        &self,
        txn: &Txn<'_>,
        req: Option<&Request>,
        wait: bool,
    ) -> Result<Option<TxnOutcome>> {
        Ok(self.txn_at(txn, req, wait)?.map(|(outcome, _)| outcome))
    }

    /// [`Db::txn`], with the log position after the batch if it wrote one.
    fn txn_at(
        &self,
        txn: &Txn<'_>,
        req: Option<&Request>,
        wait: bool,
    ) -> Result<Option<(TxnOutcome, Option<u64>)>> {
        self.check_txn(txn)?;
        let bytes: usize = txn
            .ops
            .iter()
            .map(|o| o.key().len() + o.value().len())
            .sum();
        let ids_max = self.inner.opts.ids_max;
        loop {
            let appended = Cell::new(false);
            let run = |core: &mut Core| run_txn(core, txn, req, ids_max, &appended);
            let step = match wait {
                true => self.inner.mutate(bytes, run),
                false => self.inner.try_mutate(bytes, run).map(Option::flatten),
            };
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    if appended.get() {
                        // Half a batch is in the log: only a reopen (which
                        // cuts it) may go on from here.
                        self.inner.fail_for_good(&e);
                    }
                    return Err(e);
                }
            };
            match step {
                Some(Step::Done(outcome, end)) => return Ok(Some((outcome, end))),
                Some(Step::Grow(n)) if wait => self.inner.grow_index_for(n)?,
                Some(Step::Grow(_)) | None => return Ok(None),
            }
        }
    }

    /// Checks what needs no lock: sizes and counts.
    fn check_txn(&self, txn: &Txn<'_>) -> Result<()> {
        if txn.ops.len() > BATCH_RECORDS_MAX {
            return Err(Error::BatchTooLarge {
                detail: format!(
                    "{} writes; at most {BATCH_RECORDS_MAX} (BATCH_RECORDS_MAX) in one batch",
                    txn.ops.len()
                ),
            });
        }
        for op in &txn.ops {
            Self::check_key(op.key())?;
            if op.key().is_empty() {
                return Err(Error::InvalidRecord {
                    detail: "a batch writes an empty key".into(),
                });
            }
            if matches!(op, BatchOp::Refresh { deadline_ms: 0, .. }) {
                return Err(Error::InvalidRecord {
                    detail: "a refresh without a deadline".into(),
                });
            }
            self.check_value(op.value())?;
        }
        let mut keys = txn
            .conds
            .iter()
            .map(|c| c.key)
            .chain(txn.reads.iter().copied());
        keys.try_for_each(Self::check_key)
    }
}

/// The transaction under the write lock.
fn run_txn(
    core: &mut Core,
    txn: &Txn<'_>,
    req: Option<&Request>,
    ids_max: u32,
    appended: &Cell<bool>,
) -> Result<Option<Step>> {
    match repeat_of(core, req) {
        Some(Once::Repeated(seq)) => return Ok(Some(Step::Done(TxnOutcome::Repeated(seq), None))),
        Some(Once::Unknown(why)) => return Ok(Some(Step::Done(TxnOutcome::Unknown(why), None))),
        _ => {}
    }
    let mut failed = Vec::new();
    for (i, c) in txn.conds.iter().enumerate() {
        if !holds(core, c)? {
            failed.push(i as u32);
        }
    }
    if !failed.is_empty() {
        let reads = read_all(core, &txn.reads)?;
        let outcome = TxnOutcome::Failed {
            failed,
            seq: core.seq,
            reads,
        };
        return Ok(Some(Step::Done(outcome, None)));
    }
    let plan = plan(core, &txn.ops)?;
    if plan.new_keys > 0 && core.keys.needs_grow_by(plan.new_keys) {
        return Ok(Some(Step::Grow(plan.new_keys)));
    }
    check_room(core, txn, &plan, req, ids_max)?;
    let mut end = None;
    let last = plan.writes.len();
    for (n, &i) in plan.writes.iter().enumerate() {
        let op = &txn.ops[i];
        let key = op.key();
        let id = match core.find_key(key)? {
            Some((id, _)) => id,
            None => core.new_key_id(key, ids_max)?,
        };
        let meta = batch_meta(core, req, n + 1 < last, op);
        let kept;
        let (kind, value) = match op {
            BatchOp::Put { value, .. } => (RecordKind::Put, *value),
            BatchOp::Delete { .. } => (RecordKind::Delete, &[][..]),
            // Live, as `plan` found: the value as of the ops before it.
            BatchOp::Refresh { .. } => {
                let (loc, _) = live(core, key)?.ok_or(Error::WouldBlock)?;
                kept = core.log.record(loc)?.value().to_vec();
                (RecordKind::Put, &kept[..])
            }
        };
        let w = Write {
            id,
            key,
            kind,
            value,
            seq: None,
            meta: Some(meta),
        };
        let (_, at) = core.append(w)?;
        appended.set(true);
        end = Some(at);
    }
    let seq = end.map(|_| core.seq);
    Ok(Some(Step::Done(TxnOutcome::Applied(seq), end)))
}

/// The fields of a batch's record: the term, the request id on the last
/// one, the batch flag on all the others, the op's deadline.
fn batch_meta(core: &Core, req: Option<&Request>, more: bool, op: &BatchOp<'_>) -> RecordMeta {
    RecordMeta {
        term: core.term,
        deadline_ms: op.deadline_ms(),
        request_id: match (more, req) {
            (false, Some(r)) => r.id,
            _ => [0; record::REQUEST_ID_BYTES],
        },
        batch_more: more,
        refresh: matches!(op, BatchOp::Refresh { .. }),
    }
}

/// The live version of `key`: its id and seq if it holds a value.
fn live(core: &Core, key: &[u8]) -> Result<Option<(crate::location::Location, Seq)>> {
    let Some((id, _)) = core.find_key(key)? else {
        return Ok(None);
    };
    Ok(match core.current(id)? {
        Some((loc, h, _)) if h.kind == RecordKind::Put => Some((loc, h.seq)),
        _ => None,
    })
}

fn holds(core: &Core, c: &Cond<'_>) -> Result<bool> {
    let now = live(core, c.key)?;
    Ok(match c.test {
        Test::Expect(Expect::Seq(seq)) => now.map(|(_, s)| s) == Some(seq),
        Test::Expect(Expect::Absent) => now.is_none(),
        Test::Expect(Expect::Present) => now.is_some(),
        Test::Value(v) => match now {
            Some((loc, _)) => core.log.record(loc)?.value() == v,
            None => false,
        },
    })
}

/// The live versions of `keys`, at most `BATCH_READ_BYTES_MAX` bytes.
fn read_all(core: &Core, keys: &[&[u8]]) -> Result<Vec<Live>> {
    let mut bytes = 0usize;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let value = match live(core, key)? {
            Some((loc, seq)) => {
                let value = core.log.record(loc)?.value().to_vec();
                bytes += value.len();
                if bytes > BATCH_READ_BYTES_MAX {
                    return Err(Error::BatchTooLarge {
                        detail: format!(
                            "the reads hold more than {BATCH_READ_BYTES_MAX} bytes \
                             (BATCH_READ_BYTES_MAX); read fewer keys at once"
                        ),
                    });
                }
                Some((seq, value))
            }
            None => None,
        };
        out.push(value);
    }
    Ok(out)
}

/// Which ops append a record (a delete of a key absent by then does not),
/// and how many keys get their first id.
fn plan(core: &Core, ops: &[BatchOp<'_>]) -> Result<Plan> {
    let mut now: HashMap<&[u8], bool> = HashMap::new();
    let mut new: HashSet<&[u8]> = HashSet::new();
    let mut writes = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let key = op.key();
        let live_now = match now.get(key) {
            Some(&l) => l,
            None => {
                let bound = core.find_key(key)?;
                if bound.is_none() && matches!(op, BatchOp::Put { .. }) {
                    new.insert(key);
                }
                live(core, key)?.is_some()
            }
        };
        let (writes_now, live_after) = match op {
            BatchOp::Put { .. } => (true, true),
            BatchOp::Delete { .. } => (live_now, false),
            BatchOp::Refresh { .. } => (live_now, live_now),
        };
        if writes_now {
            writes.push(i);
        }
        now.insert(key, live_after);
    }
    Ok(Plan {
        writes,
        new_keys: new.len() as u64,
    })
}

/// Refuses, before anything is appended, what would fail half way.
fn check_room(
    core: &Core,
    txn: &Txn<'_>,
    plan: &Plan,
    req: Option<&Request>,
    ids_max: u32,
) -> Result<()> {
    let ids_left = (ids_max as u64 + 1).saturating_sub(core.next_id as u64);
    if core.next_id == 0 || plan.new_keys > ids_left {
        return Err(Error::Full {
            reason: format!(
                "the batch binds {} new keys and {ids_left} ids up to {ids_max} (ids_max) are left",
                plan.new_keys
            ),
        });
    }
    let room = core.log.file_size as usize - FILE_HEADER_BYTES;
    let mut total = 0usize;
    for (n, &i) in plan.writes.iter().enumerate() {
        let op = &txn.ops[i];
        let meta = batch_meta(core, req, n + 1 < plan.writes.len(), op);
        let value_len = match op {
            // The value of a put earlier in the batch, else the store's.
            BatchOp::Refresh { key, .. } => {
                let earlier = txn.ops[..i].iter().rev().find_map(|o| match o {
                    BatchOp::Put { key: k, value, .. } if k == key => Some(value.len()),
                    _ => None,
                });
                match (earlier, live(core, key)?) {
                    (Some(len), _) => len,
                    (None, Some((loc, _))) => core.log.record(loc)?.header.value_len as usize,
                    (None, None) => 0,
                }
            }
            _ => op.value().len(),
        };
        let len = record::encoded_len(op.key().len(), value_len, &meta);
        if len > room {
            return Err(Error::RecordTooLarge { len, room });
        }
        total += len;
    }
    // Keysize 2-4 addresses data file 0 only: the whole batch must fit.
    let end = core.log.end().offset as usize;
    if core.meta.keysize < 6 && end + total > core.log.file_size as usize {
        return Err(Error::Full {
            reason: format!(
                "keysize < 6 addresses only data file 0 and a batch of {total} bytes does not \
                 fit after its {end}; use keysize 6 for more than one data file"
            ),
        });
    }
    Ok(())
}
