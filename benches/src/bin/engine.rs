//! Storage-engine benchmark: hypha-engine against redb, sled, fjall and LMDB
//! (heed), same workload, same run, same disk. See benches/README.md.
//!
//! cargo run --release --bin engine -- [--keys N] [--only hypha,redb] [--dir PATH]

use std::error::Error;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const KEY_LEN: usize = 24;
const VAL_LEN: usize = 150;
const BATCH: usize = 1000;
const DURABLE_WRITES: usize = 2000;
const WRITERS: usize = 32;
/// Puts of the 32-writer phase in all: 250 per writer, so thread start-up
/// and the last writers' tail weigh little (at 2,000 in all the phase took
/// ~40 ms and its rate moved by half between runs).
const WRITERS_PUTS: usize = 8000;
const FSYNC_PROBES: usize = 2000;

type Key = [u8; KEY_LEN];
type Val = [u8; VAL_LEN];

// ---------------------------------------------------------------- workload

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Key of counter `i`: 16 hex chars of splitmix64(i) (a bijection, so keys
/// of distinct counters differ) + 8 hex chars of a second hash.
fn key(i: u64) -> Key {
    let a = splitmix64(i);
    let b = splitmix64(i ^ 0xA5A5_A5A5_A5A5_A5A5) >> 32;
    let mut k = [0u8; KEY_LEN];
    for j in 0..16 {
        k[j] = HEX[((a >> (60 - 4 * j)) & 0xF) as usize];
    }
    for j in 0..8 {
        k[16 + j] = HEX[((b >> (28 - 4 * j)) & 0xF) as usize];
    }
    k
}

/// 150 pseudo-random bytes for counter `i`, version `ver`.
fn value(i: u64, ver: u64) -> Val {
    let mut v = [0u8; VAL_LEN];
    let mut s = splitmix64(i.wrapping_mul(0x1000_0000_01B3) ^ ver.wrapping_mul(0x9E37_79B9));
    for chunk in v.chunks_mut(8) {
        s = splitmix64(s);
        chunk.copy_from_slice(&s.to_le_bytes()[..chunk.len()]);
    }
    v
}

/// Counters of absent keys (misses) and of the durable-write keys: disjoint
/// from 0..N because splitmix64 is a bijection.
const MISS_BASE: u64 = 1 << 40;
const DURABLE_BASE: u64 = 2 << 40;
const WRITERS_BASE: u64 = 3 << 40;

// ---------------------------------------------------------------- engines

/// One engine under test. Each method does the whole loop itself so a peer
/// can keep one read transaction (its best case) across a phase.
trait Store {
    /// Phase 1/3 and 6 use individual, non-durable calls.
    fn put(&mut self, k: &[u8], v: &[u8]) -> Res<()>;
    fn delete(&mut self, k: &[u8]) -> Res<()>;
    /// Makes everything written so far durable (fsync).
    fn sync(&mut self) -> Res<()>;
    /// `n` gets of `key_of(j)`; returns how many were found with a value of
    /// VAL_LEN bytes.
    fn gets(&mut self, n: usize, key_of: &dyn Fn(usize) -> Key) -> Res<usize>;
    /// One transaction (hypha: puts then one sync), durable when it returns.
    fn put_batch_durable(&mut self, items: &[(Key, Val)]) -> Res<()>;
    /// Switches to durable single writes (hypha: reopen with Fsync::Always).
    fn enter_durable(&mut self) -> Res<()> {
        Ok(())
    }
    /// One write, fsynced before it returns.
    fn put_durable(&mut self, k: &[u8], v: &[u8]) -> Res<()>;
    /// Back to non-durable writes.
    fn leave_durable(&mut self) -> Res<()> {
        Ok(())
    }
    /// Final sync and close.
    fn close(self: Box<Self>) -> Res<()>;
    /// The shared hypha `Db` (for the concurrent-writers test).
    fn hypha_db(&self) -> Option<Arc<hypha_engine::Db>> {
        None
    }
}

// ---- hypha
struct Hypha {
    dir: PathBuf,
    db: Option<Arc<hypha_engine::Db>>,
}

impl Hypha {
    fn open(dir: &Path, fsync: hypha_engine::Fsync) -> Res<Arc<hypha_engine::Db>> {
        let opts = hypha_engine::Options { fsync, ..hypha_engine::Options::default() };
        Ok(Arc::new(hypha_engine::Db::open(dir, opts)?))
    }
    fn new(dir: &Path) -> Res<Self> {
        Ok(Hypha { dir: dir.to_path_buf(), db: Some(Self::open(dir, hypha_engine::Fsync::Never)?) })
    }
    fn db(&self) -> &hypha_engine::Db {
        self.db.as_ref().expect("hypha db is open")
    }
    fn reopen(&mut self, fsync: hypha_engine::Fsync) -> Res<()> {
        let db = self.db.take().expect("hypha db is open");
        let db = Arc::try_unwrap(db).map_err(|_| "hypha Db still shared at reopen")?;
        db.close()?;
        self.db = Some(Self::open(&self.dir, fsync)?);
        Ok(())
    }
}

impl Store for Hypha {
    fn put(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.db().put(k, v)?;
        Ok(())
    }
    fn delete(&mut self, k: &[u8]) -> Res<()> {
        self.db().delete(k)?;
        Ok(())
    }
    fn sync(&mut self) -> Res<()> {
        Ok(self.db().sync()?)
    }
    fn gets(&mut self, n: usize, key_of: &dyn Fn(usize) -> Key) -> Res<usize> {
        let db = self.db();
        let mut hits = 0;
        for j in 0..n {
            if let Some(v) = db.get(&key_of(j))? {
                hits += (v.len() == VAL_LEN) as usize;
            }
        }
        Ok(hits)
    }
    fn put_batch_durable(&mut self, items: &[(Key, Val)]) -> Res<()> {
        let db = self.db();
        for (k, v) in items {
            db.put(k, v)?;
        }
        Ok(db.sync()?)
    }
    fn enter_durable(&mut self) -> Res<()> {
        self.reopen(hypha_engine::Fsync::Always)
    }
    fn put_durable(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.db().put(k, v)?;
        Ok(())
    }
    fn leave_durable(&mut self) -> Res<()> {
        self.reopen(hypha_engine::Fsync::Never)
    }
    fn hypha_db(&self) -> Option<Arc<hypha_engine::Db>> {
        self.db.clone()
    }
    fn close(mut self: Box<Self>) -> Res<()> {
        let db = self.db.take().expect("hypha db is open");
        let db = Arc::try_unwrap(db).map_err(|_| "hypha Db still shared at close")?;
        db.sync()?;
        Ok(db.close()?)
    }
}

// ---- redb
const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

/// redb frees pages only in durable commits; a long run of Durability::None
/// commits grows the file without bound (redb issue #810: 1 GiB at 20k
/// writes, 4 GiB at 100k here). As its maintainers suggest, an empty
/// Immediate commit every this many non-durable writes lets it free pages.
const REDB_DURABLE_EVERY: u64 = 10_000;

struct Redb {
    db: redb::Database,
    nondurable: u64,
}

impl Redb {
    fn new(dir: &Path) -> Res<Self> {
        fs::create_dir_all(dir)?;
        let db = redb::Database::create(dir.join("bench.redb"))?;
        let tx = db.begin_write()?;
        tx.open_table(REDB_TABLE)?;
        tx.commit()?;
        Ok(Redb { db, nondurable: 0 })
    }
    fn write(&mut self, durability: redb::Durability, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> Res<()>) -> Res<()> {
        if matches!(durability, redb::Durability::None) {
            self.nondurable += 1;
            if self.nondurable.is_multiple_of(REDB_DURABLE_EVERY) {
                self.db.begin_write()?.commit()?; // Immediate: frees pages
            }
        }
        let mut tx = self.db.begin_write()?;
        tx.set_durability(durability);
        {
            let mut t = tx.open_table(REDB_TABLE)?;
            f(&mut t)?;
        }
        tx.commit()?;
        Ok(())
    }
}

impl Store for Redb {
    fn put(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.write(redb::Durability::None, |t| {
            t.insert(k, v)?;
            Ok(())
        })
    }
    fn delete(&mut self, k: &[u8]) -> Res<()> {
        self.write(redb::Durability::None, |t| {
            t.remove(k)?;
            Ok(())
        })
    }
    fn sync(&mut self) -> Res<()> {
        // An empty commit with Immediate durability persists the earlier
        // Durability::None commits.
        self.write(redb::Durability::Immediate, |_| Ok(()))
    }
    fn gets(&mut self, n: usize, key_of: &dyn Fn(usize) -> Key) -> Res<usize> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(REDB_TABLE)?;
        let mut hits = 0;
        for j in 0..n {
            if let Some(v) = t.get(&key_of(j)[..])? {
                hits += (v.value().len() == VAL_LEN) as usize;
            }
        }
        Ok(hits)
    }
    fn put_batch_durable(&mut self, items: &[(Key, Val)]) -> Res<()> {
        self.write(redb::Durability::Immediate, |t| {
            for (k, v) in items {
                t.insert(&k[..], &v[..])?;
            }
            Ok(())
        })
    }
    fn put_durable(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.write(redb::Durability::Immediate, |t| {
            t.insert(k, v)?;
            Ok(())
        })
    }
    fn close(mut self: Box<Self>) -> Res<()> {
        self.sync()?;
        drop(self.db);
        Ok(())
    }
}

