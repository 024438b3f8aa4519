#![no_main]
//! `Db`'s key API and compaction against a model, with crash points: the
//! fuzz version of `engine/tests/model_crash.rs` and of the fault tests in
//! `engine/tests/compaction.rs`.
//!
//! The model is the list of acknowledged writes, the versions compaction
//! has removed from it and the tombstone horizon. The engine's file layer
//! notes how long each file was at its last fdatasync: a power cut cannot
//! take those bytes and may take any others. A crash drops the write buffer
//! (`Db::crash`), cuts one data file — any of them — at an arbitrary offset
//! past its synced length, and may append junk. The reopened database must
//! then equal the model after a prefix of the writes (its seq names the
//! prefix; a seq no write had is invented), and that prefix holds every
//! write acknowledged as durable: all writes up to the last `sync`, close or
//! successful compaction, and every write made under `Fsync::Always`.
//!
//! `Compact` sets a tombstone floor and compacts; the model then keeps the
//! newest `history` versions of each key, or none when the newest is a
//! delete at or below the floor (which raises the horizon). `CompactCrash`
//! arms `FaultyIo` in the file layer so that the Nth write or fdatasync of
//! the compaction and every one after it fail, then crashes as above: the
//! reopened database must show either the state before the compaction (any
//! prefix, as after a crash) or the compacted one (every write), never a
//! mix.
//!
//! `PutIf`/`DeleteIf` are compare-and-swap writes whose expectation the
//! model decides: written exactly when it holds, else a conflict naming the
//! key's live seq. `Batch` is an atomic batch (`Db::batch`): its writes get
//! consecutive seqs, and a reopen never ends inside one. `PutTtl`,
//! `Refresh` and `Expire` are expiry: a put with a deadline, a new deadline
//! for the live value, and `expire_due`, which writes a delete exactly when
//! the live version's deadline is due; `Get` compares `get_live`'s
//! deadline with the model's.
//!
//! After every reopen and compaction, gets, histories (seqs and values),
//! `len`, the digest (recomputed from the model with `hash::pair_hash`), a
//! full scan, the tombstone horizon, `read_from` (from the horizon: exactly
//! the model's remaining versions in seq order; below it: `Compacted`) and
//! `snapshot` are compared; nothing may panic.

use arbitrary::Arbitrary;
use hypha_engine::hash::pair_hash;
use hypha_engine::io::{FaultyIo, FileIo};
use hypha_engine::limits::{FILE_HEADER_BYTES, FILE_SIZE_MIN};
use hypha_engine::tables::FileHeader;
use hypha_engine::{
    BatchOp, Db, Error, Expect, Fsync, LogIter, Once, Options, RecordKind, Seq, Version,
};
use hypha_fuzz::TempDir;
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Keys the operations pick from (`key_idx % KEYS`).
const KEYS: u8 = 16;
/// Longest value a `Put` writes: a 16 KiB data file holds about 8.
const VALUE_BYTES_MAX: usize = 2048;
/// Most puts one `Fill` makes: up to 4 data files of 16 KiB.
const FILL_PUTS_MAX: u8 = 32;
/// Most writes one `Batch` makes.
const BATCH_OPS_MAX: usize = 6;
/// Most junk bytes a crash appends.
const GARBAGE_BYTES_MAX: usize = 256;
/// Deepest history compared after a reopen.
const HISTORY_CHECK_DEPTH: usize = 8;
/// `Options::history` is `1 + history % HISTORY_KEEP_MAX` after a `Reopen`
/// (1, the default, before the first).
const HISTORY_KEEP_MAX: u8 = 3;
/// `CompactCrash` fails the `1 + at % FAULT_AT_MAX`th write or fdatasync of
/// the compaction. A compaction of the few files a run makes does about
/// 1-15 of each; higher numbers crash after a compaction that finished.
const FAULT_AT_MAX: u8 = 32;
/// EIO.
const EIO: i32 = 5;

