//! The database: the public API over [`Core`], the lock around it, group
//! commit, and the background flusher of `Fsync::EveryMs`.

use crate::compact::CompactReport;
use crate::error::{Error, Result};
use crate::io::{FileIo, RealIo};
use crate::limits::{
    COMPACT_GARBAGE_PERCENT_DEFAULT, COMPACT_MIN_BYTES_DEFAULT, FILE_SIZE_DEFAULT, FILE_SIZE_MIN,
    HISTORY_DEPTH_MAX, HISTORY_KEEP_DEFAULT, KEYSIZE_DEFAULT, KEY_BYTES_MAX, VALUE_BYTES_LIMIT,
    VALUE_BYTES_MAX_DEFAULT,
};
use crate::location::{check_keysize, offset_limit, Location};
use crate::record::{Record, RecordKind, Seq};
use crate::recovery::{open_core, Recovery};
use crate::state::{Core, Write};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

mod unsynced;

/// Most ids one `scan` call examines; a page may hold fewer keys than asked
/// and still have a next cursor.
pub const SCAN_IDS_PER_CALL_MAX: u64 = 1 << 16;

/// Most fdatasyncs one group-commit leader runs back to back (its own,
/// then ones for writers that appended while it ran) before handing over.
pub const LEAD_ROUNDS_MAX: u32 = 4;

/// When writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// A write returns after its bytes are fdatasync'ed; concurrent writers
    /// share one fdatasync (group commit).
    Always,
    /// A background thread writes and fdatasyncs every n milliseconds; a
    /// crash loses at most the last n ms of acknowledged writes.
    EveryMs(u32),
    /// Writes are buffered (up to `WRITE_BUFFER_BYTES`) and reach the disk
    /// at checkpoints, `sync()` and close; a crash loses what was not yet
    /// synced.
    Never,
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct Options {
    /// Lookup entry width: 2, 3, 4 (one data file of up to 64 KiB, 16 MiB,
    /// 4 GiB) or 6 (up to 65536 files). Fixed when the database is created.
    pub keysize: u8,
    /// Data-file rollover size in bytes. Fixed when the database is created.
    pub file_size: u32,
    /// `true`: ids are assigned from 1 upward (`set(None, …)`); `false`: the
    /// caller chooses every id. Fixed when the database is created.
    pub incremental: bool,
    /// Durability of writes.
    pub fsync: Fsync,
    /// Longest value accepted (default 16 MiB).
    pub value_bytes_max: usize,
    /// Highest id accepted.
    pub ids_max: u32,
    /// The file layer (fault injection in tests).
    pub io: Arc<dyn FileIo>,
    /// Versions of each key compaction keeps (the newest included; at
    /// least 1). `history` returns older versions only until a compaction.
    pub history: usize,
    /// Compact automatically (a background thread checks every
    /// `COMPACT_CHECK_MS`) when garbage is at least this percentage of the
    /// data files …
    pub compact_garbage_percent: u8,
    /// … and at least this many bytes.
    pub compact_min_bytes: u64,
    /// Run the background compaction thread.
    pub auto_compact: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keysize: KEYSIZE_DEFAULT,
            file_size: FILE_SIZE_DEFAULT,
            incremental: true,
            fsync: Fsync::Always,
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            ids_max: u32::MAX - 1,
            io: Arc::new(RealIo),
            history: HISTORY_KEEP_DEFAULT,
            compact_garbage_percent: COMPACT_GARBAGE_PERCENT_DEFAULT,
            compact_min_bytes: COMPACT_MIN_BYTES_DEFAULT,
            auto_compact: true,
        }
    }
}

