//! Reading the log: [`LogIter`] (replication: `Db::read_from`,
//! `Db::snapshot`) and the walk back through an id's versions
//! (`walk_history`).
//!
//! Invariant: a record's seq is above every seq before it in log order, so
//! an iterator resumes by seq alone — after a compaction replaced the files
//! it was reading (`Log::generation` changed) it seeks again. Below the
//! tombstone horizon the log is incomplete (compaction dropped deletes) and
//! `read_from` fails with `Error::Compacted`.

use crate::error::{CodecError, Error, Result};
use crate::inner::Inner;
use crate::limits::{FILE_HEADER_BYTES, HISTORY_DEPTH_MAX, SEEK_SKIP_RECORDS_PER_LOCK};
use crate::location::Location;
use crate::record::{Header, Record, RecordKind, Seq};
use crate::seek::{marks, SeekMarks};
use crate::state::Core;
use crate::stats::Version;
use std::sync::{Arc, Mutex, Weak};

/// Up to `depth` versions of `id`, newest first, from its record at `loc`.
pub(crate) fn walk_history(
    core: &Core,
    id: u32,
    mut loc: Location,
    depth: usize,
) -> Result<Vec<Version>> {
    let mut out = Vec::new();
    let mut newer: Option<Header> = None;
    while !loc.is_none() && out.len() < depth.min(HISTORY_DEPTH_MAX) {
        let r = match core.log.record(loc) {
            Ok(r) => r,
            // A version a compaction moved, seen through the pointer of a
            // record written while it ran: the chain ends.
            Err(_) if newer.as_ref().is_some_and(|h| core.may_dangle(h)) => break,
            Err(e) => return Err(e),
        };
        if r.header.id != id {
            return Err(core.log.corrupted(
                loc,
                CodecError::BadField {
                    what: "history chain (id differs)",
                },
            ));
        }
        out.push(Version {
            seq: r.header.seq,
            value: (r.header.kind == RecordKind::Put).then(|| r.value().to_vec()),
        });
        let h = r.header;
        loc = core
            .prev_version(&h, loc)?
            .map_or(Location::NONE, |(p, _)| p);
        newer = Some(h);
    }
    Ok(out)
}

/// Where the newest version of `id` with a seq at most `upto` is
/// (`Location::NONE` if none is left): its current version, or one found by
/// walking its history back past the versions written after `upto`.
fn newest_at(core: &Core, id: u32, upto: Seq) -> Result<Location> {
    let mut loc = core.lookup.get(id)?;
    while !loc.is_none() {
        let Some((h, _)) = core.log.header_and_key(loc) else {
            return Ok(Location::NONE);
        };
        if h.seq <= upto {
            return Ok(loc);
        }
        loc = match core.prev_version(&h, loc) {
            Ok(prev) => prev.map_or(Location::NONE, |(p, _)| p),
            // A version a compaction moved, behind a record written while
            // it ran: the chain ends there.
            Err(_) if core.may_dangle(&h) => Location::NONE,
            Err(e) => return Err(e),
        };
    }
    Ok(loc)
}

/// Iterator over records in log (= seq) order; see [`Db::read_from`]. It
/// does not keep the database open: once the `Db` is closed it ends. It
/// survives compaction: it finds its place again by seq.
pub struct LogIter {
    inner: Weak<Inner>,
    pos: Location,
    generation: u64,
    after: Seq,
    /// `Some(upto)`: only the newest version of each id at `upto` that
    /// holds a value (a snapshot); `None`: every record.
    live_at: Option<Seq>,
    /// The offset in `pos.file` from which the next seek mark is due.
    mark_due: u32,
}

/// Counts the records one step passed over, into the marks' total when
/// the step ends.
struct Skipped<'a>(u64, &'a Mutex<SeekMarks>);

impl Drop for Skipped<'_> {
    fn drop(&mut self) {
        if self.0 > 0 {
            marks(self.1).skipped += self.0;
        }
    }
}

