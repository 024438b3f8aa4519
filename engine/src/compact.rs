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

use crate::db::Inner;
use crate::error::{Error, IoContext, Result};
use crate::files::{
    create_with_header, data_path, read_if_exists, replace_file, sync_dir, DataFile,
};
use crate::limits::{FILE_HEADER_BYTES, RECORD_HEADER_BYTES};
use crate::location::Location;
use crate::record::{self, Header, RecordKind, RecordRef, Seq};
use crate::state::Core;
use crate::tables::FileHeader;
use memmap2::MmapOptions;
use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Input bytes examined per hold of the read lock while copying.
pub const COPY_BATCH_BYTES: usize = 256 << 10;
/// Lookup entries moved per hold of the write lock while committing.
pub const REMAP_BATCH_IDS: usize = 4096;
/// Output bytes collected before one write to the output file.
const OUTPUT_BUFFER_BYTES: usize = 1 << 20;
/// Seconds between progress lines in the log.
const PROGRESS_SECS: u64 = 5;

/// Name of the commit marker.
const MARKER: &str = "COMPACT";
const MARKER_TMP: &str = "COMPACT.tmp";
const MARKER_MAGIC: [u8; 8] = *b"HYPHACP\0";
const MARKER_VERSION: u16 = 1;
/// Fixed part of the marker: magic, version, counts, reserved, two seqs,
/// the compaction's id, next id, reserved.
const MARKER_FIXED_BYTES: usize = 8 + 2 + 2 + 2 + 2 + 8 + 8 + 8 + 4 + 4;

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of data files and tables before.
    pub bytes_before: u64,
    /// Bytes of data files and tables after.
    pub bytes_after: u64,
    /// Data files compacted (removed).
    pub files_in: usize,
    /// Data files written.
    pub files_out: usize,
    /// Records copied.
    pub kept: u64,
    /// Records dropped (overwritten versions beyond `history`, deletes).
    pub dropped: u64,
    /// Deletes dropped.
    pub tombstones_dropped: u64,
    /// Records with a seq up to this were rewritten.
    pub compact_seq: Seq,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// The commit marker: which files a committed compaction replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub compact_seq: Seq,
    pub tombstone_horizon: Seq,
    /// Random, names this compaction: its final checkpoint records it.
    pub compact_id: u64,
    /// Next id at the seal: no id a dropped record had is issued again.
    pub next_id: u32,
    pub old: Vec<u16>,
    pub new: Vec<u16>,
}