impl Options {
    fn check(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::BadOptions { detail });
        if let Err(e) = check_keysize(self.keysize) {
            return bad(e.to_string());
        }
        if self.file_size < FILE_SIZE_MIN {
            return bad(format!(
                "file_size {} is below {FILE_SIZE_MIN} (FILE_SIZE_MIN)",
                self.file_size
            ));
        }
        if let Some(limit) = offset_limit(self.keysize) {
            if self.file_size as u64 > limit {
                return bad(format!(
                    "keysize {} addresses offsets below {limit}; file_size {} is larger: lower it or raise keysize",
                    self.keysize, self.file_size
                ));
            }
        }
        if self.value_bytes_max > VALUE_BYTES_LIMIT {
            return bad(format!(
                "value_bytes_max {} exceeds {VALUE_BYTES_LIMIT} (VALUE_BYTES_LIMIT)",
                self.value_bytes_max
            ));
        }
        if self.ids_max == 0 || self.ids_max == u32::MAX {
            return bad(format!("ids_max must be between 1 and {}", u32::MAX - 1));
        }
        if let Fsync::EveryMs(0) = self.fsync {
            return bad("Fsync::EveryMs needs at least 1 ms; use Fsync::Always".into());
        }
        if self.history == 0 || self.history > HISTORY_DEPTH_MAX {
            return bad(format!(
                "history {} must be between 1 (only the newest version) and {HISTORY_DEPTH_MAX}",
                self.history
            ));
        }
        if self.compact_garbage_percent == 0 || self.compact_garbage_percent > 100 {
            return bad(format!(
                "compact_garbage_percent {} must be between 1 and 100",
                self.compact_garbage_percent
            ));
        }
        Ok(())
    }
}

/// One version of a key or id, newest first in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The seq of the mutation that made this version.
    pub seq: Seq,
    /// The value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// A page of keys from [`Db::scan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Live keys, in id order.
    pub keys: Vec<Vec<u8>>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next_cursor: Option<u64>,
}

/// Counters of a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Highest seq.
    pub seq: Seq,
    /// Live entries (keys and ids).
    pub live: u64,
    /// Content digest.
    pub digest: u64,
    /// Bytes of data files and tables.
    pub disk_bytes: u64,
    /// Data files.
    pub files: u16,
    /// Next id incremental mode assigns.
    pub next_id: u32,
    /// Random id of this database's history.
    pub history_id: u64,
    /// Bytes of the newest records that hold values.
    pub live_bytes: u64,
    /// Bytes of the data files.
    pub data_bytes: u64,
    /// Compactions finished since open.
    pub compactions: u64,
    /// A compaction is running: input bytes examined and total.
    pub compacting: Option<(u64, u64)>,
    /// The last compaction since open.
    pub last_compaction: Option<CompactReport>,
    /// Highest seq of a delete compaction dropped: `read_from` below it
    /// fails with `Error::Compacted`.
    pub tombstone_horizon: Seq,
    /// Seq as of the last checkpoint: a crash now would replay the records
    /// after it.
    pub checkpoint_seq: Seq,
}

#[derive(Default)]
struct CommitState {
    /// Log position (in `Log::appended`) known to be fdatasync'ed.
    synced: u64,
    /// A writer is syncing for everyone.
    leader: bool,
    /// Writers waiting for the leader.
    waiting: usize,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    core: RwLock<Core>,
    commit: Mutex<CommitState>,
    committed: Condvar,
    read_only: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Held while a compaction runs (one at a time).
    compacting: Mutex<()>,
    /// Held while a checkpoint runs (one at a time).
    ckpt_lock: Mutex<()>,
    /// (a checkpoint is due, stop) for the checkpoint thread.
    ckpt_signal: Mutex<(bool, bool)>,
    /// The checkpoint thread waits with nothing to checkpoint (no timer).
    ckpt_sleeping: AtomicBool,
    ckpt_cv: Condvar,
    /// Deletes with a seq up to this may be dropped by compaction.
    /// (A mutex, not an AtomicU64: 32-bit MIPS routers have no 64-bit atomics.)
    tombstone_floor: Mutex<Seq>,
    /// Progress of a running compaction: input bytes done, total (0: none).
    progress: Mutex<(u64, u64)>,
    compactions: Mutex<(u64, Option<CompactReport>)>,
    _lock: File,
}