// ---- sled
struct Sled {
    db: sled::Db,
}

impl Sled {
    fn new(dir: &Path) -> Res<Self> {
        Ok(Sled { db: sled::Config::new().path(dir).open()? })
    }
}

impl Store for Sled {
    fn put(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.db.insert(k, v)?;
        Ok(())
    }
    fn delete(&mut self, k: &[u8]) -> Res<()> {
        self.db.remove(k)?;
        Ok(())
    }
    fn sync(&mut self) -> Res<()> {
        self.db.flush()?;
        Ok(())
    }
    fn gets(&mut self, n: usize, key_of: &dyn Fn(usize) -> Key) -> Res<usize> {
        let mut hits = 0;
        for j in 0..n {
            if let Some(v) = self.db.get(key_of(j))? {
                hits += (v.len() == VAL_LEN) as usize;
            }
        }
        Ok(hits)
    }
    fn put_batch_durable(&mut self, items: &[(Key, Val)]) -> Res<()> {
        let mut b = sled::Batch::default();
        for (k, v) in items {
            b.insert(&k[..], &v[..]);
        }
        self.db.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }
    fn put_durable(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.db.insert(k, v)?;
        self.db.flush()?;
        Ok(())
    }
    fn close(self: Box<Self>) -> Res<()> {
        self.db.flush()?;
        drop(self.db);
        Ok(())
    }
}