impl Marker {
    fn encode(&self) -> Vec<u8> {
        let mut b =
            Vec::with_capacity(MARKER_FIXED_BYTES + 2 * (self.old.len() + self.new.len()) + 4);
        b.extend_from_slice(&MARKER_MAGIC);
        b.extend_from_slice(&MARKER_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.old.len() as u16).to_le_bytes());
        b.extend_from_slice(&(self.new.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.compact_seq.to_le_bytes());
        b.extend_from_slice(&self.tombstone_horizon.to_le_bytes());
        b.extend_from_slice(&self.compact_id.to_le_bytes());
        b.extend_from_slice(&self.next_id.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for n in self.old.iter().chain(&self.new) {
            b.extend_from_slice(&n.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> std::result::Result<Marker, crate::CodecError> {
        use crate::CodecError::*;
        if b.len() < MARKER_FIXED_BYTES + 4 || b[..8] != MARKER_MAGIC {
            return Err(BadMagic {
                what: "compaction marker",
            });
        }
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let version = u16_at(8);
        if version != MARKER_VERSION {
            return Err(BadVersion {
                what: "compaction marker",
                found: version,
            });
        }
        let (n_old, n_new) = (u16_at(10) as usize, u16_at(12) as usize);
        let len = MARKER_FIXED_BYTES + 2 * (n_old + n_new) + 4;
        if b.len() != len {
            return Err(BadField {
                what: "compaction marker length",
            });
        }
        let expected = u32::from_le_bytes([b[len - 4], b[len - 3], b[len - 2], b[len - 1]]);
        let actual = crc32fast::hash(&b[..len - 4]);
        if expected != actual {
            return Err(BadCrc { expected, actual });
        }
        let numbers: Vec<u16> = (0..n_old + n_new)
            .map(|i| u16_at(MARKER_FIXED_BYTES + 2 * i))
            .collect();
        Ok(Marker {
            compact_seq: u64_at(16),
            tombstone_horizon: u64_at(24),
            compact_id: u64_at(32),
            next_id: u32::from_le_bytes([b[40], b[41], b[42], b[43]]),
            old: numbers[..n_old].to_vec(),
            new: numbers[n_old..].to_vec(),
        })
    }

    /// Writes the marker atomically (temporary file, fsync, rename, fsync
    /// the directory): the commit point of a compaction.
    fn write(&self, dir: &Path, io: &dyn crate::io::FileIo) -> Result<()> {
        replace_file(dir, MARKER, &self.encode(), io)
    }
}

fn compact_path(dir: &Path, n: u16) -> PathBuf {
    dir.join(format!("{n}.db.compact"))
}

/// At open: finishes a committed compaction (its marker exists) by renaming
/// its outputs and removing the files it replaced, or removes the outputs of
/// one that did not commit. Returns the marker, which the caller removes
/// after its checkpoint.
pub fn finish_or_undo(dir: &Path) -> Result<Option<Marker>> {
    let path = dir.join(MARKER);
    let marker = match read_if_exists(&path)? {
        Some(b) => Some(Marker::decode(&b).map_err(|cause| Error::Corrupted {
            file: path.clone(),
            offset: 0,
            cause,
        })?),
        None => None,
    };
    let mut changed = false;
    if let Some(m) = &marker {
        for &n in &m.new {
            let from = compact_path(dir, n);
            if from.exists() {
                let to = data_path(dir, n);
                fs::rename(&from, &to)
                    .ctx(|| format!("rename {} to {}", from.display(), to.display()))?;
                changed = true;
            }
        }
        for &n in &m.old {
            let old = data_path(dir, n);
            match fs::remove_file(&old) {
                Ok(()) => changed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Io {
                        context: format!("remove {}", old.display()),
                        source: e,
                    })
                }
            }
        }
        log::info!(
            "{}: finished a compaction that committed before the process stopped \
             (removed {} old data files)",
            dir.display(),
            m.old.len()
        );
    } else {
        for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".db.compact") || name == MARKER_TMP {
                fs::remove_file(entry.path())
                    .ctx(|| format!("remove {}", entry.path().display()))?;
                log::info!(
                    "{}: removed {name}, left by a compaction that did not commit",
                    dir.display()
                );
                changed = true;
            }
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(marker)
}

/// Removes the marker once the compaction it describes is complete.
pub fn remove_marker(dir: &Path) -> Result<()> {
    let path = dir.join(MARKER);
    fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
    sync_dir(dir)
}

/// What compaction does with one record.
enum Fate {
    Keep,
    Drop,
    /// The newest version of its id is a delete no replica needs.
    DropTombstone,
}

/// Decides the fate of the record `h` at `loc` (in a file being compacted).
fn fate(
    core: &Core,
    h: &Header,
    loc: Location,
    keep: usize,
    floor: Seq,
    old: &[u16],
) -> Result<Fate> {
    let cur = core.lookup.get(h.id)?;
    if cur == loc {
        return Ok(match h.kind {
            RecordKind::Delete if h.seq <= floor => Fate::DropTombstone,
            _ => Fate::Keep,
        });
    }
    if keep <= 1 || cur.is_none() {
        return Ok(Fate::Drop);
    }
    let Some((_, mut hdr, _)) = core.current(h.id)? else {
        return Ok(Fate::Drop);
    };
    // A delete that will be dropped takes every older version with it.
    if old.contains(&cur.file) && hdr.kind == RecordKind::Delete && hdr.seq <= floor {
        return Ok(Fate::Drop);
    }
    let mut at = cur;
    for _ in 1..keep {
        match core.prev_version(&hdr, at)? {
            Some((p, _)) if p == loc => return Ok(Fate::Keep),
            Some((p, ph)) if ph.seq > h.seq => {
                at = p;
                hdr = ph;
            }
            _ => break,
        }
    }
    Ok(Fate::Drop)
}

/// The output files being written.
struct Output<'a> {
    inner: &'a Inner,
    dir: PathBuf,
    file_size: u32,
    /// Finished and current output files: number and handle.
    files: Vec<(u16, File)>,
    /// Bytes written to the current file (header included).
    len: u32,
    buf: Vec<u8>,
    /// A file number reserved for the next output file (taken under the
    /// write lock).
    spare: Option<u16>,
}

impl Output<'_> {
    /// True if a record of `len` bytes needs a new output file.
    fn needs_file(&self, len: usize) -> bool {
        self.files.is_empty() || self.len as usize + self.buf.len() + len > self.file_size as usize
    }