/// A hypha-engine database. `Send + Sync`: share it with an `Arc`; readers
/// proceed while a write waits for its fsync.
pub struct Db {
    inner: Arc<Inner>,
    flusher: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    compactor: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    checkpointer: Option<JoinHandle<()>>,
    recovery: Recovery,
    crashed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
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

    /// Garbage bytes in the data files, if compaction is due by the options.
    fn compaction_due(&self) -> Option<u64> {
        let core = self.read();
        let data = core.log.data_bytes();
        let headers = (core.log.order.len() * crate::limits::FILE_HEADER_BYTES) as u64;
        let garbage = data.saturating_sub(core.live_bytes + headers);
        let enough = garbage >= self.opts.compact_min_bytes
            && garbage * 100 >= data * self.opts.compact_garbage_percent as u64;
        enough.then_some(garbage)
    }

    fn compact(&self) -> Result<CompactReport> {
        self.writable()?;
        let _one = lock(&self.compacting);
        let report = crate::compact::run(self)?;
        let mut c = lock(&self.compactions);
        c.0 += 1;
        c.1 = Some(report.clone());
        Ok(report)
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
        let behind = self.read().lookup.dirty() >= CHECKPOINT_BACKLOG * crate::CHECKPOINT_IDS_MAX;
        if behind {
            return self.checkpoint(true);
        }
        let mut sig = lock(&self.ckpt_signal);
        sig.0 = true;
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
            crate::state::sync_files(&files, &self.dir, &*io)?;
            let tables = self.write().checkpoint_tables()?;
            crate::state::sync_files(&tables, &self.dir, &*io)?;
            crate::state::write_meta(&self.dir, &meta, &*io)?;
            self.write().meta = meta;
            Ok(())
        })();
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    /// Returns once the log is durable up to `upto` (a packed location);
    /// one caller fsyncs for all who wait (group commit).
    ///
    /// A leader whose fdatasync covered its own write goes on with the next
    /// one while others wait for bytes appended meanwhile, at most
    /// [`LEAD_ROUNDS_MAX`] rounds: handing over would leave the disk idle
    /// until a woken writer runs, which on a small machine costs about as
    /// long as the fdatasync itself.
    fn commit(&self, upto: u64) -> Result<()> {
        let mut st = lock(&self.commit);
        loop {
            // Durable before a later fdatasync failed is still durable.
            if st.synced >= upto {
                return Ok(());
            }
            self.writable()?;
            if st.leader {
                st.waiting += 1;
                st = self.committed.wait(st).unwrap_or_else(|p| p.into_inner());
                st.waiting -= 1;
                continue;
            }
            st.leader = true;
            drop(st);
            for round in 1.. {
                let result = self.sync_active();
                let appended = self.read().log.appended;
                let mut s = lock(&self.commit);
                let go_on = match result {
                    Ok(end) => {
                        s.synced = s.synced.max(end);
                        round < LEAD_ROUNDS_MAX && s.waiting > 0 && appended > s.synced
                    }
                    Err(e) => {
                        self.fail(&e);
                        false
                    }
                };
                s.leader = go_on;
                // Woken writers find the lock free.
                drop(s);
                self.committed.notify_all();
                if !go_on {
                    break;
                }
            }
            st = lock(&self.commit);
        }
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

    pub(crate) fn sync(&self) -> Result<()> {
        let end = self.read().log.appended;
        self.commit(end)
    }

    fn durable(&self, end: u64) -> Result<()> {
        match self.opts.fsync {
            Fsync::Always => self.commit(end),
            Fsync::EveryMs(_) | Fsync::Never => Ok(()),
        }
    }
}

