//! Online compaction: space is reclaimed, contents and digests are kept,
//! reads and writes go on, history and deletes follow the options, replicas
//! behind the compaction are told to take a snapshot, and a failure or crash
//! at any step leaves either the old files or the new ones in use.

mod common;
use common::{Rng, TempDir};
use hypha_engine::io::FaultyIo;
use hypha_engine::{Db, Error, Fsync, Options, Record};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: 1 << 16,
        auto_compact: false,
        ..Options::default()
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn value(key: u64, round: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (key * 31 + round * 7 + j as u64) as u8)
        .collect()
}

/// `keys` keys overwritten `rounds` times; every 7th key deleted at the end.
fn fill(db: &Db, keys: u64, rounds: u64, len: usize) -> Result<Model, Error> {
    let mut model = Model::new();
    for round in 0..rounds {
        for k in 0..keys {
            let key = format!("key-{k}").into_bytes();
            let v = value(k, round, len);
            db.put(&key, &v)?;
            model.insert(key, v);
        }
    }
    for k in (0..keys).step_by(7) {
        let key = format!("key-{k}").into_bytes();
        db.delete(&key)?;
        model.remove(&key);
    }
    Ok(model)
}

fn check(db: &Db, model: &Model, keys: u64) -> Result<(), Error> {
    assert_eq!(db.len(), model.len() as u64);
    for k in 0..keys {
        let key = format!("key-{k}").into_bytes();
        assert_eq!(db.get(&key)?, model.get(&key).cloned(), "key-{k}");
    }
    Ok(())
}

#[test]
fn compaction_reclaims_overwritten_and_deleted_records_and_keeps_contents() -> Result<(), Error> {
    let dir = TempDir::new("compact-basic");
    let db = Db::open(dir.path(), opts())?;
    let model = fill(&db, 500, 10, 100)?;
    let before = db.stats();
    let digest = db.digest();
    let report = db.compact()?;
    let after = db.stats();
    assert!(report.files_in >= 2, "{report:?}");
    assert_eq!(report.kept, model.len() as u64, "{report:?}");
    assert!(report.tombstones_dropped > 0, "{report:?}");
    assert_eq!(report.bytes_before, before.disk_bytes);
    assert_eq!(report.bytes_after, after.disk_bytes);
    // Only the live records (and the empty file being appended to) remain.
    assert!(
        after.data_bytes <= after.live_bytes + (after.files as u64) * 32,
        "{after:?}"
    );
    assert!(
        after.data_bytes * 5 < before.data_bytes,
        "{before:?} {after:?}"
    );
    assert!(after.disk_bytes < before.disk_bytes);
    assert_eq!(db.digest(), digest);
    assert_eq!(after.live_bytes, before.live_bytes);
    check(&db, &model, 500)?;
    // History now reaches back to the compaction only (history = 1).
    assert_eq!(db.history(b"key-1", 10)?.len(), 1);
    // The old files are gone from the directory.
    let db_files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".db")
        })
        .count();
    assert_eq!(db_files as u16, after.files);
    // Writes continue, and everything survives a reopen and a second compaction.
    db.put(b"key-1", b"new")?;
    let mut model = model;
    model.insert(b"key-1".to_vec(), b"new".to_vec());
    db.close()?;
    let db = Db::open(dir.path(), opts())?;
    assert_eq!(db.recovery().replayed, 0);
    check(&db, &model, 500)?;
    db.compact()?;
    check(&db, &model, 500)?;
    let digest = db.digest();
    db.close()?;
    let db = Db::open(dir.path(), opts())?;
    assert_eq!(db.digest(), digest);
    check(&db, &model, 500)
}

