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
use crate::limits::{FILE_HEADER_BYTES, HISTORY_DEPTH_MAX};
use crate::location::Location;
use crate::record::{Header, Record, RecordKind, Seq};
use crate::state::Core;
use crate::stats::Version;
use std::sync::{Arc, Weak};

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
            value: (r.header.kind == RecordKind::Put).then(|| r.value.to_vec()),
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
}

/// The first live file that can hold a record with a seq above `after`.
pub(crate) fn seek(core: &Core, after: Seq) -> Location {
    let order = &core.log.order;
    let n = order.partition_point(|&f| {
        core.log
            .file(f)
            .is_some_and(|f| f.header.first_seq <= after.saturating_add(1))
    });
    Location {
        file: order[n.saturating_sub(1)],
        offset: FILE_HEADER_BYTES as u32,
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
        let inner = self.inner.upgrade()?;
        let core = inner.read();
        if self.live_at.is_none() && self.after < core.tombstone_horizon {
            return Some(Err(Error::Compacted {
                after: self.after,
                horizon: core.tombstone_horizon,
            }));
        }
        if self.generation != core.log.generation {
            self.generation = core.log.generation;
            self.pos = seek(&core, self.after);
        }
        loop {
            if self.pos.offset >= core.log.readable_end(self.pos.file) {
                match core.log.next_after(self.pos.file) {
                    Some(next) => {
                        self.pos = Location {
                            file: next,
                            offset: FILE_HEADER_BYTES as u32,
                        };
                        continue;
                    }
                    None => return None,
                }
            }
            let at = self.pos;
            let r = match core.log.record(at) {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            self.pos.offset += r.header.record_len() as u32;
            if r.header.seq <= self.after {
                continue;
            }
            if let Some(upto) = self.live_at {
                if r.header.seq > upto {
                    // Seq order: nothing further is at or below `upto`.
                    self.after = Seq::MAX;
                    return None;
                }
                match newest_at(&core, r.header.id, upto) {
                    Ok(newest) if newest == at && r.header.kind == RecordKind::Put => {}
                    Ok(_) => continue,
                    Err(e) => return Some(Err(e)),
                }
            }
            self.after = r.header.seq;
            let mut record = r.to_record();
            if self.live_at.is_some() {
                // A snapshot holds live versions, not batches: a batch's
                // superseded records are not in it.
                record.meta.batch_more = false;
            }
            return Some(Ok(record));
        }
    }
}
