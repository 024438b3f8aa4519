//! Online compaction: the live records of the sealed data files are copied
//! into new files and the old files removed, while reads and writes go on.
//!
//! 1. **Seal** (write lock, one rollover): the file being appended to is
//!    sealed; every file before the new one is compacted. `compact_seq` is
//!    the highest seq among them.
//! 2. **Copy** (the sealed files read through their own maps; the read lock
//!    held only to look up the fate of `COPY_BATCH_BYTES` of input): each record is
//!    kept if it is among the newest `history` versions of its id, except a
//!    delete that is the newest version and no replica needs (its seq is at
//!    most the tombstone floor): it is dropped with every older version.
//!    Kept records keep seq, id, key and value; their previous-version
//!    pointers are rewritten. The output is written as `N.db.compact` under
//!    free file numbers and fsynced.
//! 3. **Commit**: the marker `COMPACT` (old and new numbers) is written
//!    atomically; from then on recovery finishes the compaction instead of
//!    undoing it. The outputs are renamed to `N.db` and join the log, the
//!    old files leave its order but stay readable, and the lookup entries
//!    that point into old files are moved in batches of `REMAP_BATCH_IDS`
//!    under the write lock (checkpoints as usual in between). A checkpoint
//!    records `compact_seq`; then the old files are removed and the marker
//!    last.
//!
//! A crash before the marker leaves the old files in use (the `.compact`
//! files are removed at open); after it, open finishes the switch and
//! rebuilds the tables from the log unless the final checkpoint was taken.

use crate::compact_copy::{copy, DroppedNewest, Output};
use crate::dir::{data_path, sync_dir};
use crate::error::{CodecError, Error, IoContext, Result};
use crate::files::DataFile;
use crate::inner::{lock, Inner};
use crate::limits::FILE_HEADER_BYTES;
use crate::location::Location;
use crate::marker::{compact_path, remove_marker, write_marker};
use crate::random::random_u64;
use crate::record::Seq;
use crate::stats::CompactReport;
use crate::tables::Marker;
use std::time::Instant;

/// Lookup entries moved per hold of the write lock while committing.
pub const REMAP_BATCH_IDS: usize = 4096;

impl Inner {
    /// Garbage bytes in the data files, if compaction is due by the options.
    pub(crate) fn compaction_due(&self) -> Option<u64> {
        let core = self.read();
        let data = core.log.data_bytes();
        let headers = (core.log.order.len() * FILE_HEADER_BYTES) as u64;
        let garbage = data.saturating_sub(core.live_bytes + headers);
        let enough = garbage >= self.opts.compact_min_bytes
            && garbage * 100 >= data * self.opts.compact_garbage_percent as u64;
        enough.then_some(garbage)
    }

    /// Runs one compaction (one at a time) and records its report.
    /// It runs only if the free space covers what it may write
    /// (`compaction_room`) — under a full disk's latch too, and writes
    /// resume after it.
    pub(crate) fn compact(&self) -> Result<CompactReport> {
        let latched = match self.writable() {
            Ok(()) => false,
            Err(_) if self.full_disk() => true,
            Err(e) => return Err(e),
        };
        self.compaction_room()?;
        if latched {
            // The room covers the buffers: they go out first.
            self.retry_full_now();
            self.writable()?;
        }
        let _one = lock(&self.compacting);
        let report = run(self)?;
        self.retry_full_now();
        let mut c = lock(&self.compactions);
        c.0 += 1;
        c.1 = Some(report.clone());
        Ok(report)
    }
}

/// What the seal found: the files to compact and the state at the seal.
struct Sealed {
    old: Vec<u16>,
    compact_seq: Seq,
    next_id: u32,
    bytes_before: u64,
    input_bytes: u64,
}