impl Db {
    /// Opens the database in `dir`, creating it if empty, and recovers it if
    /// it was not closed cleanly.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Db> {
        opts.check()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            context: format!("create {}", dir.display()),
            source,
        })?;
        let lock_path = dir.join("LOCK");
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                context: format!("open {}", lock_path.display()),
                source,
            })?;
        if lock_file.try_lock().is_err() {
            return Err(Error::Locked { dir });
        }
        let (mut core, recovery) = open_core(&dir, &opts)?;
        core.log.prealloc = opts.fsync == Fsync::Always;
        let synced = core.log.appended;
        let inner = Arc::new(Inner {
            dir,
            opts: opts.clone(),
            core: RwLock::new(core),
            commit: Mutex::new(CommitState {
                synced,
                leader: false,
                waiting: 0,
            }),
            committed: Condvar::new(),
            read_only: AtomicBool::new(false),
            failure: Mutex::new(None),
            compacting: Mutex::new(()),
            ckpt_lock: Mutex::new(()),
            ckpt_signal: Mutex::new((false, false)),
            ckpt_sleeping: AtomicBool::new(false),
            ckpt_cv: Condvar::new(),
            tombstone_floor: Mutex::new(Seq::MAX),
            progress: Mutex::new((0, 0)),
            compactions: Mutex::new((0, None)),
            _lock: lock_file,
        });
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

    fn check_key(key: &[u8]) -> Result<()> {
        if key.len() > KEY_BYTES_MAX {
            return Err(Error::KeyTooLong { len: key.len() });
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.inner.opts.value_bytes_max {
            return Err(Error::ValueTooLong {
                len: value.len(),
                max: self.inner.opts.value_bytes_max,
            });
        }
        Ok(())
    }

    /// Stores `value` under `key`; returns the write's seq.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Seq> {
        Self::check_key(key)?;
        self.check_value(value)?;
        let ids_max = self.inner.opts.ids_max;
        let (seq, end) = self.inner.mutate(|core| {
            let id = match core.find_key(key)? {
                Some((id, _)) => id,
                None => core.new_key_id(key, ids_max)?,
            };
            core.append(Write {
                id,
                key,
                kind: RecordKind::Put,
                value,
                seq: None,
            })
        })?;
        self.inner.durable(end)?;
        Ok(seq)
    }

    /// The value of `key`, or `None`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_versioned(key)?.map(|(_, v)| v))
    }

    /// The value of `key` with the seq of the write that stored it.
    pub fn get_versioned(&self, key: &[u8]) -> Result<Option<(Seq, Vec<u8>)>> {
        Self::check_key(key)?;
        let core = self.inner.read();
        let Some((_, loc)) = core.find_key(key)? else {
            return Ok(None);
        };
        let r = core.log.record(loc)?;
        Ok(match r.header.kind {
            RecordKind::Put => Some((r.header.seq, r.value.to_vec())),
            RecordKind::Delete => None,
        })
    }

    /// True if `key` holds a value.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Self::check_key(key)?;
        let core = self.inner.read();
        let Some((id, _)) = core.find_key(key)? else {
            return Ok(false);
        };
        Ok(matches!(core.current(id)?, Some((_, h, _)) if h.kind == RecordKind::Put))
    }

    /// Deletes `key`; returns the delete's seq, or `None` if it was absent
    /// (then nothing is written).
    pub fn delete(&self, key: &[u8]) -> Result<Option<Seq>> {
        Self::check_key(key)?;
        let done = self.inner.mutate(|core| {
            let Some((id, _)) = core.find_key(key)? else {
                return Ok(None);
            };
            if !matches!(core.current(id)?, Some((_, h, _)) if h.kind == RecordKind::Put) {
                return Ok(None);
            }
            core.append(Write {
                id,
                key,
                kind: RecordKind::Delete,
                value: &[],
                seq: None,
            })
            .map(Some)
        })?;
        match done {
            Some((seq, end)) => {
                self.inner.durable(end)?;
                Ok(Some(seq))
            }
            None => Ok(None),
        }
    }

    /// Up to `depth` versions of `key`, newest first (deletes included).
    pub fn history(&self, key: &[u8], depth: usize) -> Result<Vec<Version>> {
        Self::check_key(key)?;
        let core = self.inner.read();
        match core.find_key(key)? {
            Some((id, loc)) => walk_history(&core, id, loc, depth),
            None => Ok(Vec::new()),
        }
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
        }
    }

    /// Up to `limit` live keys starting with `prefix`, from `cursor` (0 for
    /// the start) on. Order is by id: stable, and keys written after the scan
    /// started appear at its end.
    pub fn scan(&self, cursor: u64, prefix: &[u8], limit: usize) -> Result<ScanPage> {
        let core = self.inner.read();
        let bound = core.lookup.id_bound().max(core.next_id as u64);
        let mut page = ScanPage::default();
        let mut id = cursor.max(1);
        let stop = bound.min(id.saturating_add(SCAN_IDS_PER_CALL_MAX));
        while id < stop && page.keys.len() < limit {
            if let Some((loc, h, key)) = core.current(id as u32)? {
                if h.kind == RecordKind::Put && !key.is_empty() && key.starts_with(prefix) {
                    page.keys.push(core.log.record(loc)?.key.to_vec());
                }
            }
            id += 1;
        }
        page.next_cursor = (id < bound).then_some(id);
        Ok(page)
    }

    /// Writes buffered records and fdatasyncs them, whatever the fsync mode.
    pub fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    /// The records with seq > `after`, in seq order. At the end `next()`
    /// returns `None`; called again later it yields records written since.
    pub fn read_from(&self, after: Seq) -> LogIter {
        LogIter::new(self.inner.clone(), after, false)
    }

    /// The live records (newest version of each id that holds a value), in
    /// seq order: what a new replica needs.
    pub fn snapshot(&self) -> LogIter {
        LogIter::new(self.inner.clone(), 0, true)
    }

    /// Writes a record from another database keeping its seq, id and key.
    /// Returns `false` (and writes nothing) if its seq is not above this
    /// database's: applying a record twice changes nothing.
    pub fn apply(&self, r: &Record) -> Result<bool> {
        Self::check_key(&r.key)?;
        self.check_value(&r.value)?;
        if r.kind == RecordKind::Delete && !r.value.is_empty() {
            return Err(Error::InvalidRecord {
                detail: format!(
                    "seq {}: a delete carries a {}-byte value",
                    r.seq,
                    r.value.len()
                ),
            });
        }
        if r.id == 0 || r.id > self.inner.opts.ids_max {
            return Err(Error::IdOutOfRange {
                id: r.id,
                max: self.inner.opts.ids_max,
            });
        }
        let done = self.inner.mutate(|core| {
            if r.seq <= core.seq {
                return Ok(None);
            }
            if !r.key.is_empty() {
                match core.find_key(&r.key)? {
                    // The key's old id ends in a delete: the source dropped
                    // that delete in a compaction and bound the key anew.
                    Some((id, _))
                        if id != r.id
                            && matches!(core.current(id)?, Some((_, h, _)) if h.kind == RecordKind::Delete)
                            && core.lookup.get(r.id)?.is_none() =>
                    {
                        let io = core.log.io.clone();
                        let hash = crate::hash::key_hash(&r.key, core.keys.seed);
                        core.keys.insert(hash, r.id, &*io)?;
                    }
                    Some((id, _)) if id != r.id => {
                        return Err(Error::Diverged {
                            detail: format!(
                                "seq {}: key is id {id} here, id {} in the record",
                                r.seq, r.id
                            ),
                        })
                    }
                    Some(_) => {}
                    None => {
                        if let Some((_, _, k)) = core.current(r.id)? {
                            if k != r.key.as_slice() {
                                return Err(Error::Diverged {
                                    detail: format!(
                                        "seq {}: id {} holds another key here",
                                        r.seq, r.id
                                    ),
                                });
                            }
                        }
                        let io = core.log.io.clone();
                        let hash = crate::hash::key_hash(&r.key, core.keys.seed);
                        core.keys.insert(hash, r.id, &*io)?;
                    }
                }
            } else if let Some((_, _, k)) = core.current(r.id)? {
                if !k.is_empty() {
                    return Err(Error::Diverged {
                        detail: format!("seq {}: id {} holds a key here", r.seq, r.id),
                    });
                }
            }
            let w = Write {
                id: r.id,
                key: &r.key,
                kind: r.kind,
                value: &r.value,
                seq: Some(r.seq),
            };
            core.append(w).map(Some)
        })?;
        match done {
            Some((_, end)) => {
                self.inner.durable(end)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The OurDB-style id API on the same storage.
    pub fn ids(&self) -> Ids<'_> {
        Ids { db: self }
    }

    /// Closes cleanly: writes the buffer, fsyncs and takes a checkpoint so
    /// the next open replays nothing.
    pub fn close(mut self) -> Result<()> {
        self.stop_flusher();
        self.crashed = true; // Drop must not do it again
        self.inner.writable()?;
        let r = self.inner.write().checkpoint().map(|_| ());
        if let Err(e) = &r {
            self.inner.fail(e);
        }
        r
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
            lock(&self.inner.ckpt_signal).1 = true;
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
        if let Err(e) = self.inner.write().checkpoint() {
            log::error!("closing {}: {e}", self.inner.dir.display());
        }
    }
}

/// A writer takes a checkpoint itself when this many times
/// `CHECKPOINT_IDS_MAX` ids changed without one (the checkpoint thread is
/// behind), which bounds the overlay's memory.
pub const CHECKPOINT_BACKLOG: usize = 4;

/// A database that has changed since its last checkpoint and then sees no
/// write for this long (noticed within twice this) takes a checkpoint: a
/// crash while it sits idle then replays nothing, and memory held for the
/// burst (pending key-index slots) is freed. A steady stream of writes, however slow, never triggers it; the
/// size thresholds (`CHECKPOINT_IDS_MAX`, `CHECKPOINT_BYTES_MAX`) do.
pub const CHECKPOINT_IDLE_MS: u64 = 1000;

fn spawn_checkpointer(inner: Arc<Inner>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("hypha-ckpt".into())
        .spawn(move || loop {
            let mut sig = lock(&inner.ckpt_signal);
            // Set before looking, so a write after the look wakes us.
            inner.ckpt_sleeping.store(true, Ordering::SeqCst);
            let (seq, changed) = {
                let core = inner.read();
                (core.seq, core.ckpt_bytes > 0)
            };
            if changed {
                inner.ckpt_sleeping.store(false, Ordering::SeqCst);
            }
            if !sig.0 && !sig.1 {
                sig = match changed {
                    true => {
                        let idle = Duration::from_millis(CHECKPOINT_IDLE_MS);
                        inner
                            .ckpt_cv
                            .wait_timeout(sig, idle)
                            .map_or_else(|p| p.into_inner().0, |(g, _)| g)
                    }
                    // Nothing to do: no timer wakes an idle database.
                    false => inner.ckpt_cv.wait(sig).unwrap_or_else(|p| p.into_inner()),
                };
            }
            // (Under the lock, so a writer that finds it set notifies a wait
            // that has not ended.)
            inner.ckpt_sleeping.store(false, Ordering::SeqCst);
            if sig.1 {
                return;
            }
            let asked = std::mem::take(&mut sig.0);
            drop(sig);
            if !asked {
                // Woken by a first write, or timed out: checkpoint only after
                // CHECKPOINT_IDLE_MS without a write.
                if !changed || inner.read().seq != seq {
                    continue;
                }
                log::debug!("{}: idle checkpoint", inner.dir.display());
            }
            if inner.writable().is_ok() {
                if let Err(e) = inner.checkpoint(true) {
                    log::error!("{}: checkpoint failed: {e}", inner.dir.display());
                }
            }
        })
        .expect("cannot start the checkpoint thread")
}

/// Milliseconds between the background compactor's checks.
pub const COMPACT_CHECK_MS: u64 = 1000;

fn spawn_compactor(inner: std::sync::Weak<Inner>) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("hypha-compact".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(COMPACT_CHECK_MS))
            {
                let Some(inner) = inner.upgrade() else { return };
                if inner.writable().is_err() {
                    continue;
                }
                if let Some(garbage) = inner.compaction_due() {
                    log::info!(
                        "{}: {:.1} MB of garbage in the data files: compacting",
                        inner.dir.display(),
                        garbage as f64 / 1e6
                    );
                    if let Err(e) = inner.compact() {
                        log::error!("{}: compaction failed: {e}", inner.dir.display());
                    }
                }
            }
        })
        .expect("cannot start the compaction thread");
    (tx, handle)
}