#[test]
fn reads_and_writes_go_on_while_compaction_runs() -> Result<(), Error> {
    let dir = TempDir::new("compact-online");
    let db = Arc::new(Db::open(dir.path(), opts())?);
    let mut model = fill(&db, 2000, 5, 200)?;
    let done = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let r = db.compact();
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    // Write and read until the compaction is over (and at least a few
    // rounds), checking every read against the model.
    let mut round = 100;
    let mut writes_during = 0;
    while !done.load(Ordering::SeqCst) || round < 103 {
        for k in (0..2000).step_by(3) {
            let key = format!("key-{k}").into_bytes();
            let v = value(k, round, 50);
            db.put(&key, &v)?;
            model.insert(key, v);
            let probe = format!("key-{}", (k * 13) % 2000).into_bytes();
            assert_eq!(db.get(&probe)?, model.get(&probe).cloned());
            if !done.load(Ordering::SeqCst) {
                writes_during += 1;
            }
        }
        round += 1;
    }
    let report = compactor.join().expect("compactor thread")?;
    assert!(report.kept > 0);
    assert!(writes_during > 0, "no write overlapped the compaction");
    check(&db, &model, 2000)?;
    let db = Arc::try_unwrap(db).ok().expect("only owner");
    db.close()?;
    let db = Db::open(dir.path(), opts())?;
    check(&db, &model, 2000)
}

#[test]
fn history_option_keeps_that_many_versions() -> Result<(), Error> {
    let dir = TempDir::new("compact-history");
    let o = Options {
        history: 3,
        ..opts()
    };
    let db = Db::open(dir.path(), o.clone())?;
    for round in 0..6u64 {
        for k in 0..200u64 {
            db.put(format!("key-{k}").as_bytes(), &value(k, round, 300))?;
        }
    }
    db.compact()?;
    for k in [0u64, 57, 199] {
        let h = db.history(format!("key-{k}").as_bytes(), 10)?;
        let got: Vec<_> = h.iter().map(|v| v.value.clone().unwrap()).collect();
        let want: Vec<_> = (3..6).rev().map(|r| value(k, r, 300)).collect();
        assert_eq!(got, want, "key-{k}");
    }
    db.close()?;
    let db = Db::open(dir.path(), o)?;
    assert_eq!(db.history(b"key-9", 10)?.len(), 3);
    Ok(())
}

fn replica_of(src: &Db, dir: &TempDir, after: u64) -> Result<Db, Error> {
    let r = Db::open(dir.path(), opts())?;
    for rec in src.read_from(after) {
        r.apply(&rec?)?;
    }
    Ok(r)
}

#[test]
fn deletes_a_replica_needs_are_kept_and_a_replica_behind_is_told() -> Result<(), Error> {
    let (d, r1, r2) = (
        TempDir::new("compact-src"),
        TempDir::new("compact-r1"),
        TempDir::new("compact-r2"),
    );
    let src = Db::open(d.path(), opts())?;
    fill(&src, 300, 4, 100)?;
    // Replica 1 is up to date now; replica 2 stops early.
    let early = src.seq() / 2;
    let rep2 = Db::open(r2.path(), opts())?;
    for rec in src.read_from(0) {
        let rec = rec?;
        if rec.seq > early {
            break;
        }
        rep2.apply(&rec)?;
    }
    let rep1 = replica_of(&src, &r1, 0)?;
    let at = rep1.seq();
    // More overwrites and deletes, then compact keeping deletes above `at`.
    for k in 0..300u64 {
        let key = format!("key-{k}").into_bytes();
        if k % 5 == 0 {
            src.delete(&key)?;
        } else {
            src.put(&key, &value(k, 9, 80))?;
        }
    }
    src.set_tombstone_floor(at);
    let report = src.compact()?;
    // Deletes up to `at` were dropped (replica 1 has them); the new ones kept.
    assert!(report.tombstones_dropped > 0);
    assert!(src.tombstone_horizon() <= at);
    assert!(src.tombstone_horizon() > early);
    // Replica 1 resumes from the log and ends equal.
    for rec in src.read_from(at) {
        rep1.apply(&rec?)?;
    }
    assert_eq!(rep1.digest(), src.digest());
    assert_eq!(rep1.len(), src.len());
    // Replica 2 is behind the dropped deletes: the log says so.
    let first = src.read_from(early).next().expect("an answer");
    assert!(matches!(first, Err(Error::Compacted { .. })), "{first:?}");
    // A snapshot brings it (fresh) to the same contents.
    let r3 = TempDir::new("compact-r3");
    let rep3 = Db::open(r3.path(), opts())?;
    let mut upto = 0;
    for rec in src.snapshot() {
        let rec = rec?;
        upto = rec.seq;
        rep3.apply(&rec)?;
    }
    for rec in src.read_from(upto) {
        rep3.apply(&rec?)?;
    }
    assert_eq!(rep3.digest(), src.digest());
    Ok(())
}

