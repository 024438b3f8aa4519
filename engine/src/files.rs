//! The append-only data files and the write buffer in front of the newest.
//!
//! Every data file is mapped read-only once, `file_size` bytes long (an
//! address-space reservation; only bytes below the written length are ever
//! read). Appends go to `buf`, which holds the bytes that follow the newest
//! file's written length; it is written with one `pwrite` when full, on sync,
//! at a checkpoint and on close. Readers read the buffer for locations past
//! the written length, so a record is readable as soon as it is appended.

use crate::dir::{create_with_header, data_path, sync_dir};
use crate::error::{Error, IoContext, Result};
use crate::io::{FileIo, OpenMode};
use crate::limits::{FILE_HEADER_BYTES, FILE_NUMBER_MAX, RECORD_HEADER_BYTES};
use crate::location::Location;
use crate::record::{self, Decoded, Seq};
use crate::tables::FileHeader;
use memmap2::{Mmap, MmapOptions};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes the write buffer collects before it is written out. The writer
/// that fills it writes it, holding the write lock: at 1 MiB that `pwrite`
/// took 3-10 ms on a small VM (a stall every ~6,000 writes for a master
/// serving from one thread); 64 KiB costs a syscall per ~300 small records
/// and ran single-writer puts faster too (fits in L2).
pub const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// With [`Log::prealloc`] (`Fsync::Always`), the newest data file is written
/// ahead with zeros in steps of this many bytes. An fdatasync that changes a
/// file's size also writes its inode (with a journal, a journal commit); one into
/// space already written does not: 4,300-4,800 against 6,600-8,200 small
/// append+fdatasync rounds per second on the development VM. A step costs
/// one zero `pwrite` per ~1,300 records of 200 bytes.
pub const PREALLOC_BYTES: u32 = 256 << 10;

/// The fsyncs a rollover owes: the sealed file's tail (and its trimmed
/// size), the new file's header and the directory entry that names it.
/// They run without the write lock — on the checkpoint thread, or first in
/// whatever makes the log durable next (a commit, `sync`, a checkpoint).
///
/// Invariant: at most one rollover's fsyncs are pending (`Log::roll` runs
/// the previous ones first if they are still owed), and nothing is
/// acknowledged durable or named by a checkpoint past a pending seal. So
/// after a crash only the newest file, and the tail of the one before it,
/// can miss bytes; recovery cuts the log at the first gap and keeps the
/// bytes after it aside, which leaves a prefix of the writes.
#[derive(Clone, Debug)]
pub struct Seal {
    /// The file that was full.
    pub sealed: Arc<File>,
    /// The file that follows it.
    pub created: Arc<File>,
    /// Counts rollovers: which one this is.
    pub number: u64,
}

impl Seal {
    /// Runs the fsyncs (sealed file first, so a crash in between leaves at
    /// most a cut, never a hole followed by records).
    pub fn sync(&self, dir: &Path, io: &dyn FileIo) -> Result<()> {
        io.sync_data(&self.sealed)
            .ctx(|| format!("fsync a sealed data file in {}", dir.display()))?;
        io.sync_data(&self.created)
            .ctx(|| format!("fsync a new data file in {}", dir.display()))?;
        sync_dir(dir, io)
    }
}

pub struct DataFile {
    pub file: Arc<File>,
    map: Mmap,
    /// Bytes written to the file (header included).
    pub len: u32,
    /// The file's length on disk: `len` plus zeros written ahead
    /// ([`PREALLOC_BYTES`]), which are not part of the log.
    pub alloc: u32,
    pub header: FileHeader,
    pub path: PathBuf,
}