    /// Reserves a number for the next output file (call without a lock).
    fn reserve_spare(&mut self) -> Result<()> {
        if self.spare.is_none() {
            let mut core = self.inner.write();
            let n = core.log.free_number()?;
            core.log.reserved.push(n);
            self.spare = Some(n);
        }
        Ok(())
    }

    /// Where a record of `len` bytes with seq `seq` goes; opens a new
    /// output file (under the spare number) when the current one is full.
    fn place(&mut self, len: usize, seq: Seq) -> Result<Location> {
        if self.needs_file(len) {
            self.flush()?;
            self.reserve_spare()?;
            let n = self.spare.take().expect("a spare number is reserved");
            let path = compact_path(&self.dir, n);
            let header = FileHeader {
                file_no: n,
                first_seq: seq,
            };
            let f = create_with_header(&path, &header, &*self.inner.opts.io)?;
            if let Some((_, prev)) = self.files.last() {
                self.inner
                    .opts
                    .io
                    .sync_data(prev)
                    .ctx(|| "fsync a compaction output".into())?;
            }
            self.files.push((n, f));
            self.len = FILE_HEADER_BYTES as u32;
        }
        let (n, _) = self.files.last().expect("an output file is open");
        Ok(Location {
            file: *n,
            offset: self.len + self.buf.len() as u32,
        })
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let (n, f) = self.files.last().expect("buffered bytes have a file");
        self.inner
            .opts
            .io
            .write_at(f, &self.buf, self.len as u64)
            .ctx(|| format!("write {}", compact_path(&self.dir, *n).display()))?;
        self.len += self.buf.len() as u32;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered and fsyncs the last file and the directory.
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if let Some((_, f)) = self.files.last() {
            self.inner
                .opts
                .io
                .sync_data(f)
                .ctx(|| "fsync a compaction output".into())?;
        }
        sync_dir(&self.dir)
    }

    /// Removes the outputs of a compaction that failed before its commit.
    fn discard(&mut self) {
        for (n, _) in self.files.drain(..) {
            let _ = fs::remove_file(compact_path(&self.dir, n));
        }
        let _ = sync_dir(&self.dir);
        self.inner.write().log.reserved.clear();
    }
}