// ---- fjall
struct Fjall {
    ks: fjall::Keyspace,
    part: fjall::PartitionHandle,
}

impl Fjall {
    fn new(dir: &Path) -> Res<Self> {
        let ks = fjall::Config::new(dir).open()?;
        let part = ks.open_partition("bench", fjall::PartitionCreateOptions::default())?;
        Ok(Fjall { ks, part })
    }
}

impl Store for Fjall {
    fn put(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.part.insert(k, v)?;
        Ok(())
    }
    fn delete(&mut self, k: &[u8]) -> Res<()> {
        self.part.remove(k)?;
        Ok(())
    }
    fn sync(&mut self) -> Res<()> {
        self.ks.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }
    fn gets(&mut self, n: usize, key_of: &dyn Fn(usize) -> Key) -> Res<usize> {
        let mut hits = 0;
        for j in 0..n {
            if let Some(v) = self.part.get(key_of(j))? {
                hits += (v.len() == VAL_LEN) as usize;
            }
        }
        Ok(hits)
    }
    fn put_batch_durable(&mut self, items: &[(Key, Val)]) -> Res<()> {
        let mut b = self.ks.batch();
        for (k, v) in items {
            b.insert(&self.part, &k[..], &v[..]);
        }
        b.commit()?;
        self.ks.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }
    fn put_durable(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.part.insert(k, v)?;
        self.ks.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }
    fn close(self: Box<Self>) -> Res<()> {
        self.ks.persist(fjall::PersistMode::SyncAll)?;
        let Fjall { ks, part } = *self;
        drop(part);
        drop(ks);
        Ok(())
    }
}

// ---- LMDB via heed
struct Lmdb {
    env: heed::Env,
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
}

const LMDB_NOSYNC: heed::EnvFlags = heed::EnvFlags::NO_SYNC.union(heed::EnvFlags::NO_META_SYNC);

