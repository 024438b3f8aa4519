//! The shared state behind a [`Db`](crate::Db): the lock around [`Core`],
//! the read-only latch, mutations and checkpoints.
//!
//! Invariants kept here:
//! - a failed write or fsync latches the database read-only (`fail`); what
//!   was acknowledged before stays readable and durable;
//! - a checkpoint never holds the write lock across an fsync or a table
//!   write (`checkpoint`, see `Core::checkpoint_begin`), and runs one at a
//!   time (`ckpt_lock`);
//! - pending key-index slots are written without the write lock, one write
//!   at a time (`flush_keys`, `key_flush`); lock order: `ckpt_lock`, then
//!   `key_flush`, then the write lock.

use crate::commit::{GroupCommit, Syncer};
use crate::error::{Error, Result};
use crate::guards::{ReadGuard, WriteGuard};
use crate::keyindex::{Grown, KEY_PENDING_MAX, KEY_PENDING_WRITER_MAX};
use crate::location::Location;
use crate::maps::MapBudget;
use crate::options::{Fsync, Options};
use crate::outbuf::{FlushJob, WRITE_BUFFER_BYTES};
use crate::record::Seq;
use crate::state::{sync_files, write_meta, Core, CHECKPOINT_IDS_MAX};
use crate::stats::CompactReport;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

/// A writer takes a checkpoint itself when this many times
/// `CHECKPOINT_IDS_MAX` ids changed without one (the checkpoint thread is
/// behind), which bounds the overlay's memory.
pub const CHECKPOINT_BACKLOG: usize = 4;

/// Slots of the key index copied per hold of the read lock while it grows.
pub const GROW_COPY_SLOTS: u64 = 1 << 14;

/// What the checkpoint thread is asked to do.
#[derive(Default)]
pub(crate) struct CkptSignal {
    /// A checkpoint is due.
    pub(crate) due: bool,
    /// A rollover owes its fsyncs (`Log::unsealed`).
    pub(crate) seal: bool,
    /// `KEY_PENDING_MAX` key-index slots wait to be written (`flush_keys`).
    pub(crate) keys: bool,
    /// The database is closing.
    pub(crate) stop: bool,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    core: RwLock<Core>,
    commit: GroupCommit,
    pub(crate) read_only: AtomicBool,
    pub(crate) failure: Mutex<Option<String>>,
    /// Held while a compaction runs (one at a time).
    pub(crate) compacting: Mutex<()>,
    /// Held while a checkpoint runs (one at a time).
    ckpt_lock: Mutex<()>,
    /// Held while pending key-index slots are written (one write at a time).
    key_flush: Mutex<()>,
    /// Held while the key index grows (one at a time; writers of new keys
    /// wait for it, see `grow_index`).
    growing: Mutex<()>,
    /// How long the write lock was held.
    #[cfg(feature = "lock-stats")]
    pub(crate) holds: crate::lock_stats::HoldStats,
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
    /// The failover term and vote, as on disk (held while one is saved).
    pub(crate) vote: Mutex<crate::tables::Vote>,
    /// The log's budget of mapped sealed files (`Log::maps`).
    maps: Arc<MapBudget>,
    /// Set when a full disk latched the database read-only (see `full`).
    pub(crate) full: Mutex<FullDisk>,
    /// Held while a latch set by a full disk is being lifted.
    pub(crate) resuming: Mutex<()>,
    /// Random per open: the start of `Db::log_generation`.
    pub(crate) instance: u64,
    _lock: File,
}

/// The state of a latch a full disk set.
#[derive(Debug, Default)]
pub(crate) struct FullDisk {
    /// The latch was set by a full disk (and nothing worse since).
    pub(crate) resumable: bool,
    /// When the free space was last measured.
    pub(crate) last_try: Option<std::time::Instant>,
    /// The last measurement: bytes free, bytes needed.
    pub(crate) free: u64,
    pub(crate) needed: u64,
}

