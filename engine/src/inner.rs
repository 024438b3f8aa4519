//! The shared state behind a [`Db`](crate::Db): the lock around [`Core`],
//! the read-only latch, mutations and checkpoints.
//!
//! Invariants kept here:
//! - a failed write or fsync latches the database read-only (`fail`); what
//!   was acknowledged before stays readable and durable;
//! - a checkpoint never holds the write lock across an fsync (`checkpoint`,
//!   see `Core::checkpoint_begin`), and runs one at a time (`ckpt_lock`).

use crate::commit::{GroupCommit, Syncer};
use crate::error::{Error, Result};
use crate::options::{Fsync, Options};
use crate::record::Seq;
use crate::state::{sync_files, write_meta, Core, CHECKPOINT_IDS_MAX};
use crate::stats::CompactReport;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A writer takes a checkpoint itself when this many times
/// `CHECKPOINT_IDS_MAX` ids changed without one (the checkpoint thread is
/// behind), which bounds the overlay's memory.
pub const CHECKPOINT_BACKLOG: usize = 4;

/// What the checkpoint thread is asked to do.
#[derive(Default)]
pub(crate) struct CkptSignal {
    /// A checkpoint is due.
    pub(crate) due: bool,
    /// The database is closing.
    pub(crate) stop: bool,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    core: RwLock<Core>,
    commit: GroupCommit,
    read_only: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Held while a compaction runs (one at a time).
    pub(crate) compacting: Mutex<()>,
    /// Held while a checkpoint runs (one at a time).
    ckpt_lock: Mutex<()>,
    /// Requests to the checkpoint thread.
    pub(crate) ckpt_signal: Mutex<CkptSignal>,
    /// The checkpoint thread waits with nothing to checkpoint (no timer).
    pub(crate) ckpt_sleeping: AtomicBool,
    pub(crate) ckpt_cv: Condvar,
    /// Deletes with a seq up to this may be dropped by compaction.
    /// (A mutex, not an AtomicU64: 32-bit MIPS routers have no 64-bit atomics.)
    pub(crate) tombstone_floor: Mutex<Seq>,
    /// Progress of a running compaction: input bytes done, total (0: none).
    pub(crate) progress: Mutex<(u64, u64)>,
    /// Compactions finished since open, and the last one's report.
    pub(crate) compactions: Mutex<(u64, Option<CompactReport>)>,
    _lock: File,
}