#[test]
fn a_key_whose_delete_was_dropped_can_come_back_on_a_replica() -> Result<(), Error> {
    let (d, r) = (TempDir::new("rebind-src"), TempDir::new("rebind-rep"));
    let src = Db::open(d.path(), opts())?;
    let rep = Db::open(r.path(), opts())?;
    src.put(b"k", b"one")?;
    src.put(b"pad", &[1; 100])?;
    src.delete(b"k")?;
    for rec in src.read_from(0) {
        rep.apply(&rec?)?;
    }
    let at = rep.seq();
    src.set_tombstone_floor(at);
    src.compact()?;
    // The delete is gone from the source; a new put binds the key anew.
    src.put(b"k", b"two")?;
    for rec in src.read_from(at) {
        let rec: Record = rec?;
        rep.apply(&rec)?;
    }
    assert_eq!(rep.get(b"k")?, Some(b"two".to_vec()));
    assert_eq!(rep.digest(), src.digest());
    rep.delete(b"k")?;
    assert_eq!(rep.get(b"k")?, None);
    rep.put(b"k", b"three")?;
    assert_eq!(rep.get(b"k")?, Some(b"three".to_vec()));
    Ok(())
}

#[test]
fn read_from_survives_a_compaction_in_the_middle() -> Result<(), Error> {
    let dir = TempDir::new("compact-iter");
    let db = Db::open(dir.path(), opts())?;
    fill(&db, 400, 3, 150)?;
    // A reader behind dropped deletes is told so.
    let mut behind = db.read_from(0);
    behind.next().expect("record")?;
    db.compact()?;
    assert!(matches!(behind.next(), Some(Err(Error::Compacted { .. }))));
    // With deletes kept for it (the floor), a reader goes on in seq order.
    fill(&db, 400, 3, 150)?;
    db.set_tombstone_floor(0);
    let mut it = db.read_from(db.tombstone_horizon());
    let mut last = 0;
    for _ in 0..100 {
        let r = it.next().expect("record")?;
        assert!(r.seq > last);
        last = r.seq;
    }
    db.compact()?;
    // The rest comes in seq order from the new files (older versions are
    // gone; tombstone floor is MAX, so no delete was needed by anyone).
    let mut n = 0;
    for r in it.by_ref() {
        let r = r?;
        assert!(r.seq > last, "{} after {last}", r.seq);
        last = r.seq;
        n += 1;
    }
    assert!(n > 0);
    Ok(())
}

