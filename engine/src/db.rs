//! The database handle [`Db`]: opening, the read-only accessors, stats,
//! sync, log readers and closing. The key API is in `keys.rs`, the id API
//! in `ids.rs`, the shared state and its lock in `inner.rs`.

use crate::background::{spawn_checkpointer, spawn_compactor, spawn_flusher, Worker};
use crate::error::{Error, IoContext, Result};
use crate::inner::{lock, Inner};
use crate::io::OpenMode;
use crate::limits::KEY_BYTES_MAX;
use crate::log_iter::LogIter;
use crate::options::{Fsync, Options};
use crate::record::Seq;
use crate::recovery::{open_core, Recovery};
use crate::seek::marks;
use crate::stats::{CompactReport, Stats};
use crate::tables::Vote;
use crate::term_table::TermStart;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A hypha-engine database. `Send + Sync`: share it with an `Arc`; readers
/// proceed while a write waits for its fsync.
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    flusher: Option<Worker>,
    compactor: Option<Worker>,
    checkpointer: Option<JoinHandle<()>>,
    recovery: Recovery,
    crashed: bool,
}

impl Db {
    /// Opens the database in `dir`, creating it if empty, and recovers it if
    /// it was not closed cleanly.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.check()?;
        let dir = dir.as_ref().to_path_buf();
        let io = &*opts.io;
        io.create_dir_all(&dir)
            .ctx(|| format!("create {}", dir.display()))?;
        let lock_path = dir.join("LOCK");
        let lock_file = io
            .open(&lock_path, OpenMode::CreateOrOpen)
            .ctx(|| format!("open {}", lock_path.display()))?;
        if lock_file.try_lock().is_err() {
            return Err(Error::Locked { dir });
        }
        let (mut core, recovery) = open_core(&dir, &opts)?;
        core.log.prealloc = opts.fsync == Fsync::Always;
        let vote = crate::vote::load(&dir)?;
        let inner = Arc::new(Inner::new(dir, opts.clone(), core, vote, lock_file));
        let flusher = match opts.fsync {
            Fsync::EveryMs(ms) => Some(spawn_flusher(Arc::downgrade(&inner), ms)),
            _ => None,
        };
        let checkpointer = Some(spawn_checkpointer(inner.clone()));
        let compactor = match opts.auto_compact {
            true => Some(spawn_compactor(Arc::downgrade(&inner))),
            false => None,
        };
        Ok(Db {
            inner,
            flusher,
            compactor,
            checkpointer,
            recovery,
            crashed: false,
        })
    }

    /// Compacts now (see `compact.rs`): copies the live records of the
    /// sealed data files into new files and removes the old ones, while
    /// reads and writes go on. Returns what it did.
    pub fn compact(&self) -> Result<CompactReport> {
        self.inner.compact()
    }

    /// Deletes with a seq up to `floor` may be dropped by compaction; a
    /// master sets it to the lowest seq its replicas have applied so they
    /// can resume from the log. Default: `Seq::MAX` (no replicas).
    pub fn set_tombstone_floor(&self, floor: Seq) {
        *lock(&self.inner.tombstone_floor) = floor;
    }

    /// Highest seq of a delete compaction dropped: a replica that applied
    /// less needs a snapshot (`read_from` below it fails).
    pub fn tombstone_horizon(&self) -> Seq {
        self.inner.read().tombstone_horizon
    }

    /// What `open` found: records replayed, bytes of a torn tail cut.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn check_key(key: &[u8]) -> Result<()> {
        if key.len() > KEY_BYTES_MAX {
            return Err(Error::KeyTooLong { len: key.len() });
        }
        Ok(())
    }

    pub(crate) fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.inner.opts.value_bytes_max {
            return Err(Error::ValueTooLong {
                len: value.len(),
                max: self.inner.opts.value_bytes_max,
            });
        }
        Ok(())
    }

    /// Live entries (keys and ids).
    pub fn len(&self) -> u64 {
        self.inner.read().live
    }

    /// True when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Highest seq written or applied.
    pub fn seq(&self) -> Seq {
        self.inner.read().seq
    }

    /// The (term, seq) of the newest record: what a vote compares (terms
    /// are 0 before failover and in logs of format 1).
    pub fn last_log_id(&self) -> (u64, Seq) {
        let core = self.inner.read();
        (core.last_term, core.seq)
    }

    /// The term this node's own writes carry from now on. At open it is the
    /// highest term in the log replayed, or of the newest record at the
    /// checkpoint. Records applied from a master keep the master's term.
    pub fn set_term(&self, term: u64) {
        self.inner.write().term = term;
    }

    /// The term this node's own writes carry.
    pub fn term(&self) -> u64 {
        self.inner.read().term
    }

    /// Where the newest terms start in the log, oldest first (at most
    /// `TERMS_KEPT`; the file `terms`). Kept up to date by every write and
    /// apply, and by [`Db::truncate_after`].
    pub fn term_history(&self) -> Vec<TermStart> {
        self.inner.read().terms.starts().to_vec()
    }

    /// Replaces the term boundaries: a replica that installed a snapshot
    /// takes its master's (whose records it holds up to its seq). Entries
    /// past the seq are dropped; invalid ones (not ascending, more than
    /// `TERMS_KEPT`) are an error.
    pub fn set_term_history(&self, starts: &[TermStart]) -> Result<()> {
        let mut core = self.inner.write();
        let (dir, io, seq) = (core.log.dir.clone(), core.log.io.clone(), core.seq);
        core.terms.replace(starts, seq, &dir, &*io)
    }

    /// The failover term and vote on disk (term 0, no vote, if never set).
    pub fn vote(&self) -> Vote {
        *lock(&self.inner.vote)
    }

    /// Makes `vote` durable (write, fdatasync, rename, directory fsync) and
    /// returns once it is: a member sends a vote, or campaigns, only after
    /// this returned. Refuses a vote that takes back a term or a vote cast
    /// (`Error::InvalidVote`). Blocks for the fsyncs: call it off an
    /// executor thread. A failure leaves the vote on disk either as it was
    /// or as asked, and the one returned by [`Db::vote`] as it was.
    pub fn set_vote(&self, vote: Vote) -> Result<()> {
        let mut now = lock(&self.inner.vote);
        crate::vote::check(&now, &vote)?;
        if *now != vote {
            crate::vote::save(&self.inner.dir, &vote, &*self.inner.opts.io)?;
            *now = vote;
        }
        Ok(())
    }

    /// Order-independent digest of the live pairs, O(1): equal on any two
    /// databases with the same live pairs.
    pub fn digest(&self) -> u64 {
        self.inner.read().digest
    }

    /// Random id of this database's history, made when it was created.
    pub fn history_id(&self) -> u64 {
        self.inner.read().meta.history_id
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let core = self.inner.read();
        let (compactions, last_compaction) = lock(&self.inner.compactions).clone();
        let (done, total) = *lock(&self.inner.progress);
        let seek_skipped = marks(&core.log.marks).skipped;
        Stats {
            seq: core.seq,
            live: core.live,
            digest: core.digest,
            disk_bytes: core.disk_bytes(),
            files: core.log.order.len() as u16,
            next_id: core.next_id,
            history_id: core.meta.history_id,
            live_bytes: core.live_bytes,
            data_bytes: core.log.data_bytes(),
            compactions,
            compacting: (total > 0).then_some((done, total)),
            last_compaction,
            tombstone_horizon: core.tombstone_horizon,
            checkpoint_seq: core.meta.seq,
            last_term: core.last_term,
            write_lock_hold_max_us: self.inner.write_holds().map(|h| h.0),
            write_lock_holds_over_target: self.inner.write_holds().map(|h| h.1),
            write_lock_preempted: self.inner.write_holds().map(|h| h.2),
            rollover_stalls: core.log.seal_stalls,
            seek_skipped,
            sealed_mapped_bytes: core.log.maps.bytes() as u64,
            unmapped_reads: core.log.maps.misses(),
            disk_full: self.inner.full_disk_figures(),
        }
    }

    /// Writes buffered records and fdatasyncs them, whatever the fsync mode.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// The records with seq > `after`, in seq order. At the end `next()`
    /// returns `None`; called again later it yields records written since.
    pub fn read_from(&self, after: Seq) -> LogIter {
        LogIter::new(self.inner.clone(), after, None)
    }

    /// The live records (newest version of each id that holds a value), in
    /// seq order: what a new replica needs.
    pub fn snapshot(&self) -> LogIter {
        LogIter::new(self.inner.clone(), 0, Some(Seq::MAX))
    }

    /// The store as it was after seq `upto`: for each id, its newest version
    /// with a seq at most `upto`, if that holds a value; in seq order, and
    /// the same whatever is written while it is read (a key overwritten or
    /// deleted after `upto` still appears with its value at `upto`). What a
    /// replica that then follows the log from `upto` needs. A version
    /// compaction already dropped cannot be returned: call it with an
    /// `upto` no older than the writes of the last seconds.
    pub fn snapshot_at(&self, upto: Seq) -> LogIter {
        LogIter::new(self.inner.clone(), 0, Some(upto))
    }

    /// Changes whenever versions this database's log held may have been
    /// dropped: at each compaction's switch to its new files, at a cut of
    /// the log's tail, and at every open (it starts random). A reader that
    /// copies the store at one seq over several calls (a backup) compares
    /// it before and after each part.
    pub fn log_generation(&self) -> u64 {
        let generation = self.inner.read().log.generation;
        self.inner.instance.wrapping_add(generation)
    }

    /// As [`Db::snapshot_at`], with the records after seq `after` only: the
    /// next part of a copy read in several (a backup resumes after the last
    /// record it has).
    pub fn snapshot_at_after(&self, upto: Seq, after: Seq) -> LogIter {
        LogIter::new(self.inner.clone(), after, Some(upto))
    }

    /// Closes cleanly: writes the buffer, fsyncs and takes a checkpoint so
    /// the next open replays nothing.
    pub fn close(mut self) -> Result<()> {
        self.stop_flusher();
        self.crashed = true; // Drop must not do it again
        self.inner.writable()?;
        let r = self.inner.checkpoint_closing().map(|_| ());
        if let Err(e) = &r {
            self.inner.fail(e);
        }
        r
    }

    /// Rejoin: cuts the log back to `after`, for a former master whose
    /// records after it no majority acknowledged, and reopens. The records
    /// cut are kept in `diverged/after-{after}/` (fsynced before anything
    /// is cut) and named in the log; the tables are rebuilt from the log;
    /// the next write or applied record takes seq `after + 1`
    /// (`Recovery::diverged_after` and `diverged_bytes` of the reopened
    /// database say what happened). Crash-safe: a durable marker asks for
    /// the cut and every open finishes it until it is done.
    ///
    /// `after` at or above the newest seq cuts nothing. Below what
    /// compaction rewrote or the tombstone horizon it fails with
    /// `Error::Compacted` (versions the cut would need are gone): take a
    /// snapshot instead. Log readers must be dropped first (the reopen
    /// needs the directory lock).
    pub fn truncate_after(self, after: Seq) -> Result<Db> {
        let (seq, compacted) = {
            let core = self.inner.read();
            (core.seq, core.compact_seq.max(core.tombstone_horizon))
        };
        if after >= seq {
            return Ok(self);
        }
        if after < compacted {
            return Err(Error::Compacted {
                after,
                horizon: compacted,
            });
        }
        let (dir, opts) = (self.inner.dir.clone(), self.inner.opts.clone());
        crate::truncate::request(&dir, after, &*opts.io)?;
        self.close()?;
        Db::open(dir, opts)
    }

    /// Test aid: drops the database as a killed process would, without
    /// writing the buffer or a checkpoint.
    #[doc(hidden)]
    pub fn crash(mut self) {
        self.stop_flusher();
        self.crashed = true;
    }

    fn stop_flusher(&mut self) {
        for (stop, handle) in [self.flusher.take(), self.compactor.take()]
            .into_iter()
            .flatten()
        {
            drop(stop);
            let _ = handle.join();
        }
        if let Some(handle) = self.checkpointer.take() {
            lock(&self.inner.ckpt_signal).stop = true;
            self.inner.ckpt_cv.notify_one();
            let _ = handle.join();
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_flusher();
        if self.crashed || self.inner.writable().is_err() {
            return;
        }
        if let Err(e) = self.inner.checkpoint_closing() {
            log::error!("closing {}: {e}", self.inner.dir.display());
        }
    }
}
