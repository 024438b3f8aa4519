//! The append-only data files in log order and the write buffer in front of
//! the newest.
//!
//! Appends go to `buf`, which holds the bytes that follow the newest file's
//! written length (and the buffer in flight, if any). A full buffer is
//! written without the write lock (see `outbuf`); a rollover, a
//! checkpoint's start and close write what is left under it. Readers read
//! the buffers for locations past the written length, so a record is
//! readable as soon as it is appended.

pub use crate::datafile::{DataFile, Seal};
use crate::dir::data_path;
use crate::error::{Error, IoContext, Result};
use crate::io::FileIo;
use crate::limits::{
    FILE_HEADER_BYTES, FILE_NUMBER_MAX, RECORD_EXT_BYTES_MAX, RECORD_HEADER_BYTES,
    SEALED_MAP_BYTES_DEFAULT,
};
use crate::location::Location;
use crate::maps::MapBudget;
use crate::outbuf::{lock, FlushJob, Inflight, Target, Written};
use crate::outbuf::{WRITE_BUFFER_BYTES, WRITE_BUFFER_MAX};
use crate::record::Seq;
use crate::seek::SeekMarks;
use crate::tables::DATA_VERSION;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The data files plus the write buffer.
///
/// File numbers are names, not positions: the log order is the order of the
/// files' `first_seq`, and compaction writes its output under free numbers.
/// `slots` holds every open file by number — the live ones (in `order`) and,
/// while a compaction commits, the retired ones it replaces, which stay
/// readable until no lookup entry points into them.
pub struct Log {
    pub dir: PathBuf,
    pub file_size: u32,
    slots: Vec<Option<DataFile>>,
    /// Live files in log order; the last is the one appended to.
    pub order: Vec<u16>,
    /// Numbers taken by a running compaction's output files.
    pub reserved: Vec<u16>,
    /// Records appended after the buffer in flight (see `outbuf`).
    pub buf: Vec<u8>,
    /// The buffer being written out without the write lock, if any.
    pub inflight: Option<Inflight>,
    /// The memory of the last buffer that landed, for the next one.
    spare: Vec<u8>,
    /// Held across every write into the newest file (see `outbuf`).
    pub out: Arc<Mutex<Written>>,
    pub io: Arc<dyn FileIo>,
    /// Write zeros ahead of the newest file's end ([`PREALLOC_BYTES`]), so
    /// that a commit's fdatasync does not change the file's size. Set under
    /// `Fsync::Always`, where every write pays an fdatasync.
    pub prealloc: bool,
    /// Bytes appended since open: group commit compares positions in it.
    pub appended: u64,
    /// Changes whenever files leave the log order (a compaction commits), so
    /// an iterator holding a file number knows to find its place again.
    pub generation: u64,
    /// The fsyncs the last rollover still owes, if any.
    pub unsealed: Option<Seal>,
    /// Rollovers since open.
    pub rollovers: u64,
    /// Rollovers that found the previous one's fsyncs still owed and ran
    /// them under the write lock (a data file filled faster than the
    /// previous one was synced).
    pub seal_stalls: u64,
    /// Where seqs are in the files, noted by iterators (see `seek`).
    pub marks: Mutex<SeekMarks>,
    /// Address space for sealed files' mappings (see `maps`).
    pub maps: Arc<MapBudget>,
    /// The last record appended is marked `batch_more`: an atomic batch is
    /// being appended, and nothing else may be until it ends (a mutation
    /// that fails half way through one latches the database for good).
    pub batch_open: bool,
}

impl Log {
    /// A log of the given files (any order; sorted here by first seq), the
    /// newest mapped.
    pub fn new(
        dir: PathBuf,
        file_size: u32,
        files: Vec<DataFile>,
        io: Arc<dyn FileIo>,
    ) -> Result<Log> {
        let mut log = Log {
            dir,
            file_size,
            slots: Vec::new(),
            order: Vec::new(),
            reserved: Vec::new(),
            buf: Vec::new(),
            inflight: None,
            spare: Vec::new(),
            out: Arc::default(),
            io,
            prealloc: false,
            appended: 0,
            generation: 0,
            unsealed: None,
            rollovers: 0,
            seal_stalls: 0,
            marks: Mutex::default(),
            maps: Arc::new(MapBudget::new(SEALED_MAP_BYTES_DEFAULT)),
            batch_open: false,
        };
        for f in files {
            log.order.push(f.header.file_no);
            log.put_slot(f);
        }
        log.sort_order();
        log.map_newest()?;
        Ok(log)
    }

    /// Maps the newest file at `file_size` (giving back what a sealed
    /// mapping of it had charged).
    fn map_newest(&mut self) -> Result<()> {
        let file_size = self.file_size;
        let released = self.last_mut().map_newest(file_size)?;
        self.maps.release(released);
        Ok(())
    }