/// Runs a compaction whose Nth write (or fsync) and everything after it
/// fail, as a crash at that point would stop it; then reopens and checks.
fn fail_at(n_write: u64, n_sync: u64) -> Result<(bool, u64, u64, bool), Error> {
    let dir = TempDir::new("compact-fault");
    let model = {
        let db = Db::open(
            dir.path(),
            Options {
                file_size: 1 << 14,
                ..opts()
            },
        )?;
        let m = fill(&db, 120, 4, 60)?;
        db.close()?;
        m
    };
    let io = Arc::new(FaultyIo::new(n_write, n_sync, libc_eio()));
    let faulty = Options {
        io: io.clone(),
        file_size: 1 << 14,
        ..opts()
    };
    // Open counts operations too: a fault there is a crash at open.
    let (ok, writes, syncs) = match Db::open(dir.path(), faulty) {
        Ok(db) => {
            let (w0, s0) = (io.writes(), io.syncs());
            let ok = db.compact().is_ok();
            let counts = (io.writes() - w0, io.syncs() - s0);
            db.crash();
            (ok, counts.0, counts.1)
        }
        Err(_) => (false, 0, 0),
    };
    let db = Db::open(
        dir.path(),
        Options {
            file_size: 1 << 14,
            ..opts()
        },
    )?;
    let rebuilt = db.recovery().rebuilt;
    check(&db, &model, 120)?;
    let digest = db.digest();
    // And it can compact (again) afterwards.
    db.compact()?;
    check(&db, &model, 120)?;
    assert_eq!(db.digest(), digest);
    Ok((ok, writes, syncs, rebuilt))
}

fn libc_eio() -> i32 {
    5
}

#[test]
fn a_failure_at_any_write_or_fsync_of_a_compaction_loses_nothing() -> Result<(), Error> {
    let (ok, writes, syncs, _) = fail_at(0, 0)?;
    assert!(ok);
    assert!(writes > 2 && syncs > 2, "{writes} writes, {syncs} syncs");
    // Opening counts a few operations too; go a little past the end.
    let mut rolled_forward = 0;
    for n in 1..=writes + 3 {
        rolled_forward += fail_at(n, 0)?.3 as u32;
    }
    for n in 1..=syncs + 3 {
        rolled_forward += fail_at(0, n)?.3 as u32;
    }
    // Some faults hit after the commit point: open finished those.
    assert!(rolled_forward > 0);
    Ok(())
}

#[test]
fn automatic_compaction_starts_on_garbage() -> Result<(), Error> {
    let dir = TempDir::new("compact-auto");
    let o = Options {
        auto_compact: true,
        compact_min_bytes: 64 << 10,
        compact_garbage_percent: 50,
        ..opts()
    };
    let db = Db::open(dir.path(), o)?;
    fill(&db, 200, 20, 100)?;
    // The background thread checks every COMPACT_CHECK_MS; wait for its
    // report rather than for a fixed time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.stats().compactions == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let s = db.stats();
    let last = s.last_compaction.expect("a report");
    assert!(last.bytes_after < last.bytes_before);
    Ok(())
}

#[test]
fn a_database_with_a_version_1_checkpoint_opens_and_counts_live_bytes() -> Result<(), Error> {
    let dir = TempDir::new("meta-v1");
    let db = Db::open(dir.path(), opts())?;
    let model = fill(&db, 100, 2, 50)?;
    let live_bytes = db.stats().live_bytes;
    db.close()?;
    // Rewrite meta as version 1: the first 88 bytes, version 1, CRC at 92.
    let path = dir.path().join("meta");
    let v2 = std::fs::read(&path).unwrap();
    let mut v1 = v2[..96].to_vec();
    v1[8..10].copy_from_slice(&1u16.to_le_bytes());
    v1[88..92].fill(0);
    let crc = crc32(&v1[..92]);
    v1[92..96].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &v1).unwrap();
    let db = Db::open(dir.path(), opts())?;
    assert_eq!(db.stats().live_bytes, live_bytes);
    check(&db, &model, 100)?;
    db.close()?;
    assert_eq!(
        std::fs::read(&path).unwrap().len(),
        hypha_engine::limits::META_BYTES,
        "rewritten as the current version"
    );
    Ok(())
}