#[derive(Arbitrary, Debug)]
enum Op {
    Put {
        key_idx: u8,
        value: Value,
    },
    Delete {
        key_idx: u8,
    },
    /// A compare-and-swap put: `kind % 3` picks `Expect::Seq` (the live
    /// seq, or a wrong one when `wrong` is odd), `Absent` or `Present`.
    PutIf {
        key_idx: u8,
        value: Value,
        kind: u8,
        wrong: u8,
    },
    /// A compare-and-swap delete (as `PutIf`).
    DeleteIf {
        key_idx: u8,
        kind: u8,
        wrong: u8,
    },
    /// An atomic batch of up to `BATCH_OPS_MAX` puts (`Some`) and deletes.
    Batch {
        items: Vec<(u8, Option<Value>)>,
    },
    /// A put with deadline `1 + deadline`.
    PutTtl {
        key_idx: u8,
        value: Value,
        deadline: u16,
    },
    /// A new deadline `1 + deadline` for the key's live value.
    Refresh {
        key_idx: u8,
        deadline: u16,
    },
    /// `expire_due` at time `now`.
    Expire {
        key_idx: u8,
        now: u16,
    },
    Get {
        key_idx: u8,
    },
    History {
        key_idx: u8,
        depth: u8,
    },
    /// `n % FILL_PUTS_MAX` puts of `value` to consecutive keys from
    /// `key_idx`: one op that rolls data files over, so that a crash finds
    /// written but unsynced bytes to cut.
    Fill {
        key_idx: u8,
        n: u8,
        value: Value,
    },
    Sync,
    /// Clean close, then open with `Fsync::Always` or `Fsync::Never` and
    /// `Options::history = 1 + history % HISTORY_KEEP_MAX`.
    Reopen {
        always: bool,
        history: u8,
    },
    /// Power cut: `cut` picks where the unsynced bytes end; `garbage` is
    /// appended as zeros or as scrambled junk.
    Crash {
        cut: u32,
        zeros: bool,
        garbage: Vec<u8>,
    },
    /// `set_tombstone_floor` (see [`Floor`]), then `compact`, which must
    /// succeed.
    Compact {
        floor: Floor,
    },
    /// `Compact` whose `1 + at % FAULT_AT_MAX`th write (`on_sync`: fdatasync)
    /// and everything after fail, then a power cut as `Crash`.
    CompactCrash {
        floor: Floor,
        on_sync: bool,
        at: u8,
        cut: u32,
        zeros: bool,
        garbage: Vec<u8>,
    },
}

/// The tombstone floor, relative to the newest seq: `behind == 0` is
/// `Seq::MAX` (the default: no replica needs a delete), otherwise
/// `seq + 1 - behind` (0 at the least: every delete is kept).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Floor {
    behind: u8,
}

impl Floor {
    fn seq(self, newest: Seq) -> Seq {
        match self.behind {
            0 => Seq::MAX,
            b => (newest + 1).saturating_sub(b as Seq),
        }
    }
}

/// `len % (VALUE_BYTES_MAX + 1)` bytes cycling through `pattern`, so a short
/// input still fills data files and makes them roll over.
#[derive(Arbitrary, Debug)]
struct Value {
    len: u16,
    pattern: Vec<u8>,
}

impl Value {
    fn bytes(&self) -> Vec<u8> {
        let len = self.len as usize % (VALUE_BYTES_MAX + 1);
        match self.pattern.is_empty() {
            true => vec![0x5a; len],
            false => self.pattern.iter().copied().cycle().take(len).collect(),
        }
    }
}

/// An acknowledged write: seq, key index, value (`None`: delete).
type Write = (Seq, u8, Option<Vec<u8>>);

fn key(i: u8) -> Vec<u8> {
    format!("key-{}", i % KEYS).into_bytes()
}