impl Lmdb {
    fn new(dir: &Path) -> Res<Self> {
        fs::create_dir_all(dir)?;
        let mut o = heed::EnvOpenOptions::new();
        o.map_size(64 << 30).max_dbs(1);
        // SAFETY: NO_SYNC/NO_META_SYNC trade durability for speed, which is
        // what this phase measures; we sync explicitly where needed.
        unsafe { o.flags(LMDB_NOSYNC) };
        // SAFETY: this process opens the directory once.
        let env = unsafe { o.open(dir)? };
        let mut tx = env.write_txn()?;
        let db = env.create_database(&mut tx, None)?;
        tx.commit()?;
        Ok(Lmdb { env, db })
    }
}

impl Store for Lmdb {
    fn put(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        let mut tx = self.env.write_txn()?;
        self.db.put(&mut tx, k, v)?;
        tx.commit()?;
        Ok(())
    }
    fn delete(&mut self, k: &[u8]) -> Res<()> {
        let mut tx = self.env.write_txn()?;
        self.db.delete(&mut tx, k)?;
        tx.commit()?;
        Ok(())
    }
    fn sync(&mut self) -> Res<()> {
        self.env.force_sync()?;
        Ok(())
    }
    fn gets(&mut self, n: usize, key_of: &dyn Fn(usize) -> Key) -> Res<usize> {
        let tx = self.env.read_txn()?;
        let mut hits = 0;
        for j in 0..n {
            if let Some(v) = self.db.get(&tx, &key_of(j))? {
                hits += (v.len() == VAL_LEN) as usize;
            }
        }
        Ok(hits)
    }
    fn put_batch_durable(&mut self, items: &[(Key, Val)]) -> Res<()> {
        let mut tx = self.env.write_txn()?;
        for (k, v) in items {
            self.db.put(&mut tx, k, v)?;
        }
        tx.commit()?;
        self.env.force_sync()?;
        Ok(())
    }
    fn enter_durable(&mut self) -> Res<()> {
        // SAFETY: single-threaded; mdb_env_set_flags.
        unsafe { self.env.set_flags(LMDB_NOSYNC, heed::FlagSetMode::Disable)? };
        Ok(())
    }
    fn put_durable(&mut self, k: &[u8], v: &[u8]) -> Res<()> {
        self.put(k, v)
    }
    fn leave_durable(&mut self) -> Res<()> {
        // SAFETY: single-threaded; mdb_env_set_flags.
        unsafe { self.env.set_flags(LMDB_NOSYNC, heed::FlagSetMode::Enable)? };
        Ok(())
    }
    fn close(self: Box<Self>) -> Res<()> {
        self.env.force_sync()?;
        let Lmdb { env, .. } = *self;
        env.prepare_for_closing().wait();
        Ok(())
    }
}

// ---------------------------------------------------------------- runner

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

const ENGINES: [&str; 5] = ["hypha", "redb", "sled", "fjall", "lmdb"];

#[derive(Clone, Copy, PartialEq)]
enum Row {
    Writes,
    Reads,
    Overwrites,
    Misses,
    Durable,
    RawNext,
    Writers32,
    Deletes,
    Disk,
}

const ROWS: [(Row, &str); 9] = [
    (Row::Writes, "1 individual writes (ops/s)"),
    (Row::Reads, "2 random reads, hits (ops/s)"),
    (Row::Overwrites, "3 batched overwrites (ops/s)"),
    (Row::Misses, "4 random misses (ops/s)"),
    (Row::Durable, "5 durable single writes (ops/s)"),
    (Row::RawNext, "5r raw fdatasync around 5 (ops/s)"),
    (Row::Writers32, "5b 32 durable writers (ops/s)"),
    (Row::Deletes, "6 deletes of N/4 (ops/s)"),
    (Row::Disk, "7 disk after (MiB, lower=better)"),
];

#[derive(Default)]
struct Results {
    vals: Vec<(Row, f64)>,
    error: Option<String>,
}