    /// Unmaps the least recently read sealed files until their mappings
    /// take at most half the budget, if a read asked for it.
    pub fn unmap_cold(&mut self) {
        if !self.maps.begin_round() {
            return;
        }
        let last = self.last_no() as usize;
        let mut mapped: Vec<(usize, usize)> = (self.slots.iter().enumerate())
            .filter(|&(n, f)| n != last && f.as_ref().is_some_and(|f| f.charged() > 0))
            .map(|(n, f)| (f.as_ref().map_or(0, |f| f.used()), n))
            .collect();
        mapped.sort_unstable();
        let keep = self.maps.max() / 2;
        for (_, n) in mapped {
            if self.maps.bytes() <= keep {
                break;
            }
            if let Some(f) = self.slots[n].as_mut() {
                let released = f.unmap();
                self.maps.release(released);
            }
        }
    }

    /// Gives back what file `f` had charged to the budget (it is closed).
    fn drop_file(&self, mut f: DataFile) -> DataFile {
        self.maps.release(f.unmap());
        f
    }

    fn put_slot(&mut self, f: DataFile) {
        let n = f.header.file_no as usize;
        if self.slots.len() <= n {
            self.slots.resize_with(n + 1, || None);
        }
        self.slots[n] = Some(f);
    }

    /// Sorts the live files by first seq (file number breaks ties).
    pub fn sort_order(&mut self) {
        let slots = &self.slots;
        self.order.sort_by_key(|&n| {
            let f = slots[n as usize].as_ref().expect("ordered file is open");
            (f.header.first_seq, n)
        });
    }

    /// Adds an open file to the live files (the caller keeps the order).
    pub fn add(&mut self, f: DataFile) {
        self.order.push(f.header.file_no);
        self.put_slot(f);
    }

    /// Takes file `n` out of the live order; it stays readable by number.
    pub fn retire(&mut self, n: u16) {
        self.order.retain(|&m| m != n);
        self.generation += 1;
    }

    /// Closes file `n` (no lookup entry may point into it any more).
    pub fn close_file(&mut self, n: u16) -> Option<DataFile> {
        self.order.retain(|&m| m != n);
        let f = self.slots.get_mut(n as usize).and_then(|s| s.take())?;
        Some(self.drop_file(f))
    }

    /// File `n`, live or retired.
    pub fn file(&self, n: u16) -> Option<&DataFile> {
        self.slots.get(n as usize).and_then(|s| s.as_ref())
    }