/// The real file layer, noting each file's length at its last fdatasync
/// (by device and inode, so a file keeps its entry across reopens and
/// renames), with a `FaultyIo` armed for one compaction.
#[derive(Debug, Default)]
struct Io {
    synced: Mutex<HashMap<(u64, u64), u64>>,
    fault: Mutex<Option<FaultyIo>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Io {
    /// Bytes of `path` a power cut cannot take.
    fn synced_len(&self, path: &Path) -> u64 {
        let m = std::fs::metadata(path).expect("cannot stat a data file");
        lock(&self.synced)
            .get(&(m.dev(), m.ino()))
            .copied()
            .unwrap_or(0)
            .min(m.len())
    }

    /// Forgets files that are gone (so a reused inode starts unsynced).
    fn forget_all_but(&self, dir: &Path) {
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(dir).expect("cannot list the database") {
            let m = entry
                .and_then(|e| e.metadata())
                .expect("cannot stat a file");
            present.insert((m.dev(), m.ino()));
        }
        lock(&self.synced).retain(|k, _| present.contains(k));
    }

    /// From now on the `at`th write (or fdatasync) and all after it fail.
    fn arm(&self, on_sync: bool, at: u64) {
        let (w, s) = if on_sync { (0, at) } else { (at, 0) };
        *lock(&self.fault) = Some(FaultyIo::new(w, s, EIO));
    }

    fn disarm(&self) {
        *lock(&self.fault) = None;
    }
}

impl FileIo for Io {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        match &*lock(&self.fault) {
            Some(faulty) => faulty.write_at(file, buf, offset),
            None => file.write_all_at(buf, offset),
        }
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        match &*lock(&self.fault) {
            Some(faulty) => faulty.sync_data(file)?,
            None => file.sync_data()?,
        }
        let m = file.metadata()?;
        lock(&self.synced).insert((m.dev(), m.ino()), m.len());
        Ok(())
    }
}

fn options(always: bool, history: usize, io: &Arc<Io>) -> Options {
    Options {
        file_size: FILE_SIZE_MIN,
        fsync: if always { Fsync::Always } else { Fsync::Never },
        io: io.clone(),
        history,
        // No background thread: a run must not depend on timing.
        auto_compact: false,
        ..Options::default()
    }
}

/// Data files (`N.db`) in log order (by the first seq in their header; a
/// file whose header is not readable, being created, last) with lengths.
fn data_files(dir: &Path) -> Vec<(u16, u64)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("cannot list the database") {
        let entry = entry.expect("cannot list the database");
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_suffix(".db"))
            .and_then(|s| s.parse::<u16>().ok())
        else {
            continue;
        };
        let mut header = Vec::new();
        File::open(entry.path())
            .and_then(|f| f.take(FILE_HEADER_BYTES as u64).read_to_end(&mut header))
            .expect("cannot read a data file header");
        let first_seq = match FileHeader::decode(&header) {
            Ok(Some(h)) => h.first_seq,
            _ => Seq::MAX,
        };
        let len = entry.metadata().expect("cannot stat a data file").len();
        files.push((first_seq, n, len));
    }
    files.sort();
    files.into_iter().map(|(_, n, len)| (n, len)).collect()
}

/// Junk that no compare in the engine can steer into a valid record: the
/// fuzzer's bytes xor a fixed keystream (a power cut leaves zeros or junk,
/// never a record with a matching CRC and pair hash).
fn scramble(garbage: &[u8]) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    garbage
        .iter()
        .map(|b| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b ^ (x as u8)
        })
        .collect()
}

/// A record as the model sees it: seq, key, value (`None`: delete).
type Logged = (Seq, Vec<u8>, Option<Vec<u8>>);

/// The records `it` yields.
fn records(it: LogIter) -> Result<Vec<Logged>, String> {
    it.map(|r| {
        let r = r.map_err(|e| format!("log: {e}"))?;
        let value = (r.kind == RecordKind::Put).then_some(r.value);
        Ok((r.seq, r.key, value))
    })
    .collect()
}

