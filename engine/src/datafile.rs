//! One data file: its handle, its mapping and its header; and the fsyncs a
//! rollover owes.
//!
//! The newest data file is mapped a step (`NEWEST_MAP_STEP_BYTES`) beyond
//! its written length, at most `file_size`, and the mapping grows as the
//! file does (only bytes below the written length are ever read). A sealed file is mapped at its length only while it is read often
//! enough to stay within the log's budget (see `maps`), and read with
//! `pread` otherwise.

use crate::dir::{create_with_header, data_path, sync_dir};
use crate::error::{Error, IoContext, Result};
use crate::io::{FileIo, OpenMode};
use crate::limits::{FILE_HEADER_BYTES, NEWEST_MAP_STEP_BYTES};
use crate::record::Seq;
use crate::tables::{FileHeader, DATA_VERSION};
use memmap2::{Mmap, MmapOptions};
use std::fs::File;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

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
    /// The mapping readers read, if any: the newest file's at `file_size`,
    /// a sealed file's at its length.
    map: OnceLock<Mmap>,
    /// Bytes of `map` charged to the log's budget (a sealed file's; the
    /// newest file's mapping is not charged).
    charged: AtomicUsize,
    /// The budget's clock when a read last used `map` (`MapBudget::now`).
    used: AtomicUsize,
    /// Bytes written to the file (header included).
    pub len: u32,
    /// The file's length on disk: `len` plus zeros written ahead
    /// ([`PREALLOC_BYTES`]), which are not part of the log.
    pub alloc: u32,
    pub header: FileHeader,
    pub path: PathBuf,
}