fn spawn_flusher(inner: std::sync::Weak<Inner>, ms: u32) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("hypha-flush".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(ms as u64))
            {
                let Some(inner) = inner.upgrade() else { return };
                if inner.writable().is_ok() {
                    let _ = inner.sync();
                }
            }
        })
        .expect("cannot start the flusher thread");
    (tx, handle)
}

fn walk_history(core: &Core, id: u32, mut loc: Location, depth: usize) -> Result<Vec<Version>> {
    let mut out = Vec::new();
    let mut newer: Option<crate::record::Header> = None;
    while !loc.is_none() && out.len() < depth.min(HISTORY_DEPTH_MAX) {
        let r = match core.log.record(loc) {
            Ok(r) => r,
            // A version a compaction moved, seen through the pointer of a
            // record written while it ran: the chain ends.
            Err(_) if newer.as_ref().is_some_and(|h| core.may_dangle(h)) => break,
            Err(e) => return Err(e),
        };
        if r.header.id != id {
            return Err(core.log.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "history chain (id differs)",
                },
            ));
        }
        out.push(Version {
            seq: r.header.seq,
            value: (r.header.kind == RecordKind::Put).then(|| r.value.to_vec()),
        });
        let h = r.header;
        loc = core
            .prev_version(&h, loc)?
            .map_or(Location::NONE, |(p, _)| p);
        newer = Some(h);
    }
    Ok(out)
}