impl Results {
    fn set(&mut self, r: Row, v: f64) {
        self.vals.push((r, v));
    }
    fn get(&self, r: Row) -> Option<f64> {
        self.vals.iter().find(|(x, _)| *x == r).map(|(_, v)| *v)
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn open_store(name: &str, dir: &Path) -> Res<Box<dyn Store>> {
    Ok(match name {
        "hypha" => Box::new(Hypha::new(dir)?),
        "redb" => Box::new(Redb::new(dir)?),
        "sled" => Box::new(Sled::new(dir)?),
        "fjall" => Box::new(Fjall::new(dir)?),
        "lmdb" => Box::new(Lmdb::new(dir)?),
        _ => return Err(format!("unknown engine {name}").into()),
    })
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn dir_bytes(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                let (a, b) = dir_bytes(&e.path());
                apparent += a;
                allocated += b;
            } else {
                apparent += md.len();
                allocated += md.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

macro_rules! say {
    ($($t:tt)*) => {{ println!($($t)*); let _ = std::io::stdout().flush(); }};
}

fn run_engine(name: &str, dir: &Path, n: usize, res: &mut Results, single_hypha: &mut Option<f64>) -> Res<()> {
    let t_open = Instant::now();
    let mut s = open_store(name, dir)?;
    say!("[{name}] opened in {:.3}s ({})", secs(t_open.elapsed()), dir.display());

    // 1. individual non-durable writes, then one sync
    let t = Instant::now();
    for i in 0..n as u64 {
        s.put(&key(i), &value(i, 0))?;
    }
    let tw = t.elapsed();
    let t = Instant::now();
    s.sync()?;
    let ts = t.elapsed();
    res.set(Row::Writes, rate(n, tw + ts));
    say!(
        "[{name}] 1 writes: {n} in {:.3}s + final sync {:.3}s = {:.0} ops/s ({:.0} ops/s without the sync)",
        secs(tw),
        secs(ts),
        rate(n, tw + ts),
        rate(n, tw)
    );

    // 2. random reads (hits)
    let nn = n as u64;
    let t = Instant::now();
    let hits = s.gets(n, &|j| key(splitmix64(0xBEEF ^ j as u64) % nn))?;
    let d = t.elapsed();
    if hits != n {
        return Err(format!("random reads: {hits} of {n} hits (expected all)").into());
    }
    res.set(Row::Reads, rate(n, d));
    say!("[{name}] 2 random reads: {n} hits in {:.3}s = {:.0} ops/s", secs(d), rate(n, d));

    // 3. batched overwrites, BATCH per durable transaction
    let t = Instant::now();
    let mut batch: Vec<(Key, Val)> = Vec::with_capacity(BATCH);
    let mut i = 0u64;
    while i < nn {
        batch.clear();
        let end = (i + BATCH as u64).min(nn);
        for j in i..end {
            batch.push((key(j), value(j, 1)));
        }
        s.put_batch_durable(&batch)?;
        i = end;
    }
    let d = t.elapsed();
    res.set(Row::Overwrites, rate(n, d));
    say!(
        "[{name}] 3 batched overwrites: {n} in {} durable batches of {BATCH} in {:.3}s = {:.0} ops/s",
        n.div_ceil(BATCH),
        secs(d),
        rate(n, d)
    );

    // 4. random misses
    let t = Instant::now();
    let hits = s.gets(n, &|j| key(MISS_BASE + splitmix64(0xF00D ^ j as u64) % nn))?;
    let d = t.elapsed();
    if hits != 0 {
        return Err(format!("random misses: {hits} hits (expected none)").into());
    }
    res.set(Row::Misses, rate(n, d));
    say!("[{name}] 4 random misses: {n} in {:.3}s = {:.0} ops/s", secs(d), rate(n, d));

    // 5. durable single writes
    let t = Instant::now();
    s.enter_durable()?;
    say!("[{name}] 5 switched to durable writes in {:.3}s (not timed)", secs(t.elapsed()));
    // The disk is shared and its fsync rate drifts: probe it right before
    // and right after this phase, in the same filesystem.
    let probe = dir.parent().ok_or("bench dir has no parent")?;
    let raw_before = raw_fdatasync(probe, false)?;
    let t = Instant::now();
    for i in 0..DURABLE_WRITES as u64 {
        s.put_durable(&key(DURABLE_BASE + i), &value(DURABLE_BASE + i, 0))?;
    }
    let d = t.elapsed();
    let raw_after = raw_fdatasync(probe, false)?;
    res.set(Row::Durable, rate(DURABLE_WRITES, d));
    res.set(Row::RawNext, raw_before.max(raw_after));
    say!("[{name}] 5r raw fdatasync (append) just before: {raw_before:.0} ops/s, just after: {raw_after:.0} ops/s");
    say!(
        "[{name}] 5 durable single writes: {DURABLE_WRITES} in {:.3}s = {:.0} ops/s ({:.3} ms each)",
        secs(d),
        rate(DURABLE_WRITES, d),
        secs(d) * 1e3 / DURABLE_WRITES as f64
    );

    // 5b. hypha only: 32 concurrent durable writers on one Arc<Db>
    if name == "hypha" {
        *single_hypha = Some(rate(DURABLE_WRITES, d));
        let db = s.hypha_db().ok_or("not hypha")?;
        // Every writer does the same number of puts (checked at compile time).
        const _: () = assert!(WRITERS_PUTS.is_multiple_of(WRITERS));
        let per: Vec<usize> = vec![WRITERS_PUTS / WRITERS; WRITERS];
        let t = Instant::now();
        let handles: Vec<_> = per
            .iter()
            .enumerate()
            .map(|(w, &cnt)| {
                let db = db.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    for j in 0..cnt as u64 {
                        let c = WRITERS_BASE + ((w as u64) << 20) + j;
                        db.put(&key(c), &value(c, 0)).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut errs = Vec::new();
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errs.push(e),
                Err(_) => errs.push("writer thread panicked".into()),
            }
        }
        let d = t.elapsed();
        drop(db);
        if let Some(e) = errs.first() {
            return Err(format!("32 writers: {} thread(s) failed, first: {e}", errs.len()).into());
        }
        let total: usize = per.iter().sum();
        res.set(Row::Writers32, rate(total, d));
        say!(
            "[{name}] 5b {WRITERS} durable writers: {total} puts in {:.3}s = {:.0} ops/s",
            secs(d),
            rate(total, d)
        );
    }

    let t = Instant::now();
    s.leave_durable()?;
    say!("[{name}] 6 switched back to non-durable writes in {:.3}s (not timed)", secs(t.elapsed()));

    // 6. delete every 4th key, non-durable, then one sync
    let nd = n.div_ceil(4);
    let t = Instant::now();
    for i in (0..nn).step_by(4) {
        s.delete(&key(i))?;
    }
    let tw = t.elapsed();
    let t = Instant::now();
    s.sync()?;
    let ts = t.elapsed();
    res.set(Row::Deletes, rate(nd, tw + ts));
    say!(
        "[{name}] 6 deletes: {nd} in {:.3}s + final sync {:.3}s = {:.0} ops/s",
        secs(tw),
        secs(ts),
        rate(nd, tw + ts)
    );

    // 7. disk bytes after close
    let t = Instant::now();
    s.close()?;
    let (apparent, allocated) = dir_bytes(dir);
    res.set(Row::Disk, mib(apparent));
    say!(
        "[{name}] 7 closed in {:.3}s; disk: {:.1} MiB apparent (sum of file sizes), {:.1} MiB allocated",
        secs(t.elapsed()),
        mib(apparent),
        mib(allocated)
    );
    Ok(())
}

/// Raw fdatasync rate: append 200 bytes + File::sync_data(), FSYNC_PROBES
/// times. With `prealloc`, the file is first written and synced to its full
/// size and the probes overwrite it in place (no size change to journal).
fn raw_fdatasync(dir: &Path, prealloc: bool) -> Res<f64> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("fdatasync-probe");
    let mut f = File::options().create(true).truncate(true).write(true).open(&path)?;
    let buf = [0x5Au8; 200];
    if prealloc {
        f.write_all(&vec![0u8; 200 * FSYNC_PROBES])?;
        f.sync_all()?;
    }
    let t = Instant::now();
    for i in 0..FSYNC_PROBES {
        if prealloc {
            f.write_all_at(&buf, (i * 200) as u64)?;
        } else {
            f.write_all(&buf)?;
        }
        f.sync_data()?;
    }
    let d = t.elapsed();
    drop(f);
    fs::remove_file(&path)?;
    Ok(rate(FSYNC_PROBES, d))
}

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn fmt_val(row: Row, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if row == Row::Disk => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
    }
}

fn main() {
    let mut n: usize = 1_000_000;
    let mut only: Vec<String> = ENGINES.iter().map(|s| s.to_string()).collect();
    let mut base: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keys" => n = args.next().and_then(|v| v.replace('_', "").parse().ok()).expect("--keys N"),
            "--only" => {
                only = args.next().expect("--only a,b").split(',').map(|s| s.trim().to_lowercase()).collect();
                for e in &only {
                    assert!(ENGINES.contains(&e.as_str()), "unknown engine {e}; known: {}", ENGINES.join(","));
                }
            }
            "--dir" => base = Some(PathBuf::from(args.next().expect("--dir PATH"))),
            "-h" | "--help" => {
                println!("engine [--keys N (default 1000000)] [--only hypha,redb,sled,fjall,lmdb] [--dir PATH (default /tmp)]");
                return;
            }
            other => panic!("unknown argument {other}; try --help"),
        }
    }
    assert!(n >= 4, "--keys must be at least 4");
    let engines: Vec<&str> = ENGINES.iter().copied().filter(|e| only.iter().any(|o| o == e)).collect();
    let base = base.unwrap_or_else(std::env::temp_dir).join(format!("hypha-bench-{}", std::process::id()));
    fs::create_dir_all(&base).expect("create the bench dir");

    say!("== hypha storage-engine benchmark ==");
    say!("date: {}", sh("date -u '+%Y-%m-%d %H:%M:%S UTC'"));
    say!("cpus (nproc): {}", sh("nproc"));
    say!("cpu: {}", sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-"));
    say!("memory: {}", sh("grep MemTotal /proc/meminfo | tr -s ' '"));
    say!("kernel: {}", sh("uname -sr"));
    say!("temp dir: {}", base.display());
    say!("filesystem (df -T):\n{}", sh(&format!("df -T '{}'", base.display())));
    say!(
        "hypha-engine: git {} (engine/ uncommitted changes: {})",
        sh(&format!("git --no-optional-locks -C '{REPO}' rev-parse --short HEAD")),
        {
            let d = sh(&format!("git --no-optional-locks -C '{REPO}' diff --stat HEAD -- engine | tail -1"));
            if d.is_empty() { "none".to_string() } else { d }
        }
    );
    say!("peers: redb 2.6.4, sled 0.34.7, fjall 2.11.2, heed 0.22.1 (lmdb-master-sys 0.2.6) — see Cargo.lock");
    say!(
        "workload: {n} keys of {KEY_LEN} B (hex of hashed counter), values {VAL_LEN} B pseudo-random; batches of {BATCH}; {DURABLE_WRITES} durable writes; engines: {}",
        engines.join(",")
    );
    say!("");

    let fs1 = raw_fdatasync(&base, false).expect("raw fdatasync probe");
    say!("raw fdatasync (200 B append + sync_data) x{FSYNC_PROBES}: {fs1:.0} ops/s ({:.3} ms each)", 1e3 / fs1);
    let fsp = raw_fdatasync(&base, true).expect("raw fdatasync probe");
    say!(
        "raw fdatasync, preallocated file (200 B overwrite in place + sync_data) x{FSYNC_PROBES}: {fsp:.0} ops/s ({:.3} ms each) [info only]",
        1e3 / fsp
    );

    let total = Instant::now();
    let mut all: Vec<(&str, Results)> = Vec::new();
    let mut single_hypha = None;
    for &e in &engines {
        let dir = base.join(e);
        let mut res = Results::default();
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_engine(e, &dir, n, &mut res, &mut single_hypha)));
        match r {
            Ok(Ok(())) => say!("[{e}] done in {:.1}s\n", secs(t.elapsed())),
            Ok(Err(err)) => {
                say!("[{e}] ERROR: {err}\n");
                res.error = Some(err.to_string());
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                say!("[{e}] PANIC: {msg}\n");
                res.error = Some(format!("panic: {msg}"));
            }
        }
        let _ = fs::remove_dir_all(&dir);
        all.push((e, res));
    }
    let fs2 = raw_fdatasync(&base, false).expect("raw fdatasync probe");
    say!("raw fdatasync again after the engines: {fs2:.0} ops/s ({:.3} ms each)", 1e3 / fs2);
    let fsync_rate = fs1.max(fs2);
    let _ = fs::remove_dir_all(&base);