/// Runs one compaction (the caller holds `Inner::compacting`).
pub(crate) fn run(inner: &Inner) -> Result<CompactReport> {
    let t0 = Instant::now();
    let keep = inner.opts.history.max(1);
    let floor = inner.tombstone_floor();
    // 1. Seal. The fsync of the sealed file happens mostly here, without
    // the lock; the rollover then syncs only what came in between.
    inner.sync()?;
    let (old, compact_seq, next_id, bytes_before, input_bytes) = inner.mutate(|core| {
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
        let input: u64 = old
            .iter()
            .map(|&n| core.log.file(n).map_or(0, |f| f.len as u64))
            .sum();
        Ok((old, core.seq, core.next_id, bytes_before, input))
    })?;
    let mut report = CompactReport {
        bytes_before,
        files_in: old.len(),
        compact_seq,
        ..CompactReport::default()
    };
    if old.is_empty() {
        report.bytes_after = bytes_before;
        return Ok(report);
    }
    log::info!(
        "{}: compacting {} data files ({:.1} MB, records up to seq {compact_seq}; keeping {keep} \
         versions per key, deletes above seq {} )",
        inner.dir.display(),
        old.len(),
        input_bytes as f64 / 1e6,
        if floor == Seq::MAX {
            "none".to_string()
        } else {
            floor.to_string()
        }
    );
    inner.progress_set(0, input_bytes);
    let mut out = Output {
        inner,
        dir: inner.dir.clone(),
        file_size: inner.read().log.file_size,
        files: Vec::new(),
        len: 0,
        buf: Vec::new(),
        spare: None,
    };
    // 2. Copy.
    let copied = copy(inner, &old, keep, floor, &mut out, &mut report, input_bytes);
    let dropped_newest = match copied.and_then(|d| out.finish().map(|()| d)) {
        Ok(d) => d,
        Err(e) => {
            out.discard();
            inner.progress_set(0, 0);
            return Err(e);
        }
    };
    // 3. Commit.
    let new: Vec<u16> = out.files.iter().map(|(n, _)| *n).collect();
    drop(out);
    report.files_out = new.len();
    let old = old.to_vec();
    let horizon = dropped_newest.iter().map(|d| d.2).max().unwrap_or(0);
    let marker = Marker {
        compact_seq,
        tombstone_horizon: horizon.max(inner.read().tombstone_horizon),
        compact_id: crate::recovery::random_u64() | 1,
        next_id,
        old: old.clone(),
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

/// A dropped delete that was the newest version of its id: (id, location,
/// seq). Its lookup entry is cleared at commit if nothing replaced it.
type DroppedNewest = (u32, Location, Seq);

fn copy(
    inner: &Inner,
    old: &[u16],
    keep: usize,
    floor: Seq,
    out: &mut Output<'_>,
    report: &mut CompactReport,
    input_bytes: u64,
) -> Result<Vec<DroppedNewest>> {
    // Old location -> new location of copied versions, for the prev
    // pointers of newer copied versions (only when several are kept).
    let mut moved: HashMap<Location, Location> = HashMap::new();
    let mut dropped_newest = Vec::new();
    let mut done = 0u64;
    let mut last_log = Instant::now();
    let mut batch: Vec<(Location, Header)> = Vec::new();
    for &n in old {
        let (file, len, path) = {
            let core = inner.read();
            let f = core.log.file(n).expect("compacted files stay open");
            (f.file.clone(), f.len, f.path.clone())
        };
        // SAFETY: a sealed file's bytes below `len` never change, and only
        // compaction (this one; they run one at a time) removes a file.
        let map = unsafe { MmapOptions::new().len(len as usize).map(&*file) }
            .ctx(|| format!("mmap {}", path.display()))?;
        let mut off = FILE_HEADER_BYTES as u32;
        while off < len {
            // Decode and check a batch without the lock ...
            let start = off;
            batch.clear();
            while off < len && ((off - start) as usize) < COPY_BATCH_BYTES {
                let h = match record::decode(&map[off as usize..]) {
                    Ok(Some(d)) => d.header,
                    Ok(None) => {
                        return Err(Error::Corrupted {
                            file: path.clone(),
                            offset: off as u64,
                            cause: crate::CodecError::BadField {
                                what: "record runs past the end of its file",
                            },
                        })
                    }
                    Err(cause) => {
                        return Err(Error::Corrupted {
                            file: path.clone(),
                            offset: off as u64,
                            cause,
                        })
                    }
                };
                batch.push((
                    Location {
                        file: n,
                        offset: off,
                    },
                    h,
                ));
                off += h.record_len() as u32;
            }
            // ... decide under the read lock (lookups only) ...
            let fates = {
                let core = inner.read();
                batch
                    .iter()
                    .map(|(loc, h)| fate(&core, h, *loc, keep, floor, old))
                    .collect::<Result<Vec<Fate>>>()?
            };
            // ... and copy without it.
            for (&(loc, h), fate) in batch.iter().zip(fates) {
                match fate {
                    Fate::Keep => {
                        let rlen = h.record_len();
                        let prev = match keep > 1 {
                            true => moved.get(&h.prev).copied().unwrap_or(Location::NONE),
                            false => Location::NONE,
                        };
                        let at = out.place(rlen, h.seq)?;
                        let body = loc.offset as usize + RECORD_HEADER_BYTES;
                        let key = &map[body..body + h.key_len as usize];
                        let value = &map[body + h.key_len as usize..loc.offset as usize + rlen];
                        record::encode(
                            &mut out.buf,
                            &RecordRef {
                                seq: h.seq,
                                id: h.id,
                                kind: h.kind,
                                key,
                                value,
                            },
                            prev,
                        );
                        if keep > 1 {
                            moved.insert(loc, at);
                        }
                        report.kept += 1;
                    }
                    Fate::Drop => report.dropped += 1,
                    Fate::DropTombstone => {
                        report.dropped += 1;
                        report.tombstones_dropped += 1;
                        dropped_newest.push((h.id, loc, h.seq));
                    }
                }
            }
            if out.buf.len() >= OUTPUT_BUFFER_BYTES {
                out.flush()?;
            }
            done += (off - start) as u64;
            inner.progress_set(done.min(input_bytes), input_bytes);
            if last_log.elapsed() >= Duration::from_secs(PROGRESS_SECS) {
                last_log = Instant::now();
                log::info!(
                    "{}: compaction copied {:.1} of {:.1} MB ({}%)",
                    inner.dir.display(),
                    done as f64 / 1e6,
                    input_bytes as f64 / 1e6,
                    done * 100 / input_bytes.max(1)
                );
            }
        }
    }
    Ok(dropped_newest)
}

fn commit(inner: &Inner, marker: &Marker, dropped_newest: &[DroppedNewest]) -> Result<()> {
    let dir = &inner.dir;
    let io = inner.opts.io.clone();
    let (old, new) = (&marker.old[..], &marker.new[..]);
    let horizon = marker.tombstone_horizon;
    marker.write(dir, &*io)?;
    for &n in new {
        let (from, to) = (compact_path(dir, n), data_path(dir, n));
        fs::rename(&from, &to).ctx(|| format!("rename {} to {}", from.display(), to.display()))?;
    }
    sync_dir(dir)?;
    // The outputs join the log; the old files leave its order but stay
    // readable until no lookup entry points into them.
    {
        let mut core = inner.write();
        let file_size = core.log.file_size;
        for &n in new {
            let f = DataFile::open(data_path(dir, n), file_size)?;
            core.log.add(f);
        }
        for &n in old {
            core.log.retire(n);
        }
        core.log.sort_order();
        core.log.reserved.clear();
        core.tombstone_horizon = horizon;
    }
    // Move the lookup entries, a batch at a time.
    for &n in new {
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
                            crate::CodecError::BadField {
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
                break;
            }
        }
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
        fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
    }
    sync_dir(dir)?;
    remove_marker(dir)?;
    inner.write().log.reserved.retain(|n| !old.contains(n));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_every_flip_is_caught() {
        let m = Marker {
            compact_seq: 77,
            tombstone_horizon: 40,
            compact_id: 0x1234_5678_9abc_def0,
            next_id: 99,
            old: vec![0, 1, 5],
            new: vec![2, 3],
        };
        let b = m.encode();
        assert_eq!(&b[..10], b"HYPHACP\0\x01\x00");
        assert_eq!(Marker::decode(&b).unwrap(), m);
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(Marker::decode(&c).is_err(), "bit {bit}");
        }
        assert!(Marker::decode(&b[..b.len() - 1]).is_err());
    }
}