/// Locks `m`, ignoring poisoning (a panicked holder left valid state: every
/// guarded value here is replaced whole).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    /// The state of an opened database in `dir`, whose directory lock is
    /// `lock_file`.
    pub(crate) fn new(
        dir: PathBuf,
        opts: Options,
        core: Core,
        vote: crate::tables::Vote,
        lock_file: File,
    ) -> Inner {
        let synced = core.log.appended;
        core.log.maps.set_max(opts.sealed_map_bytes);
        let maps = core.log.maps.clone();
        Inner {
            dir,
            opts,
            core: RwLock::new(core),
            commit: GroupCommit::new(synced),
            read_only: AtomicBool::new(false),
            failure: Mutex::new(None),
            compacting: Mutex::new(()),
            ckpt_lock: Mutex::new(()),
            key_flush: Mutex::new(()),
            growing: Mutex::new(()),
            #[cfg(feature = "lock-stats")]
            holds: Default::default(),
            ckpt_signal: Mutex::new(CkptSignal::default()),
            ckpt_sleeping: AtomicBool::new(false),
            ckpt_cv: Condvar::new(),
            tombstone_floor: Mutex::new(Seq::MAX),
            progress: Mutex::new((0, 0)),
            compactions: Mutex::new((0, None)),
            instance: crate::random::random_u64(),
            vote: Mutex::new(vote),
            maps,
            full: Mutex::default(),
            resuming: Mutex::new(()),
            _lock: lock_file,
        }
    }

    /// The read lock. Releasing it runs an unmapping round a read asked
    /// for (see `maps`) if the write lock is free then; never waits for it.
    pub(crate) fn read(&self) -> ReadGuard<'_> {
        ReadGuard {
            guard: Some(self.core.read().unwrap_or_else(|p| p.into_inner())),
            lock: &self.core,
            maps: &self.maps,
        }
    }
    #[track_caller]
    pub(crate) fn write(&self) -> WriteGuard<'_> {
        let guard = self.core.write().unwrap_or_else(|p| p.into_inner());
        WriteGuard {
            guard,
            #[cfg(feature = "lock-stats")]
            hold: crate::lock_stats::Hold::start(std::panic::Location::caller()),
            #[cfg(feature = "lock-stats")]
            stats: &self.holds,
        }
    }
    /// The longest hold of the write lock the scheduler did not interrupt,
    /// how many such holds passed `HOLD_TARGET_US`, and the interrupted
    /// holds with the longest of them, in microseconds (with the
    /// `lock-stats` feature).
    pub(crate) fn write_holds(&self) -> Option<(u64, u64, (u64, u64))> {
        #[cfg(feature = "lock-stats")]
        return Some((
            self.holds.own_max_us(),
            self.holds.own_over(),
            self.holds.preempted(),
        ));
        #[cfg(not(feature = "lock-stats"))]
        None
    }
    pub(crate) fn tombstone_floor(&self) -> Seq {
        *lock(&self.tombstone_floor)
    }
    pub(crate) fn progress_set(&self, done: u64, total: u64) {
        *lock(&self.progress) = (done, total);
    }

    /// `Ok` if the database takes writes. Latched by a full disk, it
    /// tries to resume first (see `full`).
    pub(crate) fn writable(&self) -> Result<()> {
        if !self.read_only.load(Ordering::Acquire) {
            return Ok(());
        }
        if lock(&self.full).resumable {
            return self.resume_if_room();
        }
        Err(self.writable_error())
    }

    /// Records a failed write or fsync: from now on the database is
    /// read-only — until there is room again if the disk was full (and
    /// nothing worse happened), for good otherwise.
    pub(crate) fn fail(&self, e: &Error) {
        let mut f = lock(&self.failure);
        let mut full = lock(&self.full);
        if f.is_none() || (full.resumable && !e.is_disk_full()) {
            let until = match e.is_disk_full() {
                true => "until there is room on its disk",
                false => "until it is reopened",
            };
            log::error!("{}: stopping writes {until}: {e}", self.dir.display());
            *f = Some(e.to_string());
            full.resumable = e.is_disk_full();
        }
        self.read_only.store(true, Ordering::Release);
    }

    /// Runs a mutation that appends at most one record with `bytes` of key
    /// and value under the write lock; an I/O failure makes the database
    /// read-only (the bytes may be half written).
    ///
    /// If the record would roll the log over while the previous rollover's
    /// fsyncs are still owed (the writer outran the disk), those run first,
    /// here, without the lock; so `Log::roll` does not run them under it.
    /// Likewise a buffer in flight when the next is full (`WRITE_BUFFER_MAX`)
    /// is written here first.
    pub(crate) fn mutate<T>(
        &self,
        bytes: usize,
        f: impl FnOnce(&mut Core) -> Result<T>,
    ) -> Result<T> {
        let mut f = Some(f);
        loop {
            let once = |core: &mut Core| match f.take() {
                Some(f) => f(core),
                None => Err(Error::WouldBlock),
            };
            if let Some(r) = self.try_mutate(bytes, once)? {
                return Ok(r);
            }
            // The rollover before the next must have its fsyncs done, and
            // the buffer in flight must land.
            self.finish_seal()?;
            let end = self.read().log.appended;
            self.flush_out(end)?;
        }
    }

    /// [`Inner::mutate`] that does not wait for the last rollover's fsyncs
    /// or a buffer in flight: `Ok(None)`, without calling `f`, when it
    /// would. A writer that fills the buffer writes it out here, without
    /// the lock (see `outbuf`).
    pub(crate) fn try_mutate<T>(
        &self,
        bytes: usize,
        f: impl FnOnce(&mut Core) -> Result<T>,
    ) -> Result<Option<T>> {
        self.writable()?;
        let (r, due, rolled, keys, out) = {
            let mut core = self.write();
            if core.log.roll_must_wait(bytes) || core.log.out_must_wait() {
                return Ok(None);
            }
            if core.log.batch_open {
                // Half a batch is in the log (a mutation failed inside it).
                drop(core);
                return Err(self.writable_error());
            }
            let rollovers = core.log.rollovers;
            let r = f(&mut core);
            if let (Err(e), true) = (&r, core.log.batch_open) {
                // Latched under the lock: nobody appends after half a batch.
                self.fail_for_good(e);
            }
            let due = r.is_ok() && core.checkpoint_due();
            let keys = core.keys.pending_len();
            // A full buffer goes in flight; this writer writes it below.
            let out = match core.log.buf.len() >= WRITE_BUFFER_BYTES && core.log.inflight.is_none()
            {
                true => core.log.detach(),
                false => None,
            };
            (r, due, core.log.rollovers != rollovers, keys, out)
        };
        if let Err(e @ Error::Io { .. }) = &r {
            self.fail(e);
        }
        if let Some(job) = out {
            self.write_out(job)?;
        }
        if rolled || keys >= KEY_PENDING_MAX {
            // The checkpoint thread runs the rollover's fsyncs and writes
            // the pending key-index slots.
            let mut sig = lock(&self.ckpt_signal);
            sig.seal |= rolled;
            sig.keys |= keys >= KEY_PENDING_MAX;
            self.ckpt_cv.notify_one();
        }
        if r.is_ok() && keys >= KEY_PENDING_WRITER_MAX {
            // The checkpoint thread is behind: bound the memory here.
            self.flush_keys()?;
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
        r.map(Some)
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
            // Most of the buffer is written without the lock.
            let end = self.read().log.appended;
            self.flush_out(end)?;
            let (files, meta) = self.write().checkpoint_begin()?;
            // Every file up to the checkpoint's must be named durably.
            self.finish_seal()?;
            sync_files(&files, &self.dir, &*io)?;
            self.write_frozen()?;
            // Every key-index slot up to the checkpoint's position is
            // pending or written by now: write them.
            self.flush_keys()?;
            let tables = self.read().table_files();
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

    /// Checkpoint, phase 3: writes the frozen lookup entries into
    /// `lookup.tbl` without the lock (see `FrozenWrite`); the caller holds
    /// `ckpt_lock`.
    fn write_frozen(&self) -> Result<()> {
        let Some(mut job) = self.read().lookup.frozen_write() else {
            return Ok(());
        };
        job.write(&*self.opts.io)?;
        let done = self.write().lookup.frozen_written(job);
        // Unmapping and freeing take time: not under the lock.
        drop(done);
        Ok(())
    }

    /// Writes the pending key-index slots into `keys.idx` without holding
    /// the write lock across the writes (see `KeyFlush`). A failure makes
    /// the database read-only.
    pub(crate) fn flush_keys(&self) -> Result<()> {
        let _one = lock(&self.key_flush);
        let Some(job) = self.write().keys.flush_begin() else {
            return Ok(());
        };
        if let Err(e) = job.write(&*self.opts.io) {
            self.fail(&e);
            return Err(e);
        }
        let done = self.write().keys.flush_end(job);
        drop(done);
        Ok(())
    }

    /// The closing checkpoint (all phases under the write lock, see
    /// `Core::checkpoint`), after any running checkpoint or key-index write.
    pub(crate) fn checkpoint_closing(&self) -> Result<Location> {
        let _ckpt = lock(&self.ckpt_lock);
        let _keys = lock(&self.key_flush);
        self.write().checkpoint()
    }

    /// Runs the fsyncs the last rollover owes, if any (see `Seal`). A
    /// failure makes the database read-only.
    pub(crate) fn finish_seal(&self) -> Result<()> {
        let Some(seal) = self.read().log.unsealed.clone() else {
            return Ok(());
        };
        if let Err(e) = seal.sync(&self.dir, &*self.opts.io) {
            self.fail(&e);
            return Err(e);
        }
        self.write().log.sealed(seal.number);
        Ok(())
    }

    /// Writes out the buffers (without the write lock) until everything
    /// appended before `upto` (a `Log::appended` position) is in the data
    /// files.
    pub(crate) fn flush_out(&self, upto: u64) -> Result<()> {
        loop {
            let job = {
                let mut core = self.write();
                let written = core.log.appended - core.log.unwritten() as u64;
                if written >= upto {
                    return Ok(());
                }
                core.log.detach()
            };
            match job {
                Some(job) => self.write_out(job)?,
                None => return Ok(()),
            }
        }
    }

    /// Runs a [`FlushJob`] without the write lock, then publishes it under
    /// the lock. A failure makes the database read-only (the records stay
    /// readable from the buffer in flight).
    fn write_out(&self, job: FlushJob) -> Result<()> {
        match job.write() {
            Ok(alloc) => {
                self.write().log.landed(job, alloc);
                Ok(())
            }
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// Writes the buffers and fdatasyncs the newest data file, after the
    /// fsyncs a rollover still owes; returns the position synced.
    pub(crate) fn sync_active(&self) -> Result<u64> {
        let end = self.read().log.appended;
        self.flush_out(end)?;
        // A rollover since then wrote the bytes up to `end` into the file it
        // sealed, and left its fsyncs in `unsealed`, or ran them.
        let (file, seal) = {
            let core = self.read();
            (core.log.active_file(), core.log.unsealed.clone())
        };
        if let Some(seal) = &seal {
            seal.sync(&self.dir, &*self.opts.io)?;
        }
        self.opts.io.sync_data(&file).map_err(|source| Error::Io {
            context: format!("fdatasync a data file in {}", self.dir.display()),
            source,
        })?;
        if let Some(seal) = seal {
            self.write().log.sealed(seal.number);
        }
        Ok(end)
    }

    /// Doubles the key index without holding the write lock across the
    /// work: the new table is filled from the old one `GROW_COPY_SLOTS`
    /// slots per hold of the read lock, fsynced and renamed over the old
    /// one, then swapped in under the write lock (memory only).
    ///
    /// Writers of new keys call this when the index is full enough
    /// (`KeyIndex::needs_grow`) instead of inserting, and wait here for the
    /// one that grows it; so no slot is added while the copy runs, and the
    /// copy is the whole table. Reads and writes to existing keys go on.
    pub(crate) fn grow_index(&self) -> Result<()> {
        self.grow_index_for(1)
    }

    /// [`Inner::grow_index`] when the table lacks room for `n` more keys
    /// (doubles once; a caller that needs more calls again).
    pub(crate) fn grow_index_for(&self, n: u64) -> Result<()> {
        let _one = lock(&self.growing);
        let (seed, slots, used) = {
            let core = self.read();
            if !core.keys.needs_grow_by(n) {
                return Ok(()); // another writer grew it
            }
            (core.keys.seed, core.keys.slots, core.keys.used)
        };
        let io = &*self.opts.io;
        let result = (|| {
            let mut grown = Grown::create(&self.dir, seed, slots, io)?;
            let mut from = 0;
            while from < slots {
                let to = from.saturating_add(GROW_COPY_SLOTS).min(slots);
                self.read().keys.copy_into(&mut grown, from, to);
                from = to;
            }
            grown.finish(&self.dir, io)?;
            let old = {
                let mut core = self.write();
                assert_eq!(
                    (core.keys.slots, core.keys.used),
                    (slots, used),
                    "a key was inserted while the key index grew"
                );
                core.keys.replace(grown)
            };
            // Unmapping the old table takes milliseconds: not under the lock.
            drop(old);
            Ok(())
        })();
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Makes everything appended so far durable, whatever the fsync mode.
    pub(crate) fn sync(&self) -> Result<()> {
        // (Not inside the group commit: a full disk may resume here.)
        self.writable()?;
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
    /// The latch only: a group commit holds its state lock here, and a
    /// leader whose fdatasync failed needs that lock to latch for good, so
    /// no resume (see `full`) may run under it.
    fn writable(&self) -> Result<()> {
        match self.read_only.load(Ordering::Acquire) {
            true => Err(self.writable_error()),
            false => Ok(()),
        }
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