    // ---- the table
    say!("");
    say!("== results: {n} keys; ops/s (higher is better) except disk ==");
    let w0 = 34;
    let wc = 11;
    let mut head = format!("{:<w0$}", "phase");
    for (e, _) in &all {
        head += &format!("{:>wc$}", e);
    }
    head += "   hypha/best peer";
    say!("{head}");
    say!("{}", "-".repeat(head.len()));
    let hypha = all.iter().find(|(e, _)| *e == "hypha").map(|(_, r)| r);
    for (row, label) in ROWS {
        let mut line = format!("{:<w0$}", label);
        for (_, r) in &all {
            line += &format!("{:>wc$}", fmt_val(row, r.get(row)));
        }
        let peers: Vec<(&str, f64)> =
            all.iter().filter(|(e, _)| *e != "hypha").filter_map(|(e, r)| r.get(row).map(|v| (*e, v))).collect();
        let best = if row == Row::RawNext {
            None
        } else if row == Row::Disk {
            peers.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))
        } else {
            peers.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1))
        };
        match (hypha.and_then(|h| h.get(row)), best) {
            (Some(h), Some((be, bv))) if bv > 0.0 => {
                line += &format!("   {:.2}x (vs {be}){}", h / bv, if row == Row::Disk { " lower=better" } else { "" })
            }
            _ => line += "   -",
        }
        say!("{line}");
    }
    say!(
        "{:<w0$}{:>wc$}   (append + fdatasync; max of the probes before/after the engines: {:.0}, {:.0})",
        "raw fdatasync, run start/end (ops/s)",
        format!("{fsync_rate:.0}"),
        fs1,
        fs2
    );
    say!(
        "{:<w0$}{:>wc$}   (info: overwrite in place of a preallocated file, no size change)",
        "raw fdatasync, preallocated (ops/s)",
        format!("{fsp:.0}")
    );
    for (e, r) in &all {
        if let Some(err) = &r.error {
            say!("{e}: FAILED: {err}");
        }
    }
    say!("(MiB = 2^20 bytes, sum of file sizes in the engine's dir after its final sync + close)");

    // ---- targets
    say!("");
    say!("== targets ==");
    let check = |label: &str, got: Option<f64>, want: Option<f64>, detail: String| match (got, want) {
        (Some(g), Some(w)) => say!("{} {label}: {detail}", if g >= w { "PASS" } else { "MISS" }),
        _ => say!("n/a  {label}: {detail} (engine missing from this run)"),
    };
    let hv = |row| hypha.and_then(|h| h.get(row));
    let peer_best = |row| {
        all.iter().filter(|(e, _)| *e != "hypha").filter_map(|(e, r)| r.get(row).map(|v| (*e, v))).max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let pw = peer_best(Row::Writes);
    check(
        "individual writes >= 3x best peer",
        hv(Row::Writes),
        pw.map(|p| 3.0 * p.1),
        match (hv(Row::Writes), pw) {
            (Some(h), Some((e, v))) => format!("hypha {h:.0} ops/s vs {e} {v:.0} ops/s = {:.2}x", h / v),
            _ => String::new(),
        },
    );
    let lm = all.iter().find(|(e, _)| *e == "lmdb").and_then(|(_, r)| r.get(Row::Reads));
    check(
        "random reads >= LMDB",
        hv(Row::Reads),
        lm,
        match (hv(Row::Reads), lm) {
            (Some(h), Some(l)) => format!("hypha {h:.0} ops/s vs lmdb {l:.0} ops/s = {:.2}x", h / l),
            _ => String::new(),
        },
    );
    check(
        "durable single writes >= 90% of raw fdatasync (probed around hypha's phase 5, max of before/after)",
        hv(Row::Durable),
        hv(Row::RawNext).map(|r| 0.9 * r),
        match (hv(Row::Durable), hv(Row::RawNext)) {
            (Some(h), Some(r)) => format!("hypha {h:.0} ops/s vs raw fdatasync {r:.0} ops/s = {:.0}%", 100.0 * h / r),
            _ => String::new(),
        },
    );
    check(
        "32 durable writers >= 10x single durable writer",
        hv(Row::Writers32),
        single_hypha.map(|s| 10.0 * s),
        match (hv(Row::Writers32), single_hypha) {
            (Some(m), Some(s)) => format!("{m:.0} ops/s vs {s:.0} ops/s = {:.2}x", m / s),
            _ => String::new(),
        },
    );
    say!("");
    say!("total run time: {:.1}s", secs(total.elapsed()));
}
