//! Compaction, phase 2 (see `compact.rs`): deciding each record's fate and
//! copying the kept ones into the output files `N.db.compact`.
//!
//! The sealed input files are read through their own maps; the read lock is
//! held only to look up the fate of `COPY_BATCH_BYTES` of input at a time.
//! Outputs are written with `pwrite` and fsynced (each, then the directory)
//! before the commit.

use crate::dir::{create_with_header, sync_dir};
use crate::error::{CodecError, Error, IoContext, Result};
use crate::inner::Inner;
use crate::limits::FILE_HEADER_BYTES;
use crate::location::Location;
use crate::marker::compact_path;
use crate::record::{self, Header, RecordKind, RecordMeta, RecordRef, Seq};
use crate::state::Core;
use crate::stats::CompactReport;
use crate::tables::{FileHeader, DATA_VERSION};
use memmap2::{Mmap, MmapOptions};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Input bytes examined per hold of the read lock while copying.
pub const COPY_BATCH_BYTES: usize = 256 << 10;
/// Output bytes collected before one write to the output file.
const OUTPUT_BUFFER_BYTES: usize = 1 << 20;
/// Seconds between progress lines in the log.
const PROGRESS_SECS: u64 = 5;

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
pub(crate) struct Output<'a> {
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

impl<'a> Output<'a> {
    /// No output yet.
    pub(crate) fn new(inner: &'a Inner) -> Output<'a> {
        Output {
            inner,
            dir: inner.dir.clone(),
            file_size: inner.read().log.file_size,
            files: Vec::new(),
            len: 0,
            buf: Vec::new(),
            spare: None,
        }
    }

    /// Numbers of the output files, in the order written.
    pub(crate) fn numbers(&self) -> Vec<u16> {
        self.files.iter().map(|(n, _)| *n).collect()
    }

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
                version: DATA_VERSION,
                file_no: n,
                first_seq: seq,
                prev_len: 0,
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
    pub(crate) fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if let Some((_, f)) = self.files.last() {
            self.inner
                .opts
                .io
                .sync_data(f)
                .ctx(|| "fsync a compaction output".into())?;
        }
        sync_dir(&self.dir, &*self.inner.opts.io)
    }

    /// Removes the outputs of a compaction that failed before its commit.
    pub(crate) fn discard(&mut self) {
        let io = &*self.inner.opts.io;
        for (n, _) in self.files.drain(..) {
            let _ = io.remove_file(&compact_path(&self.dir, n));
        }
        let _ = sync_dir(&self.dir, io);
        self.inner.write().log.reserved.clear();
    }
}

/// A dropped delete that was the newest version of its id: (id, location,
/// seq). Its lookup entry is cleared at commit if nothing replaced it.
pub(crate) type DroppedNewest = (u32, Location, Seq);

/// Copies the kept records of the `old` files into `out`; returns the
/// dropped deletes that were the newest version of their id.
pub(crate) fn copy(
    inner: &Inner,
    old: &[u16],
    keep: usize,
    floor: Seq,
    out: &mut Output<'_>,
    report: &mut CompactReport,
    input_bytes: u64,
) -> Result<Vec<DroppedNewest>> {
    let mut job = Copy {
        inner,
        keep,
        moved: HashMap::new(),
        dropped_newest: Vec::new(),
        done: 0,
        input_bytes,
        last_log: Instant::now(),
    };
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
            off = decode_batch(&map, n, off, &path, &mut batch)?;
            // ... decide under the read lock (lookups only) ...
            let fates = {
                let core = inner.read();
                batch
                    .iter()
                    .map(|(loc, h)| fate(&core, h, *loc, keep, floor, old))
                    .collect::<Result<Vec<Fate>>>()?
            };
            // ... and copy without it.
            job.copy_batch(&map, &batch, fates, out, report)?;
            job.progress((off - start) as u64);
        }
    }
    Ok(job.dropped_newest)
}

