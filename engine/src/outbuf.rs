//! Writing the write buffer out without the write lock.
//!
//! A full buffer is detached under the lock (`Log::detach`): it becomes
//! the log's one [`Inflight`] buffer, which readers read from memory until
//! it lands. Its `pwrite` (and the zeros written ahead under
//! `Fsync::Always`) runs without the lock ([`FlushJob::write`]), then
//! `Log::landed` publishes the new written length under the lock. A 64 KiB
//! `pwrite` is usually tens of microseconds, but the kernel may make the
//! writer wait for dirty pages to be written back (milliseconds), and under
//! the lock that wait stopped every reader and writer.
//!
//! Every write into the newest data file, with or without the lock, holds
//! `Log::out` (lock order: the write lock, then `out`; a [`FlushJob`] never
//! takes the write lock while it holds `out`). [`Written`] there says how far
//! the file has been written, so a job whose bytes someone else already
//! wrote (the lock holder's `Log::flush` writes an in-flight buffer itself
//! rather than wait for its publication) does nothing, and no zeros written
//! ahead can land on records written after them.
//!
//! Invariants: the in-flight buffer starts at the newest file's published
//! length and the buffer follows it; at most one buffer is in flight; a
//! rollover, checkpoint, sync and close write both out first.

use crate::error::{IoContext, Result};
use crate::io::FileIo;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes the write buffer collects before it is written out (by the writer
/// that filled it, without the write lock). 64 KiB costs a syscall per ~300
/// small records and ran single-writer puts faster than 1 MiB (fits in L2).
pub const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// With `Log::prealloc` (`Fsync::Always`), the newest data file is written
/// ahead with zeros in steps of this many bytes. An fdatasync that changes a
/// file's size also writes its inode (with a journal, a journal commit); one into
/// space already written does not: 4,300-4,800 against 6,600-8,200 small
/// append+fdatasync rounds per second on the development VM. A step costs
/// one zero `pwrite` per ~1,300 records of 200 bytes.
pub const PREALLOC_BYTES: u32 = 256 << 10;

/// While a buffer is in flight, the next may grow to this many bytes; a
/// writer that would pass it helps write the one in flight first.
pub const WRITE_BUFFER_MAX: usize = 16 * WRITE_BUFFER_BYTES;

/// The buffer being written out, which readers read until it lands.
pub struct Inflight {
    /// Rollovers before it (`Log::rollovers`): which newest file it
    /// belongs to. (File numbers are reused; this only grows.)
    pub epoch: u64,
    /// Its offset there: the file's published length.
    pub at: u32,
    pub bytes: Arc<Vec<u8>>,
}

/// How far writes have reached in the newest data file (in `Log::out`).
#[derive(Default)]
pub struct Written {
    /// The newest file these marks are for, by `Log::rollovers` when it
    /// was created; marks for a later file replace them.
    pub(crate) epoch: Option<u64>,
    /// Bytes written (header included).
    pub(crate) len: u32,
    /// Length on disk: `len` plus zeros written ahead.
    pub(crate) alloc: u32,
}

impl Written {
    /// Starts tracking the newest file of `epoch` at its published `len`
    /// and `alloc` if the marks are for an earlier one (the newest file
    /// changes only at a rollover, after everything in the old one was
    /// written). True if the marks are for that file, false if for a later
    /// one (a job that lost the race to a rollover).
    pub(crate) fn track(&mut self, epoch: u64, len: u32, alloc: u32) -> bool {
        if self.epoch < Some(epoch) {
            *self = Written {
                epoch: Some(epoch),
                len,
                alloc,
            };
        }
        self.epoch == Some(epoch)
    }

    /// Writes `bytes` at `self.len`, then zeros ahead if `prealloc` (see
    /// [`PREALLOC_BYTES`]), up to `file_size` at most.
    pub(crate) fn put(&mut self, to: &Target<'_>, bytes: &[u8]) -> Result<()> {
        to.io.write_at(to.file, bytes, self.len as u64).ctx(|| {
            format!(
                "write {} bytes to {} at {}",
                bytes.len(),
                to.path.display(),
                self.len
            )
        })?;
        self.len += bytes.len() as u32;
        if to.prealloc && self.len > self.alloc {
            // The step is aligned, so it ends where the next begins; it stops
            // at file_size, where the file rolls over.
            let end = (self.len / PREALLOC_BYTES + 1)
                .saturating_mul(PREALLOC_BYTES)
                .min(to.file_size);
            if end > self.len {
                let zeros = vec![0u8; (end - self.len) as usize];
                to.io.write_at(to.file, &zeros, self.len as u64).ctx(|| {
                    format!(
                        "write {} zero bytes ahead in {} at {}",
                        zeros.len(),
                        to.path.display(),
                        self.len
                    )
                })?;
            }
            self.alloc = end.max(self.len);
        }
        Ok(())
    }
}

/// Where [`Written::put`] writes.
pub struct Target<'a> {
    pub io: &'a dyn FileIo,
    pub file: &'a File,
    pub path: &'a Path,
    pub prealloc: bool,
    pub file_size: u32,
}

/// Locks [`Written`] (a panicked holder left it valid: it is updated after
/// each write succeeds).
pub(crate) fn lock(m: &Mutex<Written>) -> MutexGuard<'_, Written> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The write of an [`Inflight`] buffer, to run without the write lock.
pub struct FlushJob {
    pub epoch: u64,
    pub file: Arc<File>,
    pub path: PathBuf,
    pub at: u32,
    /// The file's length on disk when the buffer was detached.
    pub alloc: u32,
    pub bytes: Arc<Vec<u8>>,
    pub prealloc: bool,
    pub file_size: u32,
    pub out: Arc<Mutex<Written>>,
    pub io: Arc<dyn FileIo>,
}

impl FlushJob {
    /// Writes the buffer unless someone already did; returns the file's
    /// length on disk after it, for `Log::landed`.
    pub fn write(&self) -> Result<u32> {
        let mut w = lock(&self.out);
        if !w.track(self.epoch, self.at, self.alloc) {
            return Ok(0); // a rollover wrote it (and `landed` will ignore it)
        }
        if w.len >= self.at + self.bytes.len() as u32 {
            return Ok(w.alloc);
        }
        assert_eq!(
            w.len, self.at,
            "an in-flight buffer starts where the file ends"
        );
        let to = Target {
            io: &*self.io,
            file: &self.file,
            path: &self.path,
            prealloc: self.prealloc,
            file_size: self.file_size,
        };
        w.put(&to, &self.bytes)?;
        Ok(w.alloc)
    }
}