/// The OurDB-equivalent id API: `set`, `get`, `history`, `delete`, `next_id`.
pub struct Ids<'a> {
    db: &'a Db,
}

impl Ids<'_> {
    fn check_id(&self, id: u32) -> Result<()> {
        let max = self.db.inner.opts.ids_max;
        if id == 0 || id > max {
            return Err(Error::IdOutOfRange { id, max });
        }
        Ok(())
    }

    /// Stores `data`. Incremental mode: `None` assigns the next id,
    /// `Some(id)` updates an assigned id. Caller-chosen mode: `Some(id)`.
    pub fn set(&self, id: Option<u32>, data: &[u8]) -> Result<u32> {
        self.db.check_value(data)?;
        if let Some(id) = id {
            self.check_id(id)?;
        }
        let ids_max = self.db.inner.opts.ids_max;
        let (id, end) = self.db.inner.mutate(|core| {
            let id = match (core.meta.incremental, id) {
                (true, None) => {
                    if core.next_id > ids_max {
                        return Err(Error::IdOutOfRange {
                            id: core.next_id,
                            max: ids_max,
                        });
                    }
                    core.next_id
                }
                (true, Some(id)) if id >= core.next_id => {
                    return Err(Error::IdNotAssigned {
                        id,
                        next: core.next_id,
                    })
                }
                (false, None) => return Err(Error::NotIncremental),
                (_, Some(id)) => id,
            };
            if let Some((_, _, key)) = core.current(id)? {
                if !key.is_empty() {
                    return Err(Error::IdHasKey { id });
                }
            }
            let (_, end) = core.append(Write {
                id,
                key: &[],
                kind: RecordKind::Put,
                value: data,
                seq: None,
            })?;
            Ok((id, end))
        })?;
        self.db.inner.durable(end)?;
        Ok(id)
    }

    /// The data of `id`, or `None` if it was never set or is deleted.
    pub fn get(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.check_id(id)?;
        let core = self.db.inner.read();
        let loc = core.lookup.get(id)?;
        if loc.is_none() {
            return Ok(None);
        }
        let r = core.log.record(loc)?;
        if r.header.id != id {
            // A damaged lookup entry pointing at another id's record.
            return Err(core.log.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "record id (lookup disagrees)",
                },
            ));
        }
        Ok((r.header.kind == RecordKind::Put).then(|| r.value.to_vec()))
    }

    /// Up to `depth` versions of `id`, newest first (deletes included).
    pub fn history(&self, id: u32, depth: usize) -> Result<Vec<Version>> {
        self.check_id(id)?;
        let core = self.db.inner.read();
        let loc = core.lookup.get(id)?;
        walk_history(&core, id, loc, depth)
    }

    /// Makes `id` read as absent; `None` if it already did.
    pub fn delete(&self, id: u32) -> Result<Option<Seq>> {
        self.check_id(id)?;
        let done = self.db.inner.mutate(|core| {
            let Some((_, h, key)) = core.current(id)? else {
                return Ok(None);
            };
            if h.kind != RecordKind::Put {
                return Ok(None);
            }
            let key = key.to_vec();
            core.append(Write {
                id,
                key: &key,
                kind: RecordKind::Delete,
                value: &[],
                seq: None,
            })
            .map(Some)
        })?;
        match done {
            Some((seq, end)) => {
                self.db.inner.durable(end)?;
                Ok(Some(seq))
            }
            None => Ok(None),
        }
    }

    /// The id `set(None, …)` assigns next (incremental mode only).
    pub fn next_id(&self) -> Result<u32> {
        let core = self.db.inner.read();
        if !core.meta.incremental {
            return Err(Error::NotIncremental);
        }
        Ok(core.next_id)
    }
}

