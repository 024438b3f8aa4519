//! The database: the public API over [`Core`], the lock around it, group
//! commit, and the background flusher of `Fsync::EveryMs`.

use crate::error::{Error, Result};
use crate::io::{FileIo, RealIo};
use crate::limits::{
    FILE_SIZE_DEFAULT, FILE_SIZE_MIN, HISTORY_DEPTH_MAX, KEYSIZE_DEFAULT, KEY_BYTES_MAX,
    VALUE_BYTES_LIMIT, VALUE_BYTES_MAX_DEFAULT,
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

/// Most ids one `scan` call examines; a page may hold fewer keys than asked
/// and still have a next cursor.
pub const SCAN_IDS_PER_CALL_MAX: u64 = 1 << 16;

/// When writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// A write returns after its bytes are fdatasync'ed; concurrent writers
    /// share one fdatasync (group commit).
    Always,
    /// A background thread writes and fdatasyncs every n milliseconds; a
    /// crash loses at most the last n ms of acknowledged writes.
    EveryMs(u32),
    /// Writes are buffered (up to 1 MiB) and reach the disk at checkpoints,
    /// `sync()` and close; a crash loses what was not yet synced.
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
}

#[derive(Default)]
struct CommitState {
    /// Log position (packed `Location`) known to be fdatasync'ed.
    synced: u64,
    /// A writer is syncing for everyone.
    leader: bool,
}

pub(crate) struct Inner {
    dir: PathBuf,
    opts: Options,
    core: RwLock<Core>,
    commit: Mutex<CommitState>,
    committed: Condvar,
    read_only: AtomicBool,
    failure: Mutex<Option<String>>,
    _lock: File,
}

/// A hypha-engine database. `Send + Sync`: share it with an `Arc`; readers
/// proceed while a write waits for its fsync.
pub struct Db {
    inner: Arc<Inner>,
    flusher: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    recovery: Recovery,
    crashed: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, Core> {
        self.core.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, Core> {
        self.core.write().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> Result<()> {
        if self.read_only.load(Ordering::Acquire) {
            let cause = lock(&self.failure).clone().unwrap_or_default();
            return Err(Error::ReadOnly { cause });
        }
        Ok(())
    }

    /// Records a failed write or fsync: from now on the database is read-only.
    fn fail(&self, e: &Error) {
        let mut f = lock(&self.failure);
        if f.is_none() {
            log::error!("{}: stopping writes: {e}", self.dir.display());
            *f = Some(e.to_string());
        }
        self.read_only.store(true, Ordering::Release);
    }

    /// Runs a mutation under the write lock; an I/O failure makes the
    /// database read-only (the bytes may be half written).
    fn mutate<T>(&self, f: impl FnOnce(&mut Core) -> Result<T>) -> Result<T> {
        self.writable()?;
        let mut core = self.write();
        let r = f(&mut core);
        if let Err(e @ Error::Io { .. }) = &r {
            self.fail(e);
        }
        r
    }

    /// Returns once the log is durable up to `upto` (a packed location);
    /// one caller fsyncs for all who wait (group commit).
    fn commit(&self, upto: u64) -> Result<()> {
        let mut st = lock(&self.commit);
        loop {
            self.writable()?;
            if st.synced >= upto {
                return Ok(());
            }
            if st.leader {
                st = self.committed.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.leader = true;
            let from = Location::unpack(st.synced).file;
            drop(st);
            let result = self.sync_from(from);
            st = lock(&self.commit);
            st.leader = false;
            match result {
                Ok(end) => st.synced = st.synced.max(end),
                Err(e) => self.fail(&e),
            }
            self.committed.notify_all();
        }
    }

    /// Writes the buffer and fdatasyncs the data files from `from` on.
    fn sync_from(&self, from: u16) -> Result<u64> {
        let (files, end) = {
            let mut core = self.write();
            core.log.flush()?;
            (core.log.files_from(from), core.log.end().pack())
        };
        for f in files {
            self.opts.io.sync_data(&f).map_err(|source| Error::Io {
                context: format!("fdatasync a data file in {}", self.dir.display()),
                source,
            })?;
        }
        Ok(end)
    }

    fn sync(&self) -> Result<()> {
        let end = self.read().log.end().pack();
        self.commit(end)
    }

    fn durable(&self, end: Location) -> Result<()> {
        match self.opts.fsync {
            Fsync::Always => self.commit(end.pack()),
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
        let (core, recovery) = open_core(&dir, &opts)?;
        let synced = core.log.end().pack();
        let inner = Arc::new(Inner {
            dir,
            opts: opts.clone(),
            core: RwLock::new(core),
            commit: Mutex::new(CommitState {
                synced,
                leader: false,
            }),
            committed: Condvar::new(),
            read_only: AtomicBool::new(false),
            failure: Mutex::new(None),
            _lock: lock_file,
        });
        let flusher = match opts.fsync {
            Fsync::EveryMs(ms) => Some(spawn_flusher(Arc::downgrade(&inner), ms)),
            _ => None,
        };
        Ok(Db {
            inner,
            flusher,
            recovery,
            crashed: false,
        })
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
        Stats {
            seq: core.seq,
            live: core.live,
            digest: core.digest,
            disk_bytes: core.disk_bytes(),
            files: core.log.files.len() as u16,
            next_id: core.next_id,
            history_id: core.meta.history_id,
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
        if let Some((stop, handle)) = self.flusher.take() {
            drop(stop);
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
    while !loc.is_none() && out.len() < depth.min(HISTORY_DEPTH_MAX) {
        let r = core.log.record(loc)?;
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
        if !r.header.prev.is_none() && r.header.prev >= loc {
            return Err(core.log.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "history chain (not backwards)",
                },
            ));
        }
        loc = r.header.prev;
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
/// does not keep the database open: once the `Db` is closed it ends.
pub struct LogIter {
    inner: std::sync::Weak<Inner>,
    pos: Location,
    after: Seq,
    live_only: bool,
}

impl LogIter {
    fn new(inner: Arc<Inner>, after: Seq, live_only: bool) -> LogIter {
        let pos = {
            let core = inner.read();
            // The last file whose first seq is <= after + 1 holds the first
            // record past `after` (or everything after it does).
            let files = &core.log.files;
            let n = files.partition_point(|f| f.header.first_seq <= after.saturating_add(1));
            Location {
                file: n.saturating_sub(1) as u16,
                offset: crate::limits::FILE_HEADER_BYTES as u32,
            }
        };
        LogIter {
            inner: Arc::downgrade(&inner),
            pos,
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
        loop {
            let last = core.log.last_no();
            if self.pos.file > last {
                return None;
            }
            if self.pos.offset >= core.log.readable_end(self.pos.file) {
                if self.pos.file == last {
                    return None;
                }
                self.pos = Location {
                    file: self.pos.file + 1,
                    offset: crate::limits::FILE_HEADER_BYTES as u32,
                };
                continue;
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