/// What one hold of the read lock gave.
enum Step {
    Done(Option<Result<Record>>),
    /// Skipped `SEEK_SKIP_RECORDS_PER_LOCK` records: let writers in.
    Again,
}

/// Where to start reading for the records after `after`: in the first live
/// file that can hold them, at the last seek mark below them.
pub(crate) fn seek(core: &Core, after: Seq) -> Location {
    let order = &core.log.order;
    let n = order.partition_point(|&f| {
        core.log
            .file(f)
            .is_some_and(|f| f.header.first_seq <= after.saturating_add(1))
    });
    let file = order[n.saturating_sub(1)];
    Location {
        file,
        offset: marks(&core.log.marks).start(core.log.generation, file, after),
    }
}

impl LogIter {
    pub(crate) fn new(inner: Arc<Inner>, after: Seq, live_at: Option<Seq>) -> LogIter {
        let (pos, generation) = {
            let core = inner.read();
            (seek(&core, after), core.log.generation)
        };
        LogIter {
            inner: Arc::downgrade(&inner),
            pos,
            generation,
            after,
            live_at,
            mark_due: SeekMarks::next_due(pos.offset),
        }
    }

    /// The seq of the last record returned (or the starting point).
    pub fn position(&self) -> Seq {
        self.after
    }
}

impl Iterator for LogIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            let inner = self.inner.upgrade()?;
            let core = inner.read();
            if let Step::Done(r) = self.step(&core) {
                return r;
            }
        }
    }
}

impl LogIter {
    /// Moves `pos` to `at`, the start of a file or a seek mark.
    fn go(&mut self, at: Location) {
        self.pos = at;
        self.mark_due = SeekMarks::next_due(at.offset);
    }

    /// The next record, read under one hold of the read lock.
    fn step(&mut self, core: &Core) -> Step {
        if self.live_at.is_none() && self.after < core.tombstone_horizon {
            return Step::Done(Some(Err(Error::Compacted {
                after: self.after,
                horizon: core.tombstone_horizon,
            })));
        }
        if self.generation != core.log.generation {
            self.generation = core.log.generation;
            self.go(seek(core, self.after));
        }
        let mut skipped = Skipped(0, &core.log.marks);
        for _ in 0..SEEK_SKIP_RECORDS_PER_LOCK {
            if self.pos.offset >= core.log.readable_end(self.pos.file) {
                match core.log.next_after(self.pos.file) {
                    Some(next) => {
                        self.go(Location {
                            file: next,
                            offset: FILE_HEADER_BYTES as u32,
                        });
                        continue;
                    }
                    None => return Step::Done(None),
                }
            }
            let at = self.pos;
            let r = match core.log.record(at) {
                Ok(r) => r,
                Err(e) => return Step::Done(Some(Err(e))),
            };
            self.pos.offset += r.header.record_len() as u32;
            if at.offset >= self.mark_due {
                marks(&core.log.marks).note(self.generation, at.file, at.offset, r.header.seq);
                self.mark_due = SeekMarks::next_due(at.offset);
            }
            if r.header.seq <= self.after {
                skipped.0 += 1;
                continue;
            }
            if let Some(upto) = self.live_at {
                if r.header.seq > upto {
                    // Seq order: nothing further is at or below `upto`.
                    self.after = Seq::MAX;
                    return Step::Done(None);
                }
                match newest_at(core, r.header.id, upto) {
                    Ok(newest) if newest == at && r.header.kind == RecordKind::Put => {}
                    Ok(_) => continue,
                    Err(e) => return Step::Done(Some(Err(e))),
                }
            }
            self.after = r.header.seq;
            let mut record = r.to_record();
            if self.live_at.is_some() {
                // A snapshot holds live versions, not batches: a batch's
                // superseded records are not in it.
                record.meta.batch_more = false;
            }
            return Step::Done(Some(Ok(record)));
        }
        Step::Again
    }
}