fn crc32(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in b {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn random_workloads_with_compactions_match_a_model() -> Result<(), Error> {
    let mut rng = Rng::from_env("random_workloads_with_compactions_match_a_model");
    let dir = TempDir::new("compact-random");
    let o = Options {
        history: 2,
        file_size: 1 << 14,
        ..opts()
    };
    let mut db = Db::open(dir.path(), o.clone())?;
    let mut model = Model::new();
    for step in 0..3000u64 {
        let k = format!("k{}", rng.below(150)).into_bytes();
        match rng.below(10) {
            0..=5 => {
                let len = rng.below(300) as usize;
                let v = rng.bytes(len);
                db.put(&k, &v)?;
                model.insert(k, v);
            }
            6 | 7 => {
                let had = db.delete(&k)?.is_some();
                assert_eq!(had, model.remove(&k).is_some());
            }
            8 => {
                db.set_tombstone_floor(rng.below(db.seq() + 1));
                db.compact()?;
            }
            _ => {
                if rng.below(4) == 0 {
                    db.close()?;
                } else {
                    db.sync()?;
                    db.crash();
                }
                db = Db::open(dir.path(), o.clone())?;
            }
        }
        if step % 97 == 0 {
            assert_eq!(db.len(), model.len() as u64);
            for (k, v) in &model {
                assert_eq!(db.get(k)?.as_ref(), Some(v));
            }
            let h = db.history(b"k1", 5)?;
            assert!(h.windows(2).all(|w| w[0].seq > w[1].seq), "{h:?}");
            assert_eq!(
                h.first().map(|v| v.value.clone()).unwrap_or(None),
                model.get(b"k1".as_slice()).cloned()
            );
        }
    }
    Ok(())
}

/// A compaction whose Nth write or fsync (and all after) fail, on a
/// database `prepare` filled; returns whether open rebuilt the tables.
fn faulty_compaction(
    dir: &TempDir,
    n_write: u64,
    n_sync: u64,
    check_after: impl Fn(&Db),
) -> Result<bool, Error> {
    let io = Arc::new(FaultyIo::new(n_write, n_sync, libc_eio()));
    if let Ok(db) = Db::open(
        dir.path(),
        Options {
            io: io.clone(),
            ..opts()
        },
    ) {
        let _ = db.compact();
        db.crash();
    }
    let db = Db::open(dir.path(), opts())?;
    let rebuilt = db.recovery().rebuilt;
    check_after(&db);
    db.close()?;
    Ok(rebuilt)
}

#[test]
fn a_crash_in_a_commit_never_reissues_seqs_or_ids_of_dropped_records() -> Result<(), Error> {
    let mut rebuilt_any = false;
    for n in 1..40 {
        let dir = TempDir::new("compact-reissue");
        let (seq, next_id) = {
            let db = Db::open(dir.path(), opts())?;
            fill(&db, 50, 3, 200)?;
            // The newest records: new keys, then their deletes.
            for k in 0..20 {
                db.put(format!("late-{k}").as_bytes(), b"v")?;
            }
            for k in 0..20 {
                db.delete(format!("late-{k}").as_bytes())?;
            }
            let s = db.stats();
            db.close()?;
            (s.seq, s.next_id)
        };
        rebuilt_any |= faulty_compaction(&dir, n, 0, |db| {
            assert!(db.seq() >= seq, "fault {n}: seq {} < {seq}", db.seq());
            assert!(
                db.stats().next_id >= next_id,
                "fault {n}: next_id {} < {next_id}, rebuilt {}",
                db.stats().next_id,
                db.recovery().rebuilt
            );
            assert_eq!(db.get(b"late-3").unwrap(), None);
        })?;
    }
    assert!(rebuilt_any, "no fault hit the commit");
    Ok(())
}

#[test]
fn a_crash_in_a_second_compaction_at_the_same_seq_loses_nothing() -> Result<(), Error> {
    for n in 1..40 {
        let dir = TempDir::new("compact-twice");
        let model = {
            let db = Db::open(dir.path(), opts())?;
            let m = fill(&db, 80, 4, 150)?;
            db.set_tombstone_floor(0);
            db.compact()?; // keeps the deletes
            db.close()?;
            m
        };
        // No write in between: the second compaction has the same seq and
        // drops the deletes (floor MAX, the default after a reopen).
        faulty_compaction(&dir, 0, n, |db| check(db, &model, 80).unwrap())?;
    }
    Ok(())
}
