//! Compaction and start-up benchmark of hypha-engine (issue 6 targets):
//!
//! 1. `--keys` keys (24-byte keys, 150-byte values) each written `--rounds`
//!    times; one compaction; disk use against the live data.
//! 2. A clean reopen (target ≤ 100 ms at 1M keys).
//! 3. Write throughput of one writer before and while a compaction runs
//!    (target: ≥ 50 % of normal).
//! 4. Reopen after a crash (dropped without writing the buffer or a
//!    checkpoint, as SIGKILL leaves it) at the two worst cases of the
//!    checkpoint policy: 65,535 changed ids, and 64 MiB of records (target
//!    ≤ 1 s).
//!
//! cargo run --release --bin compaction -- [--keys N] [--rounds R] [--dir PATH]

use hypha_engine::{Db, Fsync, Options, CHECKPOINT_BYTES_MAX, CHECKPOINT_IDS_MAX};
use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Res<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const KEY_LEN: usize = 24;
const VAL_LEN: usize = 150;
/// Seconds of writes that measure the normal rate.
const NORMAL_SECS: u64 = 5;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn key(i: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    let s = format!("{:016x}{:08x}", splitmix64(i), i & 0xffff_ffff);
    k.copy_from_slice(s.as_bytes());
    k
}

fn value(i: u64, ver: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut s = splitmix64(i ^ ver.wrapping_mul(0x9E37_79B9));
    while v.len() < len {
        s = splitmix64(s);
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        auto_compact: false,
        ..Options::default()
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let keys: u64 = arg(&args, "--keys").map_or(Ok(1_000_000), |s| s.parse())?;
    let rounds: u64 = arg(&args, "--rounds").map_or(Ok(10), |s| s.parse())?;
    let root = PathBuf::from(arg(&args, "--dir").unwrap_or_else(|| "/tmp/hypha-bench-compaction".into()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("db");
    println!(
        "compaction bench: {keys} keys x {rounds} rounds, {KEY_LEN}-byte keys, {VAL_LEN}-byte values, dir {}",
        root.display()
    );

    // 1. Fill, then compact.
    let db = Db::open(&dir, opts())?;
    let t = Instant::now();
    for round in 0..rounds {
        for i in 0..keys {
            db.put(&key(i), &value(i, round, VAL_LEN))?;
        }
    }
    db.sync()?;
    let fill = t.elapsed();
    let before = db.stats();
    println!(
        "fill: {} puts in {:.1} s ({:.0}/s); disk {:.1} MB (data files {:.1} MB), live records {:.1} MB",
        keys * rounds,
        fill.as_secs_f64(),
        (keys * rounds) as f64 / fill.as_secs_f64(),
        mb(before.disk_bytes),
        mb(before.data_bytes),
        mb(before.live_bytes)
    );
    let r = db.compact()?;
    let after = db.stats();
    let on_disk = dir_bytes(&dir);
    let kv = keys * (KEY_LEN + VAL_LEN) as u64;
    println!(
        "compaction: {} ms, {:.1} MB -> {:.1} MB ({} files -> {}), kept {}, dropped {}",
        r.millis,
        mb(r.bytes_before),
        mb(r.bytes_after),
        r.files_in,
        r.files_out,
        r.kept,
        r.dropped
    );
    println!(
        "disk after: {:.1} MB in the directory = {:.2}x the live records ({:.1} MB, 40-byte headers included) \
         = {:.2}x the live keys+values ({:.1} MB); tables (lookup + key index) {:.1} MB",
        mb(on_disk),
        on_disk as f64 / after.live_bytes as f64,
        mb(after.live_bytes),
        on_disk as f64 / kv as f64,
        mb(kv),
        mb(after.disk_bytes - after.data_bytes)
    );

    // 2. Clean reopen.
    db.close()?;
    let t = Instant::now();
    let db = Db::open(&dir, opts())?;
    let open_clean = t.elapsed();
    println!(
        "clean open of {} keys: {:.1} ms (replayed {})",
        db.len(),
        open_clean.as_secs_f64() * 1e3,
        db.recovery().replayed
    );

    // 3. Writes before and during a compaction (two more rounds of garbage first).
    for round in rounds..rounds + 2 {
        for i in 0..keys {
            db.put(&key(i), &value(i, round, VAL_LEN))?;
        }
    }
    let db = Arc::new(db);
    let mut n = 0u64;
    let mut ver = 1000;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(NORMAL_SECS) {
        for _ in 0..1000 {
            let i = splitmix64(n) % keys;
            db.put(&key(i), &value(i, ver, VAL_LEN))?;
            n += 1;
        }
    }
    let normal = n as f64 / t.elapsed().as_secs_f64();
    let done = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let r = db.compact();
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    ver += 1;
    let mut n = 0u64;
    let mut worst_pause = Duration::ZERO;
    let t = Instant::now();
    while !done.load(Ordering::SeqCst) {
        let i = splitmix64(n ^ 0xfeed) % keys;
        let p = Instant::now();
        db.put(&key(i), &value(i, ver, VAL_LEN))?;
        worst_pause = worst_pause.max(p.elapsed());
        n += 1;
    }
    let during = n as f64 / t.elapsed().as_secs_f64();
    let r2 = compactor.join().expect("compactor")?;
    println!(
        "writes, one thread, Fsync::Never: normal {:.0}/s, during a {} ms compaction {:.0}/s = {:.0}% of normal; \
         longest single put during it {:.2} ms",
        normal,
        r2.millis,
        during,
        during / normal * 100.0,
        worst_pause.as_secs_f64() * 1e3
    );

    // 4. Crash reopen at the checkpoint policy's two bounds.
    let db = Arc::try_unwrap(db).ok().expect("only owner");
    db.close()?;
    let ids_case = CHECKPOINT_IDS_MAX as u64 - 1;
    let db = Db::open(&dir, opts())?;
    for i in 0..ids_case {
        db.put(&key(i), &value(i, 7777, VAL_LEN))?;
    }
    db.sync()?;
    db.crash();
    let t = Instant::now();
    let db = Db::open(&dir, opts())?;
    let open_ids = t.elapsed();
    println!(
        "open after a crash, {} ids changed since the checkpoint: {:.1} ms (replayed {})",
        ids_case,
        open_ids.as_secs_f64() * 1e3,
        db.recovery().replayed
    );
    db.close()?;
    let big = 4096;
    let rec = (40 + KEY_LEN + big) as u64;
    let bytes_case = CHECKPOINT_BYTES_MAX / rec - 1;
    let db = Db::open(&dir, opts())?;
    for i in 0..bytes_case {
        db.put(&key(i), &value(i, 8888, big))?;
    }
    db.sync()?;
    db.crash();
    let t = Instant::now();
    let db = Db::open(&dir, opts())?;
    let open_bytes = t.elapsed();
    println!(
        "open after a crash, {:.1} MB written since the checkpoint: {:.1} ms (replayed {})",
        mb(bytes_case * rec),
        open_bytes.as_secs_f64() * 1e3,
        db.recovery().replayed
    );
    db.close()?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