/// Decodes and checks the records of file `n` (mapped as `map`) from `off`
/// on, up to `COPY_BATCH_BYTES` of them, into `batch`; returns where the
/// next batch starts.
fn decode_batch(
    map: &Mmap,
    n: u16,
    mut off: u32,
    path: &std::path::Path,
    batch: &mut Vec<(Location, Header)>,
) -> Result<u32> {
    let (start, len) = (off, map.len() as u32);
    batch.clear();
    while off < len && ((off - start) as usize) < COPY_BATCH_BYTES {
        let h = match record::decode(&map[off as usize..]) {
            Ok(Some(d)) => d.header,
            Ok(None) => {
                return Err(Error::Corrupted {
                    file: path.to_path_buf(),
                    offset: off as u64,
                    cause: CodecError::BadField {
                        what: "record runs past the end of its file",
                    },
                })
            }
            Err(cause) => {
                return Err(Error::Corrupted {
                    file: path.to_path_buf(),
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
    Ok(off)
}

/// The state of one compaction's copy phase.
struct Copy<'a> {
    inner: &'a Inner,
    keep: usize,
    /// Old location -> new location of copied versions, for the prev
    /// pointers of newer copied versions (only when several are kept).
    moved: HashMap<Location, Location>,
    dropped_newest: Vec<DroppedNewest>,
    /// Input bytes examined.
    done: u64,
    input_bytes: u64,
    last_log: Instant,
}

impl Copy<'_> {
    /// Copies the records of `batch` whose fate is `Keep`.
    fn copy_batch(
        &mut self,
        map: &Mmap,
        batch: &[(Location, Header)],
        fates: Vec<Fate>,
        out: &mut Output<'_>,
        report: &mut CompactReport,
    ) -> Result<()> {
        for (&(loc, h), fate) in batch.iter().zip(fates) {
            match fate {
                Fate::Keep => {
                    let rlen = h.record_len();
                    let prev = match self.keep > 1 {
                        true => self.moved.get(&h.prev).copied().unwrap_or(Location::NONE),
                        false => Location::NONE,
                    };
                    let at = out.place(rlen, h.seq)?;
                    let body = loc.offset as usize + h.header_len();
                    let key = &map[body..body + h.key_len as usize];
                    let value = &map[body + h.key_len as usize..loc.offset as usize + rlen];
                    // Compaction reads only sealed files, whose batches are
                    // whole: the copy drops superseded records of a batch,
                    // so its records no longer mark one.
                    let meta = RecordMeta {
                        batch_more: false,
                        ..h.meta
                    };
                    let r = RecordRef {
                        seq: h.seq,
                        id: h.id,
                        kind: h.kind,
                        key,
                        value,
                        meta,
                    };
                    record::encode(&mut out.buf, &r, prev);
                    if self.keep > 1 {
                        self.moved.insert(loc, at);
                    }
                    report.kept += 1;
                }
                Fate::Drop => report.dropped += 1,
                Fate::DropTombstone => {
                    report.dropped += 1;
                    report.tombstones_dropped += 1;
                    self.dropped_newest.push((h.id, loc, h.seq));
                }
            }
        }
        if out.buf.len() >= OUTPUT_BUFFER_BYTES {
            out.flush()?;
        }
        Ok(())
    }

    /// Counts `bytes` more input examined; logs progress now and then.
    fn progress(&mut self, bytes: u64) {
        self.done += bytes;
        let (done, total) = (self.done, self.input_bytes);
        self.inner.progress_set(done.min(total), total);
        if self.last_log.elapsed() >= Duration::from_secs(PROGRESS_SECS) {
            self.last_log = Instant::now();
            log::info!(
                "{}: compaction copied {:.1} of {:.1} MB ({}%)",
                self.inner.dir.display(),
                done as f64 / 1e6,
                total as f64 / 1e6,
                done * 100 / total.max(1)
            );
        }
    }
}
