//! `Db::truncate_after`: a rejoining former master cuts its log back to the
//! new master's, keeps what it cut in `diverged/`, and follows on from the
//! seq it kept; a crash at any step of the cut leaves a database that the
//! next open finishes the same way.

mod common;

use common::TempDir;
use hypha_engine::io::{FaultyIo, Op};
use hypha_engine::{Db, Error, Fsync, Options, Record, RecordKind};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        auto_compact: false,
        // Small files: the cut removes whole files as well as a tail.
        file_size: hypha_engine::limits::FILE_SIZE_MIN,
        ..Options::default()
    }
}

/// The writes of the test, in seq order: seq `i + 1` is `ops[i]`.
fn ops() -> Vec<(String, Option<String>)> {
    (0..400u32)
        .map(|i| {
            let key = format!("k{:02}", i % 37);
            match i % 7 {
                6 => (key, None),
                _ => (
                    key,
                    Some(format!("v{i}-{}", "x".repeat((i % 50) as usize * 4))),
                ),
            }
        })
        .collect()
}

/// The store after the first `upto` writes.
fn model(upto: usize) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in &ops()[..upto] {
        match v {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
    m
}

fn write_all(db: &Db) -> Result<(), Error> {
    for (k, v) in ops() {
        match v {
            Some(v) => {
                db.put(k.as_bytes(), v.as_bytes())?;
            }
            None => {
                db.delete(k.as_bytes())?;
            }
        }
    }
    Ok(())
}

fn check(db: &Db, upto: usize) -> Result<(), Error> {
    let want = model(upto);
    for i in 0..37u32 {
        let key = format!("k{i:02}");
        let got = db
            .get(key.as_bytes())?
            .map(|v| String::from_utf8(v).expect("utf8"));
        assert_eq!(got.as_ref(), want.get(&key), "{key} after {upto} writes");
    }
    assert_eq!(db.len(), want.len() as u64);
    Ok(())
}

fn diverged_files(dir: &Path, after: u64) -> usize {
    std::fs::read_dir(dir.join("diverged").join(format!("after-{after}")))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn the_log_is_cut_back_and_the_cut_is_kept() -> Result<(), Error> {
    let dir = TempDir::new("truncate");
    let db = Db::open(dir.path(), opts())?;
    write_all(&db)?;
    check(&db, 400)?;
    let files_before = db.stats().files;
    assert!(
        files_before > 2,
        "{files_before} files: the cut must span several"
    );
    let db = db.truncate_after(150)?;
    assert_eq!(db.recovery().diverged_after, Some(150));
    assert!(db.recovery().diverged_bytes > 0);
    assert_eq!(db.seq(), 150);
    let upto = seq_index(150);
    check(&db, upto)?;
    assert!(db.stats().files < files_before, "later files removed");
    assert!(diverged_files(dir.path(), 150) >= 2);
    assert!(
        !dir.path().join("TRUNCATE").exists(),
        "marker removed when done"
    );
    // It follows on: the next record it applies is the new master's 151.
    let r = Record {
        seq: 151,
        id: 1,
        kind: RecordKind::Put,
        key: b"k00".to_vec(),
        value: b"from the new master".to_vec(),
        meta: Default::default(),
    };
    assert!(db.apply(&r)?);
    assert_eq!(
        db.get(b"k00")?.as_deref(),
        Some(&b"from the new master"[..])
    );
    db.close()?;
    let db = Db::open(dir.path(), opts())?;
    assert_eq!(db.seq(), 151);
    // Cutting at or past the end cuts nothing.
    let db = db.truncate_after(151)?;
    assert_eq!(db.seq(), 151);
    Ok(())
}

/// How many of `ops()` seqs `1..=seq` are: a delete of an absent key
/// writes nothing and takes no seq.
fn seq_index(seq: u64) -> usize {
    let mut live = std::collections::BTreeSet::new();
    let mut s = 0;
    for (i, (k, v)) in ops().iter().enumerate() {
        let writes = match v {
            Some(_) => {
                live.insert(k.clone());
                true
            }
            None => live.remove(k),
        };
        if writes {
            s += 1;
            if s == seq {
                return i + 1;
            }
        }
    }
    panic!("seq {seq} past the writes");
}

#[test]
fn a_crash_at_any_step_of_the_cut_is_finished_by_the_next_open() -> Result<(), Error> {
    use hypha_engine::tables::TruncateMarker;
    let mut failed_opens = 0;
    for op in [
        Op::Create,
        Op::Write,
        Op::Sync,
        Op::SyncDir,
        Op::Remove,
        Op::SetLen,
    ] {
        for nth in 1..6 {
            let dir = TempDir::new("truncate-crash");
            let db = Db::open(dir.path(), opts())?;
            write_all(&db)?;
            db.close()?;
            // What `truncate_after` makes durable before it reopens.
            std::fs::write(
                dir.path().join("TRUNCATE"),
                TruncateMarker { after: 150 }.encode(),
            )
            .expect("marker");
            // The open that cuts fails at the nth call of `op`, as a crash
            // there would stop it.
            let faulty = Options {
                io: Arc::new(FaultyIo::failing(op, nth, 5)),
                ..opts()
            };
            if let Err(e) = Db::open(dir.path(), faulty) {
                failed_opens += 1;
                assert!(!e.to_string().is_empty());
            }
            let db = Db::open(dir.path(), opts())?;
            assert_eq!(db.seq(), 150, "{op:?} #{nth}");
            check(&db, seq_index(150))?;
            assert!(!dir.path().join("TRUNCATE").exists(), "{op:?} #{nth}");
            assert!(
                diverged_files(dir.path(), 150) >= 2,
                "{op:?} #{nth}: cut kept"
            );
        }
    }
    assert!(
        failed_opens >= 20,
        "only {failed_opens} opens failed: the faults missed the cut"
    );
    Ok(())
}

#[test]
fn a_cut_below_what_compaction_rewrote_is_refused() -> Result<(), Error> {
    let dir = TempDir::new("truncate-compacted");
    let db = Db::open(dir.path(), opts())?;
    write_all(&db)?;
    db.compact()?;
    match db.truncate_after(100) {
        Err(Error::Compacted { after: 100, .. }) => {}
        other => panic!("cut below the compaction: {:?}", other.map(|d| d.seq())),
    }
    Ok(())
}