    /// Every open file, live or retired.
    pub fn all(&self) -> impl Iterator<Item = &DataFile> + '_ {
        self.slots.iter().flatten()
    }

    /// Where file `n` is in the log order.
    pub fn position(&self, n: u16) -> Option<usize> {
        self.order.iter().position(|&m| m == n)
    }

    /// The live file after `n` in log order.
    pub fn next_after(&self, n: u16) -> Option<u16> {
        let i = self.position(n)?;
        self.order.get(i + 1).copied()
    }

    pub(crate) fn last(&self) -> &DataFile {
        self.file(self.last_no())
            .expect("the log always has a data file")
    }

    pub(crate) fn last_mut(&mut self) -> &mut DataFile {
        let n = self.last_no() as usize;
        self.slots[n]
            .as_mut()
            .expect("the log always has a data file")
    }

    /// Number of the file appended to.
    pub fn last_no(&self) -> u16 {
        *self.order.last().expect("the log always has a data file")
    }

    /// The lowest number no open file and no running compaction uses.
    pub fn free_number(&self) -> Result<u16> {
        (0..=FILE_NUMBER_MAX)
            .find(|&n| self.file(n).is_none() && !self.reserved.contains(&n))
            .ok_or_else(|| Error::Full {
                reason: format!(
                    "all {} data file numbers are in use",
                    FILE_NUMBER_MAX as u32 + 1
                ),
            })
    }

    /// Where the next record goes (if it fits the newest file).
    pub fn end(&self) -> Location {
        Location {
            file: self.last_no(),
            offset: self.last().len + self.unwritten(),
        }
    }

    /// Readable end of file `n`: written bytes plus, for the newest, the
    /// buffers.
    pub fn readable_end(&self, n: u16) -> u32 {
        let Some(f) = self.file(n) else { return 0 };
        if n == self.last_no() {
            f.len + self.unwritten()
        } else {
            f.len
        }
    }

    pub fn corrupted(&self, loc: Location, cause: crate::CodecError) -> Error {
        let file = self
            .file(loc.file)
            .map(|f| f.path.clone())
            .unwrap_or_else(|| data_path(&self.dir, loc.file));
        Error::Corrupted {
            file,
            offset: loc.offset as u64,
            cause,
        }
    }

    /// Makes room for a record of `len` bytes, rolling over to a new file if
    /// the newest is full, or if it is a format-1 file and the record has
    /// optional fields (`v2`; a format-1 file holds format-1 records only,
    /// unless keysize < 6 allows no other file); returns where it goes.
    pub fn reserve(
        &mut self,
        len: usize,
        next_seq: Seq,
        single_file: bool,
        v2: bool,
    ) -> Result<Location> {
        let room = self.file_size as usize - FILE_HEADER_BYTES;
        if len > room {
            return Err(Error::RecordTooLarge { len, room });
        }
        let end = self.end();
        let upgrade = v2 && !single_file && self.last().header.version < DATA_VERSION;
        if end.offset as usize + len <= self.file_size as usize && !upgrade {
            return Ok(end);
        }
        if single_file {
            return Err(Error::Full {
                reason: format!(
                    "keysize < 6 addresses only data file 0 and it holds {} of file_size {} bytes; \
                     use keysize 6 for more than one data file",
                    end.offset, self.file_size
                ),
            });
        }
        self.roll(next_seq)?;
        let why = match upgrade {
            true => "is format 1 and a record has a term or other optional fields",
            false => "full",
        };
        log::info!(
            "data file {} {why}; continuing in {}",
            end.file,
            self.last().path.display()
        );
        Ok(self.end())
    }

    /// Seals the newest file and starts a new one whose records have seqs
    /// from `next_seq` on. No fsync runs here (the caller holds the write
    /// lock): the rollover's fsyncs are left in `unsealed` (see [`Seal`]),
    /// unless the previous rollover's are still owed — those run first.
    pub fn roll(&mut self, next_seq: Seq) -> Result<()> {
        self.trim()?;
        if let Some(owed) = self.unsealed.take() {
            self.seal_stalls += 1;
            log::debug!(
                "{}: a data file filled before the previous was synced",
                self.dir.display()
            );
            if let Err(e) = owed.sync(&self.dir, &*self.io) {
                self.unsealed = Some(owed);
                return Err(e);
            }
        }
        let full = self.last().file.clone();
        // Sealed: readers map it again at its length, within the budget.
        self.last_mut().unmap();
        let n = self.free_number()?;
        let sealed_len = self.last().len;
        let f = DataFile::create_unsynced(
            &self.dir,
            n,
            next_seq,
            sealed_len,
            self.file_size,
            &*self.io,
        )?;
        self.rollovers += 1;
        self.unsealed = Some(Seal {
            sealed: full,
            created: f.file.clone(),
            number: self.rollovers,
        });
        self.add(f);
        Ok(())
    }

    /// True if a record with `bytes` of key and value might roll over
    /// while the last rollover's fsyncs are still owed (counting its
    /// optional fields at their longest).
    pub fn roll_must_wait(&self, bytes: usize) -> bool {
        self.unsealed.is_some()
            && (self.end().offset as usize)
                .saturating_add(RECORD_HEADER_BYTES + RECORD_EXT_BYTES_MAX)
                .saturating_add(bytes)
                > self.file_size as usize
    }

    /// Rollover `number`'s fsyncs ran: it is no longer owed.
    pub fn sealed(&mut self, number: u64) {
        if self.unsealed.as_ref().is_some_and(|s| s.number == number) {
            self.unsealed = None;
        }
    }

    /// The write of the buffer in flight, or else of the buffer (which goes
    /// in flight); `None` if both are empty. Runs under the write lock, and
    /// only moves memory.
    pub fn detach(&mut self) -> Option<FlushJob> {
        if self.inflight.is_none() {
            if self.buf.is_empty() {
                return None;
            }
            let next = match self.spare.capacity() {
                0 => Vec::with_capacity(WRITE_BUFFER_BYTES),
                _ => std::mem::take(&mut self.spare),
            };
            let bytes = std::mem::replace(&mut self.buf, next);
            self.inflight = Some(Inflight {
                epoch: self.rollovers,
                at: self.last().len,
                bytes: Arc::new(bytes),
            });
        }
        let inf = self.inflight.as_ref()?;
        let last = self.last();
        Some(FlushJob {
            epoch: inf.epoch,
            file: last.file.clone(),
            path: last.path.clone(),
            at: inf.at,
            alloc: last.alloc,
            bytes: inf.bytes.clone(),
            prealloc: self.prealloc,
            file_size: self.file_size,
            out: self.out.clone(),
            io: self.io.clone(),
        })
    }

    /// Publishes a [`FlushJob`] that succeeded (under the write lock), if
    /// its buffer is still the one in flight; `alloc` is what its `write`
    /// returned.
    /// Its buffer becomes the next one's memory if nothing else holds it.
    pub fn landed(&mut self, job: FlushJob, alloc: u32) {
        let ours = self
            .inflight
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(&i.bytes, &job.bytes));
        if ours {
            self.inflight = None;
            let file_size = self.file_size;
            let last = self.last_mut();
            last.len = job.at + job.bytes.len() as u32;
            last.alloc = last.alloc.max(alloc);
            last.cover_or_read(file_size);
            if let Ok(mut spare) = Arc::try_unwrap(job.bytes) {
                spare.clear();
                self.spare = spare;
            }
        }
    }

    /// True if the buffer outgrew [`WRITE_BUFFER_MAX`] while another is in
    /// flight: the writer helps write that one out first.
    pub fn out_must_wait(&self) -> bool {
        self.inflight.is_some() && self.buf.len() >= WRITE_BUFFER_MAX
    }

    /// Bytes appended but not yet published as written (in flight and
    /// buffered).
    pub fn unwritten(&self) -> u32 {
        let inflight = self.inflight.as_ref().map_or(0, |i| i.bytes.len());
        (inflight + self.buf.len()) as u32
    }

    /// Writes the buffer in flight and the buffer to the newest file, under
    /// the write lock (a rollover, a checkpoint's start, close). On error
    /// both are kept, so readers still see the records, and the caller stops
    /// accepting writes.
    pub fn flush(&mut self) -> Result<()> {
        if self.inflight.is_none() && self.buf.is_empty() {
            return Ok(());
        }
        let out = self.out.clone();
        let mut w = lock(&out);
        let (len, alloc) = (self.last().len, self.last().alloc);
        let current = w.track(self.rollovers, len, alloc);
        assert!(current, "no write is ahead of the newest file");
        let last = self.last();
        let to = Target {
            io: &*self.io,
            file: &last.file,
            path: &last.path,
            prealloc: self.prealloc,
            file_size: self.file_size,
        };
        let mut end = len;
        if let Some(inf) = &self.inflight {
            end = inf.at + inf.bytes.len() as u32;
            if w.len < end {
                w.put(&to, &inf.bytes)?;
            }
        }
        if !self.buf.is_empty() {
            w.put(&to, &self.buf)?;
            end = w.len;
        }
        self.inflight = None;
        self.buf.clear();
        if self.buf.capacity() > 2 * WRITE_BUFFER_BYTES {
            self.buf.shrink_to(WRITE_BUFFER_BYTES);
        }
        let alloc = w.alloc;
        let file_size = self.file_size;
        let last = self.last_mut();
        last.len = end;
        last.alloc = alloc;
        last.cover_or_read(file_size);
        Ok(())
    }

    /// Writes the buffer and cuts the zeros written ahead off the newest
    /// file, so that it ends at its last record (when it is sealed, and on a
    /// clean close). The caller fdatasyncs it, which makes the new size
    /// durable.
    pub fn trim(&mut self) -> Result<()> {
        // Writing the buffer must not write zeros ahead only to cut them.
        let prealloc = std::mem::replace(&mut self.prealloc, false);
        let flushed = self.flush();
        self.prealloc = prealloc;
        flushed?;
        let out = self.out.clone();
        let mut w = lock(&out);
        let io = self.io.clone();
        let last = self.last_mut();
        if last.alloc > last.len {
            io.set_len(&last.file, last.len as u64)
                .ctx(|| format!("truncate {} to {}", last.path.display(), last.len))?;
            last.alloc = last.len;
        }
        *w = Written {
            epoch: Some(self.rollovers),
            len: self.last().len,
            alloc: self.last().alloc,
        };
        Ok(())
    }

    /// Handles of the live files from `from` (a file number) to the newest,
    /// in log order, for fsync; all of them if `from` is not live.
    pub fn files_from(&self, from: u16) -> Vec<Arc<File>> {
        let i = self.position(from).unwrap_or(0);
        self.order[i..]
            .iter()
            .map(|&n| self.file(n).expect("ordered file is open").file.clone())
            .collect()
    }

    /// The newest file's handle.
    pub fn active_file(&self) -> Arc<File> {
        self.last().file.clone()
    }

    /// Replaces file `n` with a fresh handle (after truncation).
    pub fn reopen(&mut self, n: u16) -> Result<()> {
        let path = self.file(n).expect("reopened file is open").path.clone();
        let f = DataFile::open(path, &*self.io)?;
        if let Some(old) = self.slots[n as usize].replace(f) {
            self.drop_file(old);
        }
        if n == self.last_no() {
            self.map_newest()?;
        }
        Ok(())
    }

    /// Bytes written to the data files (live and retired).
    pub fn data_bytes(&self) -> u64 {
        self.all().map(|f| f.len as u64).sum::<u64>() + self.unwritten() as u64
    }
}