impl DataFile {
    /// Opens an existing data file of `len` bytes.
    pub fn open(path: PathBuf, file_size: u32, io: &dyn FileIo) -> Result<DataFile> {
        let file = io
            .open(&path, OpenMode::Existing)
            .ctx(|| format!("open {}", path.display()))?;
        let len = file
            .metadata()
            .ctx(|| format!("stat {}", path.display()))?
            .len();
        let len = u32::try_from(len).map_err(|_| Error::BadOptions {
            detail: format!(
                "{} is {len} bytes, beyond the 4 GiB a data file may hold",
                path.display()
            ),
        })?;
        let map = map_file(&file, file_size.max(len), &path)?;
        // A torn or garbled header (a crash while the file was created) is
        // marked with an impossible number; recovery decides what it means.
        let header = match FileHeader::decode(&map[..(len as usize).min(FILE_HEADER_BYTES)]) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => FileHeader {
                file_no: u16::MAX,
                first_seq: 0,
            },
        };
        Ok(DataFile {
            file: Arc::new(file),
            map,
            len,
            alloc: len,
            header,
            path,
        })
    }

    /// Creates data file `n` with its header, fsyncs it and the directory.
    pub fn create(
        dir: &Path,
        n: u16,
        first_seq: Seq,
        file_size: u32,
        io: &dyn FileIo,
    ) -> Result<DataFile> {
        let f = DataFile::create_unsynced(dir, n, first_seq, file_size, io)?;
        io.sync_data(&f.file)
            .ctx(|| format!("fsync {}", f.path.display()))?;
        sync_dir(dir, io)?;
        Ok(f)
    }

    /// Creates data file `n` with its header; the caller makes the file and
    /// its directory entry durable (see [`Seal`]).
    pub fn create_unsynced(
        dir: &Path,
        n: u16,
        first_seq: Seq,
        file_size: u32,
        io: &dyn FileIo,
    ) -> Result<DataFile> {
        let path = data_path(dir, n);
        let header = FileHeader {
            file_no: n,
            first_seq,
        };
        let file = create_with_header(&path, &header, io)?;
        let map = map_file(&file, file_size, &path)?;
        Ok(DataFile {
            file: Arc::new(file),
            map,
            len: FILE_HEADER_BYTES as u32,
            alloc: FILE_HEADER_BYTES as u32,
            header,
            path,
        })
    }

    /// The written bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map[..self.len as usize]
    }
}

fn map_file(file: &File, len: u32, path: &Path) -> Result<Mmap> {
    // SAFETY: the database directory is locked (LOCK) against other hypha
    // processes, and the engine only reads bytes below the length it wrote
    // itself, so the mapped bytes never change under a reader and no page past
    // the end of the file is touched. Truncation below the written length
    // happens only at open, before any reader exists, and re-creates the
    // mapping; trimming zeros written ahead (`Log::trim`) removes only bytes
    // past it.
    unsafe { MmapOptions::new().len(len as usize).map(file) }
        .ctx(|| format!("mmap {}", path.display()))
}

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
    pub buf: Vec<u8>,
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
}

impl Log {
    /// A log of the given files (any order; sorted here by first seq).
    pub fn new(dir: PathBuf, file_size: u32, files: Vec<DataFile>, io: Arc<dyn FileIo>) -> Log {
        let mut log = Log {
            dir,
            file_size,
            slots: Vec::new(),
            order: Vec::new(),
            reserved: Vec::new(),
            buf: Vec::new(),
            io,
            prealloc: false,
            appended: 0,
            generation: 0,
            unsealed: None,
            rollovers: 0,
            seal_stalls: 0,
        };
        for f in files {
            log.order.push(f.header.file_no);
            log.put_slot(f);
        }
        log.sort_order();
        log
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
        self.slots.get_mut(n as usize).and_then(|s| s.take())
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

    fn last(&self) -> &DataFile {
        self.file(self.last_no())
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
            offset: self.last().len + self.buf.len() as u32,
        }
    }

    /// Readable end of file `n`: written bytes plus, for the newest, the buffer.
    pub fn readable_end(&self, n: u16) -> u32 {
        let Some(f) = self.file(n) else { return 0 };
        if n == self.last_no() {
            f.len + self.buf.len() as u32
        } else {
            f.len
        }
    }

    /// The readable bytes of file `loc.file` from `loc.offset` on (up to the
    /// end of the written part, or of the buffer).
    pub fn tail(&self, loc: Location) -> &[u8] {
        let Some(f) = self.file(loc.file) else {
            return &[];
        };
        let off = loc.offset as usize;
        if off < f.len as usize {
            &f.bytes()[off..]
        } else if loc.file == self.last_no() && off - (f.len as usize) < self.buf.len() {
            &self.buf[off - f.len as usize..]
        } else {
            &[]
        }
    }