/// Locks `m`, ignoring poisoning (a panicked holder left valid state: every
/// guarded value here is replaced whole).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// The state of an opened database in `dir`, whose directory lock is
    /// `lock_file`.
    pub(crate) fn new(dir: PathBuf, opts: Options, core: Core, lock_file: File) -> Inner {
        let synced = core.log.appended;
        Inner {
            dir,
            opts,
            core: RwLock::new(core),
            commit: GroupCommit::new(synced),
            read_only: AtomicBool::new(false),
            failure: Mutex::new(None),
            compacting: Mutex::new(()),
            ckpt_lock: Mutex::new(()),
            ckpt_signal: Mutex::new(CkptSignal::default()),
            ckpt_sleeping: AtomicBool::new(false),
            ckpt_cv: Condvar::new(),
            tombstone_floor: Mutex::new(Seq::MAX),
            progress: Mutex::new((0, 0)),
            compactions: Mutex::new((0, None)),
            _lock: lock_file,
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Core> {
        self.core.read().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Core> {
        self.core.write().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn tombstone_floor(&self) -> Seq {
        *lock(&self.tombstone_floor)
    }
    pub(crate) fn progress_set(&self, done: u64, total: u64) {
        *lock(&self.progress) = (done, total);
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only.load(Ordering::Acquire) {
            let cause = lock(&self.failure).clone().unwrap_or_default();
            return Err(Error::ReadOnly { cause });
        }
        Ok(())
    }

    /// Records a failed write or fsync: from now on the database is read-only.
    pub(crate) fn fail(&self, e: &Error) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            log::error!("{}: stopping writes: {e}", self.dir.display());
            *f = Some(e.to_string());
        }
        self.read_only.store(true, Ordering::Release);
    }

    /// Runs a mutation under the write lock; an I/O failure makes the
    /// database read-only (the bytes may be half written).
    pub(crate) fn mutate<T>(&self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        self.writable()?;
        let (r, due) = {
            let mut core = self.write();
            let r = f(&mut core);
            let due = r.is_ok() && core.checkpoint_due();
            (r, due)
        };
        if let Err(e @ Error::Io { .. }) = &r {
            self.fail(e);
        }
        if due {
            self.checkpoint_due()?;
        } else if r.is_ok() && self.ckpt_sleeping.load(Ordering::SeqCst) {
            // The first change since the checkpoint thread found none: it
            // starts counting towards an idle checkpoint. (Checked again
            // under the lock: the thread may have seen this change already.)
            let _sig = lock(&self.ckpt_signal);
            if self.ckpt_sleeping.swap(false, Ordering::SeqCst) {
                self.ckpt_cv.notify_one();
            }
        }
        r
    }

    /// A checkpoint is due: the checkpoint thread takes it, so the writer
    /// that noticed does not wait for its fsyncs. A writer runs one itself
    /// only when the thread has fallen far behind (`CHECKPOINT_BACKLOG`).
    fn checkpoint_due(&self) -> Result<()> {
        let behind = self.read().lookup.dirty() >= CHECKPOINT_BACKLOG * CHECKPOINT_IDS_MAX;
        if behind {
            return self.checkpoint(true);
        }
        let mut sig = lock(&self.ckpt_signal);
        sig.due = true;
        self.ckpt_cv.notify_one();
        Ok(())
    }

    /// Takes a checkpoint without holding the write lock across an fsync
    /// (see `Core::checkpoint_begin`). With `wait` false it returns at once
    /// if another thread is taking one. A failure makes the database
    /// read-only.
    pub(crate) fn checkpoint(&self, wait: bool) -> Result<()> {
        let _one = match wait {
            true => lock(&self.ckpt_lock),
            false => match self.ckpt_lock.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            },
        };
        let io = self.opts.io.clone();
        let result = (|| {
            let (files, meta) = self.write().checkpoint_begin()?;
            sync_files(&files, &self.dir, &*io)?;
            let tables = self.write().checkpoint_tables()?;
            sync_files(&tables, &self.dir, &*io)?;
            write_meta(&self.dir, &meta, &*io)?;
            self.write().meta = meta;
            Ok(())
        })();
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Writes the buffer and fdatasyncs the newest data file (a sealed file
    /// was fdatasynced when it was sealed); returns the position synced.
    fn sync_active(&self) -> Result<u64> {
        let (file, end) = {
            let mut core = self.write();
            core.log.flush()?;
            (core.log.active_file(), core.log.appended)
        };
        self.opts.io.sync_data(&file).map_err(|source| Error::Io {
            context: format!("fdatasync a data file in {}", self.dir.display()),
            source,
        })?;
        Ok(end)
    }

    /// Makes everything appended so far durable, whatever the fsync mode.
    pub(crate) fn sync(&self) -> Result<()> {
        let end = self.read().log.appended;
        self.commit.commit(end, self)
    }

    /// Returns once a write ending at `end` is as durable as the fsync mode
    /// promises: fdatasync'ed under `Fsync::Always`, at once otherwise.
    pub(crate) fn durable(&self, end: u64) -> Result<()> {
        match self.opts.fsync {
            Fsync::Always => self.commit.commit(end, self),
            Fsync::EveryMs(_) | Fsync::Never => Ok(()),
        }
    }
}

impl Syncer for Inner {
    fn writable(&self) -> Result<()> {
        Inner::writable(self)
    }
    fn sync_log(&self) -> Result<u64> {
        self.sync_active()
    }
    fn appended(&self) -> u64 {
        self.read().log.appended
    }
    fn fail(&self, e: &Error) {
        Inner::fail(self, e)
    }
}