/// Phase 1: seals the file being appended to (one rollover); every file
/// before the new one is compacted.
fn seal(inner: &Inner) -> Result<Sealed> {
    // Most of the sealed file is made durable here, without the lock.
    inner.sync()?;
    // (A size no record fits in front of: wait for a pending seal first.)
    inner.mutate(usize::MAX / 2, |core| {
        if core.meta.keysize < 6 {
            return Err(Error::BadOptions {
                detail: format!(
                    "compaction needs keysize 6 (this database has keysize {}, one data file)",
                    core.meta.keysize
                ),
            });
        }
        let bytes_before = core.disk_bytes();
        if core.log.end().offset as usize > FILE_HEADER_BYTES {
            let next = core.seq + 1;
            core.log.roll(next)?;
        }
        let old: Vec<u16> = core.log.order[..core.log.order.len() - 1].to_vec();
        let input_bytes: u64 = old
            .iter()
            .map(|&n| core.log.file(n).map_or(0, |f| f.len as u64))
            .sum();
        Ok(Sealed {
            old,
            compact_seq: core.seq,
            next_id: core.next_id,
            bytes_before,
            input_bytes,
        })
    })
}

/// Runs one compaction (the caller holds `Inner::compacting`).
fn run(inner: &Inner) -> Result<CompactReport> {
    let t0 = Instant::now();
    let keep = inner.opts.history.max(1);
    let floor = inner.tombstone_floor();
    let sealed = seal(inner)?;
    let mut report = CompactReport {
        bytes_before: sealed.bytes_before,
        files_in: sealed.old.len(),
        compact_seq: sealed.compact_seq,
        ..CompactReport::default()
    };
    if sealed.old.is_empty() {
        report.bytes_after = sealed.bytes_before;
        return Ok(report);
    }
    log::info!(
        "{}: compacting {} data files ({:.1} MB, records up to seq {}; keeping {keep} \
         versions per key, deletes above seq {} )",
        inner.dir.display(),
        sealed.old.len(),
        sealed.input_bytes as f64 / 1e6,
        sealed.compact_seq,
        if floor == Seq::MAX {
            "none".to_string()
        } else {
            floor.to_string()
        }
    );
    let (new, dropped_newest) = copy_all(inner, &sealed, keep, floor, &mut report)?;
    report.files_out = new.len();
    let horizon = dropped_newest.iter().map(|d| d.2).max().unwrap_or(0);
    let marker = Marker {
        compact_seq: sealed.compact_seq,
        tombstone_horizon: horizon.max(inner.read().tombstone_horizon),
        compact_id: random_u64() | 1,
        next_id: sealed.next_id,
        old: sealed.old.clone(),
        new,
    };
    let result = commit(inner, &marker, &dropped_newest);
    inner.progress_set(0, 0);
    if let Err(e) = &result {
        // Past the marker the switch must finish; open does it.
        inner.fail(e);
    }
    result?;
    report.bytes_after = inner.read().disk_bytes();
    report.millis = t0.elapsed().as_millis() as u64;
    log::info!(
        "{}: compaction done in {} ms: {:.1} MB -> {:.1} MB; {} data files -> {}; kept {} \
         records, dropped {} ({} deletes)",
        inner.dir.display(),
        report.millis,
        report.bytes_before as f64 / 1e6,
        report.bytes_after as f64 / 1e6,
        report.files_in,
        report.files_out,
        report.kept,
        report.dropped,
        report.tombstones_dropped
    );
    Ok(report)
}

/// Phase 2: copies the kept records of the sealed files into durable
/// output files; returns their numbers and the dropped newest deletes. On
/// failure the outputs are removed.
fn copy_all(
    inner: &Inner,
    sealed: &Sealed,
    keep: usize,
    floor: Seq,
    report: &mut CompactReport,
) -> Result<(Vec<u16>, Vec<DroppedNewest>)> {
    inner.progress_set(0, sealed.input_bytes);
    let mut out = Output::new(inner);
    let input = sealed.input_bytes;
    let copied = copy(inner, &sealed.old, keep, floor, &mut out, report, input);
    match copied.and_then(|d| out.finish().map(|()| d)) {
        Ok(d) => Ok((out.numbers(), d)),
        Err(e) => {
            out.discard();
            inner.progress_set(0, 0);
            Err(e)
        }
    }
}