impl DataFile {
    /// Opens an existing data file, unmapped.
    pub fn open(path: PathBuf, io: &dyn FileIo) -> Result<DataFile> {
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
        let mut head = vec![0; (len as usize).min(FILE_HEADER_BYTES)];
        file.read_exact_at(&mut head, 0)
            .ctx(|| format!("read the header of {}", path.display()))?;
        // A torn or garbled header (a crash while the file was created) is
        // marked with an impossible number; recovery decides what it means.
        let header = match FileHeader::decode(&head) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => FileHeader {
                version: DATA_VERSION,
                file_no: u16::MAX,
                first_seq: 0,
                prev_len: 0,
            },
        };
        Ok(DataFile {
            file: Arc::new(file),
            map: OnceLock::new(),
            charged: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
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
        let f = DataFile::create_unsynced(dir, n, first_seq, 0, file_size, io)?;
        io.sync_data(&f.file)
            .ctx(|| format!("fsync {}", f.path.display()))?;
        sync_dir(dir, io)?;
        Ok(f)
    }

    /// Creates data file `n` with its header (`prev_len`: the length of the
    /// file a rollover sealed, see `FileHeader::prev_len`); the caller makes
    /// the file and its directory entry durable (see [`Seal`]).
    pub fn create_unsynced(
        dir: &Path,
        n: u16,
        first_seq: Seq,
        prev_len: u32,
        file_size: u32,
        io: &dyn FileIo,
    ) -> Result<DataFile> {
        let path = data_path(dir, n);
        let header = FileHeader {
            version: DATA_VERSION,
            file_no: n,
            first_seq,
            prev_len,
        };
        let file = create_with_header(&path, &header, io)?;
        let map = map_file(
            &file,
            newest_map_len(FILE_HEADER_BYTES as u32, file_size),
            &path,
        )?;
        Ok(DataFile {
            file: Arc::new(file),
            map: OnceLock::from(map),
            charged: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
            len: FILE_HEADER_BYTES as u32,
            alloc: FILE_HEADER_BYTES as u32,
            header,
            path,
        })
    }

    /// The written bytes, if the file is mapped (and the mapping covers
    /// them: the newest file's may not, if growing it failed).
    pub fn mapped(&self) -> Option<&[u8]> {
        let m = self.map.get()?;
        m.get(..self.len as usize)
    }

    /// Maps the file as the newest (not charged to the budget: see
    /// [`DataFile::cover`]); returns what a sealed mapping of it had charged.
    pub fn map_newest(&mut self, file_size: u32) -> Result<usize> {
        let released = match self.charged() {
            0 => 0,
            _ => self.unmap(),
        };
        self.cover(file_size)?;
        Ok(released)
    }

    /// Grows the newest file's mapping, if it does not cover the written
    /// bytes, to a step beyond them (`NEWEST_MAP_STEP_BYTES`, at most
    /// `file_size`). Runs under the write lock: no reader holds a slice of
    /// the mapping, which `mremap` may move.
    pub fn cover(&mut self, file_size: u32) -> Result<()> {
        let len = self.len as usize;
        if self.map.get().is_some_and(|m| m.len() >= len.max(1)) {
            return Ok(());
        }
        let want = newest_map_len(self.len, file_size);
        #[cfg(target_os = "linux")]
        if let Some(m) = self.map.get_mut() {
            let options = memmap2::RemapOptions::new().may_move(true);
            // SAFETY: as for `map_file`; the caller holds the write lock, so
            // no slice of the old mapping is alive.
            return unsafe { m.remap(want as usize, options) }
                .ctx(|| format!("grow the mapping of {}", self.path.display()));
        }
        self.map = OnceLock::from(map_file(&self.file, want, &self.path)?);
        Ok(())
    }

    /// [`DataFile::cover`]; on failure (address space exhausted) readers
    /// read what the mapping misses with `pread`.
    pub fn cover_or_read(&mut self, file_size: u32) {
        if let Err(e) = self.cover(file_size) {
            log::warn!("{e}: reading the newest records without a mapping");
        }
    }

    /// Maps a sealed file at its length for readers, its bytes charged to
    /// `budget` (`None`: no room, or the mapping failed — the caller reads
    /// with `pread`).
    pub fn map_sealed(&self, budget: &crate::maps::MapBudget) -> Option<&[u8]> {
        let len = self.len as usize;
        if len == 0 || !budget.reserve(len) {
            return None;
        }
        match map_file(&self.file, self.len, &self.path) {
            Ok(m) => match self.map.set(m) {
                Ok(()) => self.charged.store(len, Ordering::Release),
                // Another reader mapped it first: ours goes.
                Err(_) => budget.release(len),
            },
            Err(e) => {
                budget.release(len);
                log::warn!("{e}: reading it without a mapping");
                return None;
            }
        }
        self.mapped()
    }

    /// Drops the mapping; returns the bytes it had charged to the budget.
    pub fn unmap(&mut self) -> usize {
        self.map.take();
        std::mem::take(self.charged.get_mut())
    }

    /// Bytes charged to the budget (0 if unmapped or the newest).
    pub fn charged(&self) -> usize {
        self.charged.load(Ordering::Acquire)
    }

    /// Notes a read at the budget's clock `now`.
    pub fn touch(&self, now: usize) {
        if self.used.load(Ordering::Relaxed) != now {
            self.used.store(now, Ordering::Relaxed);
        }
    }

    /// The budget's clock at the last read.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reads written bytes from `offset` on into a fresh buffer: `want`
    /// bytes, or fewer at the end of the written part.
    pub fn read(&self, offset: u32, want: usize) -> Result<Vec<u8>> {
        let end = (offset as usize)
            .saturating_add(want)
            .min(self.len as usize);
        let mut buf = vec![0; end.saturating_sub(offset as usize)];
        self.file
            .read_exact_at(&mut buf, offset as u64)
            .ctx(|| format!("read {} at offset {offset}", self.path.display()))?;
        Ok(buf)
    }

    /// The written bytes, borrowed from the mapping or, for an unmapped
    /// sealed file, from a mapping made for the caller (recovery, cuts:
    /// one file at a time).
    pub fn whole(&self) -> Result<Whole<'_>> {
        if let Some(b) = self.mapped() {
            return Ok(Whole::Mapped(b));
        }
        self.own_map().map(Whole::Own)
    }

    /// A mapping of the written bytes the caller owns (empty if none).
    pub fn own_map(&self) -> Result<Owned> {
        match self.len {
            0 => Ok(Owned(None)),
            len => map_file(&self.file, len, &self.path).map(|m| Owned(Some(m))),
        }
    }
}

/// A data file's written bytes (see [`DataFile::whole`]).
pub enum Whole<'a> {
    Mapped(&'a [u8]),
    Own(Owned),
}

impl Deref for Whole<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Whole::Mapped(b) => b,
            Whole::Own(m) => m,
        }
    }
}

/// A mapping of a file's written bytes owned by its reader.
pub struct Owned(Option<Mmap>);

impl Deref for Owned {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// The newest file's mapping length for `len` written bytes.
fn newest_map_len(len: u32, file_size: u32) -> u32 {
    let step = NEWEST_MAP_STEP_BYTES;
    let ahead = (len / step).saturating_add(1).saturating_mul(step);
    ahead.min(file_size.max(len))
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