    /// Decodes and checks the record at `loc`.
    pub fn record(&self, loc: Location) -> Result<Decoded<'_>> {
        let bytes = self.tail(loc);
        match record::decode(bytes) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(self.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "record runs past the end of its file",
                },
            )),
            Err(cause) => Err(self.corrupted(loc, cause)),
        }
    }

    /// Decodes the header and key at `loc` without the CRC check (probing the
    /// key index compares keys this way; the record returned is checked).
    pub fn header_and_key(&self, loc: Location) -> Option<(record::Header, &[u8])> {
        let bytes = self.tail(loc);
        let h = record::decode_header(bytes).ok()??;
        let key = bytes.get(
            crate::limits::RECORD_HEADER_BYTES
                ..crate::limits::RECORD_HEADER_BYTES + h.key_len as usize,
        )?;
        Some((h, key))
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
    /// the newest is full; returns where the record goes.
    pub fn reserve(&mut self, len: usize, next_seq: Seq, single_file: bool) -> Result<Location> {
        let room = self.file_size as usize - FILE_HEADER_BYTES;
        if len > room {
            return Err(Error::RecordTooLarge { len, room });
        }
        let end = self.end();
        if end.offset as usize + len <= self.file_size as usize {
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
        log::info!(
            "data file {} full; continuing in {}",
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
        let n = self.free_number()?;
        let f = DataFile::create_unsynced(&self.dir, n, next_seq, self.file_size, &*self.io)?;
        self.rollovers += 1;
        self.unsealed = Some(Seal {
            sealed: full,
            created: f.file.clone(),
            number: self.rollovers,
        });
        self.add(f);
        Ok(())
    }

    /// True if a record with `bytes` of key and value would roll over
    /// while the last rollover's fsyncs are still owed.
    pub fn roll_must_wait(&self, bytes: usize) -> bool {
        self.unsealed.is_some()
            && (self.end().offset as usize)
                .saturating_add(RECORD_HEADER_BYTES)
                .saturating_add(bytes)
                > self.file_size as usize
    }

    /// Rollover `number`'s fsyncs ran: it is no longer owed.
    pub fn sealed(&mut self, number: u64) {
        if self.unsealed.as_ref().is_some_and(|s| s.number == number) {
            self.unsealed = None;
        }
    }

    /// Writes the buffer to the newest file. On error the buffer is kept, so
    /// readers still see the records, and the caller stops accepting writes.
    pub fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = self.last_no() as usize;
        let last = self.slots[n]
            .as_mut()
            .expect("the log always has a data file");
        self.io
            .write_at(&last.file, &self.buf, last.len as u64)
            .ctx(|| {
                format!(
                    "write {} bytes to {} at {}",
                    self.buf.len(),
                    last.path.display(),
                    last.len
                )
            })?;
        last.len += self.buf.len() as u32;
        self.buf.clear();
        if self.buf.capacity() > 2 * WRITE_BUFFER_BYTES {
            self.buf.shrink_to(WRITE_BUFFER_BYTES);
        }
        if self.prealloc && last.len > last.alloc {
            // The file grew: write the next step of zeros now, so the
            // fdatasyncs of the next ~PREALLOC_BYTES of records find its size
            // unchanged. The step is aligned, so it ends where the next
            // begins; it stops at file_size, where the file rolls over.
            let to = (last.len / PREALLOC_BYTES + 1)
                .saturating_mul(PREALLOC_BYTES)
                .min(self.file_size);
            if to > last.len {
                let zeros = vec![0u8; (to - last.len) as usize];
                self.io
                    .write_at(&last.file, &zeros, last.len as u64)
                    .ctx(|| {
                        format!(
                            "write {} zero bytes ahead in {} at {}",
                            zeros.len(),
                            last.path.display(),
                            last.len
                        )
                    })?;
            }
            last.alloc = to.max(last.len);
        }
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
        let n = self.last_no() as usize;
        let last = self.slots[n]
            .as_mut()
            .expect("the log always has a data file");
        if last.alloc > last.len {
            self.io
                .set_len(&last.file, last.len as u64)
                .ctx(|| format!("truncate {} to {}", last.path.display(), last.len))?;
            last.alloc = last.len;
        }
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
        let f = DataFile::open(path, self.file_size, &*self.io)?;
        self.slots[n as usize] = Some(f);
        Ok(())
    }

    /// Bytes written to the data files (live and retired).
    pub fn data_bytes(&self) -> u64 {
        self.all().map(|f| f.len as u64).sum::<u64>() + self.buf.len() as u64
    }
}
