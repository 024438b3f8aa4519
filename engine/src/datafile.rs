//! One data file: its handle, its read-only mapping and its header; and
//! the fsyncs a rollover owes.
//!
//! Every data file is mapped read-only once, `file_size` bytes long (an
//! address-space reservation; only bytes below the written length are ever
//! read).

use crate::dir::{create_with_header, data_path, sync_dir};
use crate::error::{Error, IoContext, Result};
use crate::io::{FileIo, OpenMode};
use crate::limits::FILE_HEADER_BYTES;
use crate::record::Seq;
use crate::tables::{FileHeader, DATA_VERSION};
use memmap2::{Mmap, MmapOptions};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
                version: DATA_VERSION,
                file_no: u16::MAX,
                first_seq: 0,
                prev_len: 0,
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
