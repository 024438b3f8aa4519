//! Write-path stall benchmark: 1M puts of new keys with 150-byte values
//! under `Fsync::Never`, small data files (so the log rolls over) and the
//! key index growing from its first 4096 slots, while a reader thread gets
//! existing keys. Reports put latency percentiles, the reader's longest
//! wait (a read waits exactly while the write lock is held) and, built with
//! `--features lock-stats`, the engine's own longest write-lock hold.
//!
//! cargo run --release -p hypha-engine --example write_stall --features lock-stats -- [DIR] [PUTS]
//! (`WRITE_STALL_LOG=1` prints where each new longest hold was taken)

use hypha_engine::{Db, Fsync, Options};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Data files roll over every 16 MiB: ~13 rollovers in 1M puts.
const FILE_SIZE: u32 = 16 << 20;
const VALUE_BYTES: usize = 150;
const PUTS_DEFAULT: u64 = 1_000_000;

fn key(i: u64) -> [u8; 24] {
    let mut k = [b'k'; 24];
    k[..16].copy_from_slice(format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).as_bytes());
    k
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Prints the engine's log lines (`WRITE_STALL_LOG=1`), which name the
/// call site of each new longest write-lock hold.
struct Stderr;
impl log::Log for Stderr {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        eprintln!("{} {}", r.level(), r.args());
    }
    fn flush(&self) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("WRITE_STALL_LOG").is_some() {
        log::set_logger(&Stderr).map_err(|e| e.to_string())?;
        log::set_max_level(log::LevelFilter::Debug);
    }
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("hypha-write-stall")
            .display()
            .to_string()
    });
    let puts: u64 = args.next().map_or(Ok(PUTS_DEFAULT), |s| s.parse())?;
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        fsync: Fsync::Never,
        file_size: FILE_SIZE,
        ..Options::default()
    };
    let db = Arc::new(Db::open(&dir, opts)?);
    let value = [0x5Au8; VALUE_BYTES];
    db.put(&key(0), &value)?;
    let done = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(1));
    let reader = {
        let (db, done, written) = (db.clone(), done.clone(), written.clone());
        std::thread::spawn(move || -> (u64, u64) {
            let (mut longest_ns, mut reads, mut x) = (0u64, 0u64, 1u64);
            while !done.load(Ordering::Relaxed) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (x >> 33) % written.load(Ordering::Relaxed);
                let t = Instant::now();
                let got = db.get(&key(i)).expect("get");
                longest_ns = longest_ns.max(t.elapsed().as_nanos() as u64);
                assert!(got.is_some(), "key {i} missing");
                reads += 1;
            }
            (longest_ns, reads)
        })
    };
    let mut lat = Vec::with_capacity(puts as usize);
    let t0 = Instant::now();
    for i in 1..puts {
        let t = Instant::now();
        db.put(&key(i), &value)?;
        lat.push(t.elapsed().as_nanos() as u64);
        written.store(i + 1, Ordering::Relaxed);
    }
    let secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (read_max_ns, reads) = reader.join().expect("reader panicked");
    lat.sort_unstable();
    let stats = db.stats();
    println!(
        "{} puts in {secs:.2} s ({:.0}/s); data files {}; reads alongside {reads}",
        puts - 1,
        (puts - 1) as f64 / secs,
        stats.files
    );
    let us = |ns: u64| ns as f64 / 1e3;
    println!(
        "put latency us: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}",
        us(percentile(&lat, 0.50)),
        us(percentile(&lat, 0.99)),
        us(percentile(&lat, 0.999)),
        us(percentile(&lat, 0.9999)),
        us(*lat.last().expect("puts"))
    );
    println!(
        "longest read (waits while the write lock is held): {:.1} us",
        us(read_max_ns)
    );
    report_lock(&db);
    Arc::try_unwrap(db)
        .map_err(|_| "db still shared")?
        .close()?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(feature = "lock-stats")]
fn report_lock(db: &Db) {
    let s = db.stats();
    let (preempted, preempted_max) = s.write_lock_preempted.unwrap_or((0, 0));
    println!(
        "longest write-lock hold (engine): {} us; holds over 1 ms: {}; rollovers that synced under the lock: {}",
        s.write_lock_hold_max_us.unwrap_or(0),
        s.write_lock_holds_over_target.unwrap_or(0),
        s.rollover_stalls
    );
    println!(
        "holds the scheduler interrupted: {preempted} (longest {preempted_max} us, not counted above)"
    );
}

#[cfg(not(feature = "lock-stats"))]
fn report_lock(_: &Db) {
    println!("longest write-lock hold (engine): not measured (build with --features lock-stats)");
}
