#![no_main]
//! `Db`'s key API against a model, with crash points: the fuzz version of
//! `engine/tests/model_crash.rs`.
//!
//! The model is the list of acknowledged writes. The engine's file layer
//! notes how long each file was at its last fdatasync: a power cut cannot
//! take those bytes and may take any others. A crash drops the write buffer
//! (`Db::crash`), cuts one data file — any of them — at an arbitrary offset
//! past its synced length, and may append junk. The reopened database must
//! then equal the model after a prefix of the writes (its seq names the
//! prefix; a seq no write had is invented), and that prefix holds every
//! write acknowledged as durable: all writes up to the last `sync`/close,
//! and every write made under `Fsync::Always`. Gets, histories and a scan
//! are compared after every reopen; nothing may panic.

use arbitrary::Arbitrary;
use hypha_engine::io::FileIo;
use hypha_engine::limits::FILE_SIZE_MIN;
use hypha_engine::{Db, Fsync, Options, Seq, Version};
use hypha_fuzz::TempDir;
use libfuzzer_sys::fuzz_target;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Keys the operations pick from (`key_idx % KEYS`).
const KEYS: u8 = 16;
/// Longest value a `Put` writes: a 16 KiB data file holds about 8.
const VALUE_BYTES_MAX: usize = 2048;
/// Most puts one `Fill` makes: up to 4 data files of 16 KiB.
const FILL_PUTS_MAX: u8 = 32;
/// Most junk bytes a crash appends.
const GARBAGE_BYTES_MAX: usize = 256;
/// Deepest history compared after a reopen.
const HISTORY_CHECK_DEPTH: usize = 8;

#[derive(Arbitrary, Debug)]
enum Op {
    Put {
        key_idx: u8,
        value: Value,
    },
    Delete {
        key_idx: u8,
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
    /// Clean close, then open with `Fsync::Always` or `Fsync::Never`.
    Reopen {
        always: bool,
    },
    /// Power cut: `cut` picks where the unsynced bytes end; `garbage` is
    /// appended as zeros or as scrambled junk.
    Crash {
        cut: u32,
        zeros: bool,
        garbage: Vec<u8>,
    },
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
/// (by device and inode, so a file keeps its entry across reopens).
#[derive(Debug, Default)]
struct Synced(Mutex<HashMap<(u64, u64), u64>>);

impl Synced {
    /// Bytes of `path` a power cut cannot take.
    fn len(&self, path: &Path) -> u64 {
        let m = std::fs::metadata(path).expect("cannot stat a data file");
        let synced = self.0.lock().unwrap_or_else(|p| p.into_inner());
        synced
            .get(&(m.dev(), m.ino()))
            .copied()
            .unwrap_or(0)
            .min(m.len())
    }
}

impl FileIo for Synced {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()?;
        let m = file.metadata()?;
        let mut synced = self.0.lock().unwrap_or_else(|p| p.into_inner());
        synced.insert((m.dev(), m.ino()), m.len());
        Ok(())
    }
}

fn options(always: bool, io: &Arc<Synced>) -> Options {
    Options {
        file_size: FILE_SIZE_MIN,
        fsync: if always { Fsync::Always } else { Fsync::Never },
        io: io.clone(),
        ..Options::default()
    }
}

/// Data files in number order with their lengths.
fn data_files(dir: &Path) -> Vec<(u16, u64)> {
    let mut files = Vec::new();
    for n in 0..=u16::MAX {
        match std::fs::metadata(dir.join(format!("{n}.db"))) {
            Ok(m) => files.push((n, m.len())),
            Err(_) => break,
        }
    }
    files
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

struct Run {
    dir: TempDir,
    always: bool,
    io: Arc<Synced>,
    db: Option<Db>,
    writes: Vec<Write>,
    /// `writes[..durable]` were acknowledged as durable: no crash may lose them.
    durable: usize,
}

impl Run {
    fn db(&self) -> &Db {
        self.db
            .as_ref()
            .expect("the database is open between operations")
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

    fn history(&self, k: u8, depth: usize) -> Vec<Version> {
        let versions = self.writes.iter().rev().filter(|(_, w, _)| *w == k);
        versions
            .take(depth)
            .map(|(seq, _, value)| Version {
                seq: *seq,
                value: value.clone(),
            })
            .collect()
    }

    fn acknowledged(&mut self, w: Write) {
        let last = self.writes.last().map_or(0, |(s, _, _)| *s);
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
            }
            Op::History { key_idx, depth } => {
                let (k, depth) = (key_idx % KEYS, *depth as usize);
                let got = self.db().history(&key(k), depth).expect("history");
                assert_eq!(got, self.history(k, depth), "history of key {k}");
            }
            Op::Sync => {
                self.db().sync().expect("sync");
                self.made_durable();
            }
            Op::Reopen { always } => {
                self.db.take().expect("open").close().expect("close");
                self.made_durable();
                self.always = *always;
                self.reopen();
            }
            Op::Crash {
                cut,
                zeros,
                garbage,
            } => {
                self.db.take().expect("open").crash();
                self.cut(*cut as u64, *zeros, garbage);
                self.reopen();
            }
        }
    }

    /// Cuts the unsynced bytes at one point: `cut` picks a byte among the
    /// unsynced bytes of all data files, and the file holding it is cut
    /// there (files after it may keep theirs: writeback order across files
    /// is arbitrary). Then junk goes at the end of the newest file.
    fn cut(&self, cut: u64, zeros: bool, garbage: &[u8]) {
        let dir = self.dir.path();
        let files = data_files(dir);
        let spans: Vec<(u16, u64, u64)> = files
            .iter()
            .map(|&(n, len)| (n, self.io.len(&dir.join(format!("{n}.db"))), len))
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

    /// Opens after a close or crash and checks the prefix property.
    fn reopen(&mut self) {
        let opts = options(self.always, &self.io);
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
        self.writes.truncate(kept);
        self.db = Some(db);
        self.made_durable(); // recovery checkpoints what it kept
        self.check_all();
    }

    fn check_all(&self) {
        let db = self.db();
        let model = self.model();
        for k in 0..KEYS {
            assert_eq!(
                db.get(&key(k)).expect("get"),
                model.get(&k).cloned(),
                "key {k}"
            );
            let got = db.history(&key(k), HISTORY_CHECK_DEPTH).expect("history");
            assert_eq!(
                got,
                self.history(k, HISTORY_CHECK_DEPTH),
                "history of key {k}"
            );
        }
        assert_eq!(db.len(), model.len() as u64, "live count");
        let mut scanned = Vec::new();
        let mut cursor = Some(0);
        while let Some(c) = cursor {
            let page = db.scan(c, b"", 1000).expect("scan");
            scanned.extend(page.keys);
            cursor = page.next_cursor;
        }
        scanned.sort();
        let mut expected: Vec<_> = model.keys().map(|&k| key(k)).collect();
        expected.sort();
        assert_eq!(scanned, expected, "scan");
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let dir = TempDir::new("engine_ops");
    let io = Arc::new(Synced::default());
    let db = Db::open(dir.path(), options(false, &io)).expect("create");
    let mut run = Run {
        dir,
        always: false,
        io,
        db: Some(db),
        writes: Vec::new(),
        durable: 0,
    };
    for op in &ops {
        run.apply(op);
    }
    run.check_all();
    // Close before the directory goes: `run.db` drops first (field order).
    drop(run.db.take());
});