/// Phase 3: writes the marker (the commit point), switches the log to the
/// outputs, moves the lookup entries, checkpoints, removes the old files
/// and the marker.
fn commit(inner: &Inner, marker: &Marker, dropped_newest: &[DroppedNewest]) -> Result<()> {
    let dir = &inner.dir;
    let io = inner.opts.io.clone();
    let (old, new) = (&marker.old[..], &marker.new[..]);
    write_marker(dir, marker, &*io)?;
    for &n in new {
        let (from, to) = (compact_path(dir, n), data_path(dir, n));
        io.rename(&from, &to)
            .ctx(|| format!("rename {} to {}", from.display(), to.display()))?;
    }
    sync_dir(dir, &*io)?;
    // The outputs join the log; the old files leave its order but stay
    // readable until no lookup entry points into them.
    {
        let mut core = inner.write();
        for &n in new {
            let f = DataFile::open(data_path(dir, n), &*io)?;
            core.log.add(f);
        }
        for &n in old {
            core.log.retire(n);
        }
        core.log.sort_order();
        core.log.reserved.clear();
        core.tombstone_horizon = marker.tombstone_horizon;
    }
    for &n in new {
        remap(inner, n, old)?;
    }
    for chunk in dropped_newest.chunks(REMAP_BATCH_IDS) {
        let due = {
            let mut core = inner.write();
            for &(id, loc, _) in chunk {
                if core.lookup.get(id)? == loc {
                    core.lookup.set(id, Location::NONE);
                }
            }
            core.checkpoint_due()
        };
        if due {
            inner.checkpoint(true)?;
        }
    }
    // Record the compaction in a checkpoint, then close and remove the old
    // files (no lookup entry points into them any more).
    {
        let mut core = inner.write();
        core.compact_seq = marker.compact_seq;
        core.compact_id = marker.compact_id;
    }
    inner.checkpoint(true)?;
    remove_old(inner, old)
}

/// Moves the lookup entries that point at a record of the `old` files to
/// its copy in output file `n`, `REMAP_BATCH_IDS` per hold of the write
/// lock (checkpoints as usual in between).
fn remap(inner: &Inner, n: u16, old: &[u16]) -> Result<()> {
    let mut off = FILE_HEADER_BYTES as u32;
    loop {
        let (due, end) = {
            let mut core = inner.write();
            let len = core.log.file(n).expect("output file is open").len;
            let mut moved = 0;
            while off < len && moved < REMAP_BATCH_IDS {
                let at = Location {
                    file: n,
                    offset: off,
                };
                let (h, _) = core.log.header_and_key(at).ok_or_else(|| {
                    core.log.corrupted(
                        at,
                        CodecError::BadField {
                            what: "compaction output",
                        },
                    )
                })?;
                let cur = core.lookup.get(h.id)?;
                if old.contains(&cur.file)
                    && core
                        .log
                        .header_and_key(cur)
                        .is_some_and(|(c, _)| c.seq == h.seq)
                {
                    core.lookup.set(h.id, at);
                    moved += 1;
                }
                off += h.record_len() as u32;
            }
            (core.checkpoint_due(), off >= len)
        };
        if due {
            inner.checkpoint(true)?;
        }
        if end {
            return Ok(());
        }
    }
}

/// Closes and removes the compacted files, then the marker.
fn remove_old(inner: &Inner, old: &[u16]) -> Result<()> {
    let dir = &inner.dir;
    let io = &*inner.opts.io;
    // Their numbers stay reserved until the marker is gone: open removes
    // the files the marker lists, so a new file must not take one of those
    // numbers before then.
    {
        let mut core = inner.write();
        for &n in old {
            core.log.close_file(n);
            core.log.reserved.push(n);
        }
        core.log.generation += 1;
    }
    for &n in old {
        let path = data_path(dir, n);
        io.remove_file(&path)
            .ctx(|| format!("remove {}", path.display()))?;
    }
    sync_dir(dir, io)?;
    remove_marker(dir, io)?;
    inner.write().log.reserved.retain(|n| !old.contains(n));
    Ok(())
}