/// Iterator over records in log (= seq) order; see [`Db::read_from`]. It
/// does not keep the database open: once the `Db` is closed it ends. It
/// survives compaction: it finds its place again by seq.
pub struct LogIter {
    inner: std::sync::Weak<Inner>,
    pos: Location,
    generation: u64,
    after: Seq,
    live_only: bool,
}

/// The first live file that can hold a record with a seq above `after`.
fn seek(core: &Core, after: Seq) -> Location {
    let order = &core.log.order;
    let n = order.partition_point(|&f| {
        core.log
            .file(f)
            .is_some_and(|f| f.header.first_seq <= after.saturating_add(1))
    });
    Location {
        file: order[n.saturating_sub(1)],
        offset: crate::limits::FILE_HEADER_BYTES as u32,
    }
}

impl LogIter {
    fn new(inner: Arc<Inner>, after: Seq, live_only: bool) -> LogIter {
        let (pos, generation) = {
            let core = inner.read();
            (seek(&core, after), core.log.generation)
        };
        LogIter {
            inner: Arc::downgrade(&inner),
            pos,
            generation,
            after,
            live_only,
        }
    }

    /// The seq of the last record returned (or the starting point).
    pub fn position(&self) -> Seq {
        self.after
    }
}

impl Iterator for LogIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        let inner = self.inner.upgrade()?;
        let core = inner.read();
        if !self.live_only && self.after < core.tombstone_horizon {
            return Some(Err(Error::Compacted {
                after: self.after,
                horizon: core.tombstone_horizon,
            }));
        }
        if self.generation != core.log.generation {
            self.generation = core.log.generation;
            self.pos = seek(&core, self.after);
        }
        loop {
            if self.pos.offset >= core.log.readable_end(self.pos.file) {
                match core.log.next_after(self.pos.file) {
                    Some(next) => {
                        self.pos = Location {
                            file: next,
                            offset: crate::limits::FILE_HEADER_BYTES as u32,
                        };
                        continue;
                    }
                    None => return None,
                }
            }
            let at = self.pos;
            let r = match core.log.record(at) {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            self.pos.offset += r.header.record_len() as u32;
            if r.header.seq <= self.after {
                continue;
            }
            if self.live_only {
                let current = match core.lookup.get(r.header.id) {
                    Ok(l) => l,
                    Err(e) => return Some(Err(e)),
                };
                if current != at || r.header.kind != RecordKind::Put {
                    continue;
                }
            }
            self.after = r.header.seq;
            return Some(Ok(r.to_record()));
        }
    }
}