/// What compaction has done to the model: the seqs of the versions it
/// removed, and the tombstone horizon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct View {
    gone: BTreeSet<Seq>,
    horizon: Seq,
}

/// Returns `Err(message)` from a check when `cond` does not hold.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

struct Run {
    dir: TempDir,
    always: bool,
    history: usize,
    io: Arc<Io>,
    db: Option<Db>,
    writes: Vec<Write>,
    view: View,
    /// `writes[..durable]` were acknowledged as durable: no crash may lose them.
    durable: usize,
    /// `(first, last)` seqs of the batches of more than one record.
    batches: Vec<(Seq, Seq)>,
    /// The deadline each write with one carried, by seq.
    deadlines: BTreeMap<Seq, u64>,
}

impl Run {
    fn db(&self) -> &Db {
        self.db
            .as_ref()
            .expect("the database is open between operations")
    }

    fn newest_seq(&self) -> Seq {
        self.writes.last().map_or(0, |(s, _, _)| *s)
    }

    fn model(&self) -> BTreeMap<u8, Vec<u8>> {
        let mut model = BTreeMap::new();
        for (_, k, v) in &self.writes {
            match v {
                Some(v) => model.insert(*k, v.clone()),
                None => model.remove(k),
            };
        }
        model
    }

    /// The versions of key `k` the database holds, newest first.
    fn versions<'a>(&'a self, view: &'a View, k: u8) -> impl Iterator<Item = &'a Write> + 'a {
        self.writes
            .iter()
            .rev()
            .filter(move |(s, w, _)| *w == k && !view.gone.contains(s))
    }

    fn history(&self, view: &View, k: u8, depth: usize) -> Vec<Version> {
        self.versions(view, k)
            .take(depth)
            .map(|(seq, _, value)| Version {
                seq: *seq,
                value: value.clone(),
            })
            .collect()
    }

    /// The view after a compaction of every write keeping `keep` versions
    /// per key and dropping deletes at or below `floor`; the counts of
    /// records it keeps, drops and the deletes among the dropped.
    fn compacted(&self, keep: usize, floor: Seq) -> (View, (u64, u64, u64)) {
        let mut after = self.view.clone();
        let mut tombstones = 0;
        for k in 0..KEYS {
            let versions: Vec<&Write> = self.versions(&self.view, k).collect();
            match versions.first() {
                Some((seq, _, None)) if *seq <= floor => {
                    after.horizon = after.horizon.max(*seq);
                    after.gone.extend(versions.iter().map(|(s, _, _)| *s));
                    tombstones += 1;
                }
                _ => after
                    .gone
                    .extend(versions.iter().skip(keep).map(|(s, _, _)| *s)),
            }
        }
        let kept = (self.writes.len() - after.gone.len()) as u64;
        let dropped = (after.gone.len() - self.view.gone.len()) as u64;
        (after, (kept, dropped, tombstones))
    }

    /// A conditional put (`value`) or delete of key `k`: written exactly
    /// when the model says the expectation holds, else a conflict naming
    /// the live seq.
    fn put_if(&mut self, k: u8, value: Option<Vec<u8>>, kind: u8, wrong: u8) {
        let live = self
            .writes
            .iter()
            .rev()
            .find(|(_, w, _)| *w == k)
            .and_then(|(s, _, v)| v.as_ref().map(|_| *s));
        let expect = match kind % 3 {
            0 => Expect::Seq(live.unwrap_or(1) + u64::from(wrong % 2)),
            1 => Expect::Absent,
            _ => Expect::Present,
        };
        let holds = match expect {
            Expect::Seq(s) => live == Some(s),
            Expect::Absent => live.is_none(),
            Expect::Present => live.is_some(),
        };
        let done = match &value {
            Some(v) => self.db().put_if(&key(k), v, expect, None, true),
            None => self.db().delete_if(&key(k), expect, None, true),
        };
        match done.expect("conditional write").expect("a waiting write ends") {
            Once::Conflict(current) => {
                assert!(!holds, "{expect:?} held for key {k} (live {live:?}) but conflicted");
                assert_eq!(current, live, "a conflict names the live seq");
            }
            Once::Wrote(Some(seq)) => {
                assert!(holds, "{expect:?} did not hold for key {k} (live {live:?}) but wrote");
                self.acknowledged((seq, k, value));
            }
            Once::Wrote(None) => assert!(holds && live.is_none(), "a delete of absent {k}"),
            other => panic!("conditional write without a request: {other:?}"),
        }
    }

    /// The deadline of key `k`'s live version, if it has one.
    fn live_deadline(&self, k: u8) -> Option<u64> {
        let (seq, _, value) = self.writes.iter().rev().find(|(_, w, _)| *w == k)?;
        value.as_ref()?;
        self.deadlines.get(seq).copied()
    }

    /// An atomic batch: its writes (a delete of a key absent by then
    /// writes nothing) at consecutive seqs ending at the answer's.
    fn batch(&mut self, items: &[(u8, Option<Value>)]) {
        let items: Vec<(u8, Option<Vec<u8>>)> = items
            .iter()
            .take(BATCH_OPS_MAX)
            .map(|(k, v)| (k % KEYS, v.as_ref().map(Value::bytes)))
            .collect();
        let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| key(*k)).collect();
        let ops: Vec<BatchOp<'_>> = items
            .iter()
            .zip(&keys)
            .map(|((_, v), key)| match v {
                Some(value) => BatchOp::Put {
                    key,
                    value,
                    deadline_ms: 0,
                },
                None => BatchOp::Delete { key },
            })
            .collect();
        let last = self.db().batch(&ops).expect("batch");
        let mut live = self.model();
        let mut effective = Vec::new();
        for (k, v) in items {
            match &v {
                Some(value) => drop(live.insert(k, value.clone())),
                None if live.remove(&k).is_none() => continue,
                None => {}
            }
            effective.push((k, v));
        }
        let first = self.newest_seq() + 1;
        let n = effective.len() as u64;
        assert_eq!(last, (n > 0).then(|| first + n - 1), "a batch's seqs");
        if n > 1 {
            self.batches.push((first, first + n - 1));
        }
        for (i, (k, v)) in effective.into_iter().enumerate() {
            self.acknowledged((first + i as u64, k, v));
        }
    }

    fn acknowledged(&mut self, w: Write) {
        let last = self.newest_seq();
        assert_eq!(w.0, last + 1, "seqs of acknowledged writes have a gap");
        self.writes.push(w);
        if self.always {
            self.made_durable();
        }
    }

    fn made_durable(&mut self) {
        self.durable = self.writes.len();
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Put { key_idx, value } => {
                let (k, v) = (key_idx % KEYS, value.bytes());
                let seq = self.db().put(&key(k), &v).expect("put");
                self.acknowledged((seq, k, Some(v)));
            }
            Op::Fill { key_idx, n, value } => {
                let v = value.bytes();
                for i in 0..n % FILL_PUTS_MAX {
                    let k = key_idx.wrapping_add(i) % KEYS;
                    let seq = self.db().put(&key(k), &v).expect("put");
                    self.acknowledged((seq, k, Some(v.clone())));
                }
            }
            Op::PutIf {
                key_idx,
                value,
                kind,
                wrong,
            } => self.put_if(key_idx % KEYS, Some(value.bytes()), *kind, *wrong),
            Op::DeleteIf {
                key_idx,
                kind,
                wrong,
            } => self.put_if(key_idx % KEYS, None, *kind, *wrong),
            Op::Batch { items } => self.batch(items),
            Op::PutTtl {
                key_idx,
                value,
                deadline,
            } => {
                let (k, v, d) = (key_idx % KEYS, value.bytes(), 1 + u64::from(*deadline));
                let kb = key(k);
                let op = BatchOp::Put {
                    key: &kb,
                    value: &v,
                    deadline_ms: d,
                };
                let seq = self.db().batch(&[op]).expect("put").expect("a put writes");
                self.deadlines.insert(seq, d);
                self.acknowledged((seq, k, Some(v)));
            }
            Op::Refresh { key_idx, deadline } => {
                let (k, d) = (key_idx % KEYS, 1 + u64::from(*deadline));
                let kb = key(k);
                let op = BatchOp::Refresh {
                    key: &kb,
                    deadline_ms: d,
                };
                let live = self.model().remove(&k);
                match (self.db().batch(&[op]).expect("refresh"), live) {
                    (Some(seq), Some(v)) => {
                        self.deadlines.insert(seq, d);
                        self.acknowledged((seq, k, Some(v)));
                    }
                    (None, None) => {}
                    (got, live) => panic!("refresh of {k} wrote {got:?} with live {live:?}"),
                }
            }
            Op::Expire { key_idx, now } => {
                let (k, now) = (key_idx % KEYS, u64::from(*now));
                let due = self.live_deadline(k).filter(|&d| d <= now);
                match (self.db().expire_due(&key(k), now).expect("expire"), due) {
                    (Some(seq), Some(d)) => {
                        self.deadlines.insert(seq, d);
                        self.acknowledged((seq, k, None));
                    }
                    (None, None) => {}
                    (got, due) => panic!("expiry of {k} at {now} wrote {got:?}, due {due:?}"),
                }
            }
            Op::Delete { key_idx } => {
                let k = key_idx % KEYS;
                let live = self.model().contains_key(&k);
                match self.db().delete(&key(k)).expect("delete") {
                    Some(seq) => {
                        assert!(live, "deleted absent key {k}");
                        self.acknowledged((seq, k, None));
                    }
                    None => assert!(!live, "delete missed live key {k}"),
                }
            }
            Op::Get { key_idx } => {
                let k = key_idx % KEYS;
                assert_eq!(
                    self.db().get(&key(k)).expect("get"),
                    self.model().remove(&k)
                );
                let live = self.db().get_live(&key(k)).expect("get_live");
                let deadline = live.map(|l| l.deadline_ms).filter(|&d| d != 0);
                assert_eq!(deadline, self.live_deadline(k), "deadline of {k}");
            }
            Op::History { key_idx, depth } => {
                let (k, depth) = (key_idx % KEYS, *depth as usize);
                let got = self.db().history(&key(k), depth).expect("history");
                assert_eq!(
                    got,
                    self.history(&self.view, k, depth),
                    "history of key {k}"
                );
            }
            Op::Sync => {
                self.db().sync().expect("sync");
                self.made_durable();
            }
            Op::Reopen { always, history } => {
                self.db.take().expect("open").close().expect("close");
                self.made_durable();
                self.always = *always;
                self.history = 1 + (history % HISTORY_KEEP_MAX) as usize;
                self.reopen(None);
            }
            Op::Crash {
                cut,
                zeros,
                garbage,
            } => {
                self.db.take().expect("open").crash();
                self.cut(*cut as u64, *zeros, garbage);
                self.reopen(None);
            }
            Op::Compact { floor } => {
                let floor = floor.seq(self.newest_seq());
                let (after, (kept, dropped, tombstones)) = self.compacted(self.history, floor);
                let db = self.db();
                db.set_tombstone_floor(floor);
                let report = db.compact().expect("compact");
                assert_eq!(report.compact_seq, self.newest_seq(), "{report:?}");
                assert_eq!(
                    (report.kept, report.dropped, report.tombstones_dropped),
                    (kept, dropped, tombstones),
                    "records kept, dropped, deletes dropped: {report:?}"
                );
                self.view = after;
                // Compaction rolled the file over (fsync) and removed the
                // old files: every write is in fsynced files now.
                self.made_durable();
                self.check_all();
            }
            Op::CompactCrash {
                floor,
                on_sync,
                at,
                cut,
                zeros,
                garbage,
            } => {
                let floor = floor.seq(self.newest_seq());
                let (after, _) = self.compacted(self.history, floor);
                let db = self.db.take().expect("open");
                db.set_tombstone_floor(floor);
                self.io.arm(*on_sync, 1 + (at % FAULT_AT_MAX) as u64);
                let done = db.compact();
                self.io.disarm();
                if done.is_ok() {
                    self.made_durable();
                }
                db.crash();
                self.cut(*cut as u64, *zeros, garbage);
                self.reopen(Some(after));
            }
        }
    }

    /// Cuts the unsynced bytes at one point: `cut` picks a byte among the
    /// unsynced bytes of all data files, and the file holding it is cut
    /// there (files after it may keep theirs: writeback order across files
    /// is arbitrary). Then junk goes at the end of the newest file.
    fn cut(&self, cut: u64, zeros: bool, garbage: &[u8]) {
        let dir = self.dir.path();
        self.io.forget_all_but(dir);
        let files = data_files(dir);
        let spans: Vec<(u16, u64, u64)> = files
            .iter()
            .map(|&(n, len)| (n, self.io.synced_len(&dir.join(format!("{n}.db"))), len))
            .collect();
        let unsynced: u64 = spans.iter().map(|(_, floor, len)| len - floor).sum();
        let mut at = cut % (unsynced + 1);
        for (n, floor, len) in spans {
            if at < len - floor {
                OpenOptions::new()
                    .write(true)
                    .open(dir.join(format!("{n}.db")))
                    .and_then(|f| f.set_len(floor + at))
                    .expect("cannot truncate a data file");
                break;
            }
            at -= len - floor;
        }
        let garbage = &garbage[..garbage.len().min(GARBAGE_BYTES_MAX)];
        if let (false, Some((newest, _))) = (garbage.is_empty(), files.last()) {
            let junk = match zeros {
                true => vec![0; garbage.len()],
                false => scramble(garbage),
            };
            OpenOptions::new()
                .append(true)
                .open(dir.join(format!("{newest}.db")))
                .and_then(|mut f| f.write_all(&junk))
                .expect("cannot append junk");
        }
    }

    /// Opens after a close or crash and checks the prefix property. After a
    /// crash during a compaction, `compacted` is the view had it committed:
    /// the database must show it (with every write) or the view before it.
    fn reopen(&mut self, compacted: Option<View>) {
        let opts = options(self.always, self.history, &self.io);
        let db = Db::open(self.dir.path(), opts).expect("open after a crash");
        let seq = db.seq();
        let kept = self.writes.partition_point(|(s, _, _)| *s <= seq);
        let kept_seq = kept.checked_sub(1).map_or(0, |i| self.writes[i].0);
        assert_eq!(seq, kept_seq, "seq {seq} after reopen is no write's seq");
        assert!(
            kept >= self.durable,
            "reopen at seq {seq} lost durable writes (up to seq {})",
            self.writes[self.durable - 1].0
        );
        if let Some((first, last)) = self.batches.iter().find(|(f, l)| *f <= seq && seq < *l) {
            panic!("reopen at seq {seq}, inside the atomic batch of seqs {first}..={last}");
        }
        self.batches.retain(|(_, last)| *last <= seq);
        self.deadlines.retain(|s, _| *s <= seq);
        let (all, newest) = (kept == self.writes.len(), self.newest_seq());
        self.writes.truncate(kept);
        self.db = Some(db);
        self.made_durable(); // recovery checkpoints what it kept
        match compacted {
            Some(after) if after != self.view => match self.check(&self.view) {
                Ok(()) => {}
                Err(before) => {
                    // Had it committed, every write would be there.
                    assert!(
                        all,
                        "after a crash during compaction the database is at seq {seq}, \
                         below the newest write (seq {newest}), so it must be as before \
                         the compaction, but: {before}"
                    );
                    if let Err(e) = self.check(&after) {
                        panic!(
                            "after a crash during compaction the database is neither as \
                             before it ({before}) nor as after it ({e})"
                        );
                    }
                    self.view = after;
                }
            },
            _ => self.check_all(),
        }
    }

    fn check_all(&self) {
        if let Err(e) = self.check(&self.view) {
            panic!("{e}");
        }
    }

    /// Compares the database with the model under `view`.
    fn check(&self, view: &View) -> Result<(), String> {
        let db = self.db();
        let model = self.model();
        for k in 0..KEYS {
            let got = db.get(&key(k)).map_err(|e| format!("get key {k}: {e}"))?;
            ensure!(got == model.get(&k).cloned(), "key {k}: {got:?}");
            let got = db
                .history(&key(k), HISTORY_CHECK_DEPTH)
                .map_err(|e| format!("history of key {k}: {e}"))?;
            let want = self.history(view, k, HISTORY_CHECK_DEPTH);
            ensure!(got == want, "history of key {k}: {got:?}, model {want:?}");
        }
        ensure!(
            db.len() == model.len() as u64,
            "live count {}, model {}",
            db.len(),
            model.len()
        );
        let digest = model
            .iter()
            .fold(0u64, |d, (&k, v)| d.wrapping_add(pair_hash(&key(k), 0, v)));
        ensure!(db.digest() == digest, "digest differs from the model's");
        let mut scanned = Vec::new();
        let mut cursor = Some(0);
        while let Some(c) = cursor {
            let page = db.scan(c, b"", 1000).map_err(|e| format!("scan: {e}"))?;
            scanned.extend(page.keys);
            cursor = page.next_cursor;
        }
        scanned.sort();
        let mut expected: Vec<_> = model.keys().map(|&k| key(k)).collect();
        expected.sort();
        ensure!(scanned == expected, "scan {scanned:?}, model {expected:?}");
        let horizon = db.tombstone_horizon();
        ensure!(
            horizon == view.horizon,
            "tombstone horizon {horizon}, model {}",
            view.horizon
        );
        if horizon > 0 {
            let first = db.read_from(horizon - 1).next();
            ensure!(
                matches!(first, Some(Err(Error::Compacted { .. }))),
                "read_from below the horizon {horizon}: {first:?}"
            );
        }
        let got = records(db.read_from(horizon))?;
        let want: Vec<Logged> = self
            .writes
            .iter()
            .filter(|(s, _, _)| *s > horizon && !view.gone.contains(s))
            .map(|(s, k, v)| (*s, key(*k), v.clone()))
            .collect();
        ensure!(
            got == want,
            "read_from({horizon}) seqs {:?}, model {:?}",
            got.iter().map(|r| r.0).collect::<Vec<_>>(),
            want.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        let got = records(db.snapshot())?;
        let mut want: Vec<_> = (0..KEYS)
            .filter_map(|k| match self.versions(view, k).next() {
                Some((s, _, Some(v))) => Some((*s, key(k), Some(v.clone()))),
                _ => None,
            })
            .collect();
        want.sort();
        ensure!(
            got == want,
            "snapshot seqs {:?}, model {:?}",
            got.iter().map(|r| r.0).collect::<Vec<_>>(),
            want.iter().map(|r| r.0).collect::<Vec<_>>()
        );
        Ok(())
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let dir = TempDir::new("engine_ops");
    let io = Arc::new(Io::default());
    let db = Db::open(dir.path(), options(false, 1, &io)).expect("create");
    let mut run = Run {
        dir,
        always: false,
        history: 1,
        io,
        db: Some(db),
        writes: Vec::new(),
        view: View::default(),
        durable: 0,
        batches: Vec::new(),
        deadlines: BTreeMap::new(),
    };
    for op in &ops {
        run.apply(op);
    }
    run.check_all();
    // Close before the directory goes: `run.db` drops first (field order).
    drop(run.db.take());
});
