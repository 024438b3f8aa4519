//! The term table (`Db::term_history`, the file `terms`): where each term's
//! records start. A failover leader sends it to followers, which cut their
//! logs where it says they diverge, so it must never claim less than the
//! log holds — not after a crash or a failed write at any step — and must
//! follow every write, apply, cut and reopen.

mod common;

use common::TempDir;
use hypha_engine::io::{FaultyIo, Op};
use hypha_engine::limits::TERMS_KEPT;
use hypha_engine::{Db, Error, Fsync, Options, Record, RecordKind, RecordMeta, TermStart};
use std::sync::Arc;

fn opts(fsync: Fsync) -> Options {
    Options {
        fsync,
        auto_compact: false,
        ..Options::default()
    }
}

fn t(term: u64, first_seq: u64) -> TermStart {
    TermStart { term, first_seq }
}

/// A put from a master: key `k{seq}` at `seq`, of `term`.
fn from_master(seq: u64, term: u64) -> Record {
    Record {
        seq,
        id: seq as u32,
        kind: RecordKind::Put,
        key: format!("k{seq}").into_bytes(),
        value: b"v".to_vec(),
        meta: RecordMeta {
            term,
            ..RecordMeta::default()
        },
    }
}

/// Every record of the log carries the term the table says its seq has
/// (records before the oldest kept entry are not checked), and no entry
/// starts further than the next record.
fn table_matches_log(db: &Db) -> Result<(), Error> {
    let starts = db.term_history();
    for s in &starts {
        assert!(
            s.first_seq <= db.seq() + 1,
            "{starts:?} past seq {}",
            db.seq()
        );
    }
    for r in db.read_from(db.tombstone_horizon()) {
        let r = r?;
        let Some(entry) = starts.iter().rev().find(|s| s.first_seq <= r.seq) else {
            continue;
        };
        assert_eq!(
            entry.term, r.meta.term,
            "seq {} has term {} but the table {starts:?} says {}",
            r.seq, r.meta.term, entry.term
        );
    }
    Ok(())
}

#[test]
fn writes_in_new_terms_start_entries_that_survive_reopen() -> Result<(), Error> {
    let dir = TempDir::new("terms-writes");
    let db = Db::open(dir.path(), opts(Fsync::Always))?;
    // A new database's records start in term 0 unless told otherwise.
    assert_eq!(db.term_history(), vec![t(0, 1)]);
    db.put(b"a", b"1")?;
    db.put(b"b", b"1")?;
    db.set_term(3);
    db.put(b"a", b"2")?;
    db.set_term(7);
    db.delete(b"b")?;
    db.put(b"c", b"3")?;
    let want = vec![t(0, 1), t(3, 3), t(7, 4)];
    assert_eq!(db.term_history(), want);
    table_matches_log(&db)?;
    db.close()?;
    let db = Db::open(dir.path(), opts(Fsync::Always))?;
    assert_eq!(db.term_history(), want);
    assert_eq!(db.last_log_id(), (7, 5));
    Ok(())
}

#[test]
fn applied_records_carry_their_terms_into_the_table() -> Result<(), Error> {
    let dir = TempDir::new("terms-apply");
    let db = Db::open(dir.path(), opts(Fsync::Never))?;
    for (seq, term) in [(1, 2), (2, 2), (3, 5), (4, 9), (5, 9)] {
        db.apply(&from_master(seq, term))?;
    }
    assert_eq!(db.term_history(), vec![t(2, 1), t(5, 3), t(9, 4)]);
    table_matches_log(&db)?;
    Ok(())
}

#[test]
fn a_cut_takes_its_terms_with_it() -> Result<(), Error> {
    let dir = TempDir::new("terms-cut");
    let db = Db::open(dir.path(), opts(Fsync::Always))?;
    for term in [1, 4, 6] {
        db.set_term(term);
        for i in 0..5 {
            db.put(format!("k{i}").as_bytes(), format!("t{term}").as_bytes())?;
        }
    }
    assert_eq!(db.term_history(), vec![t(1, 1), t(4, 6), t(6, 11)]);
    let db = db.truncate_after(7)?;
    assert_eq!(db.term_history(), vec![t(1, 1), t(4, 6)]);
    table_matches_log(&db)?;
    // The next leader's records follow on from the cut.
    db.set_term(8);
    db.put(b"k9", b"t8")?;
    assert_eq!(db.term_history(), vec![t(1, 1), t(4, 6), t(8, 8)]);
    table_matches_log(&db)?;
    Ok(())
}

#[test]
fn the_table_keeps_the_newest_terms() -> Result<(), Error> {
    let dir = TempDir::new("terms-kept");
    let db = Db::open(dir.path(), opts(Fsync::Never))?;
    let terms = TERMS_KEPT as u64 + 8;
    for term in 1..=terms {
        db.set_term(term);
        db.put(b"k", term.to_string().as_bytes())?;
    }
    let kept = db.term_history();
    assert_eq!(kept.len(), TERMS_KEPT);
    assert_eq!(kept.first(), Some(&t(9, 9)));
    assert_eq!(kept.last(), Some(&t(terms, terms)));
    table_matches_log(&db)?;
    Ok(())
}

#[test]
fn a_snapshot_replica_takes_its_masters_table() -> Result<(), Error> {
    let dir = TempDir::new("terms-snapshot");
    let db = Db::open(dir.path(), opts(Fsync::Never))?;
    for (seq, term) in [(3, 2), (8, 6)] {
        db.apply(&from_master(seq, term))?;
    }
    // The master's table runs past the snapshot's seq: that part goes.
    db.set_term_history(&[t(0, 1), t(2, 3), t(6, 5), t(7, 12)])?;
    assert_eq!(db.term_history(), vec![t(0, 1), t(2, 3), t(6, 5)]);
    assert!(db.set_term_history(&[t(2, 3), t(1, 4)]).is_err());
    assert_eq!(db.term_history(), vec![t(0, 1), t(2, 3), t(6, 5)]);
    db.close()?;
    let db = Db::open(dir.path(), opts(Fsync::Never))?;
    assert_eq!(db.term_history(), vec![t(0, 1), t(2, 3), t(6, 5)]);
    Ok(())
}

#[test]
fn an_entry_for_a_record_never_written_gives_way_to_the_record_that_is() -> Result<(), Error> {
    let dir = TempDir::new("terms-ahead");
    let db = Db::open(dir.path(), opts(Fsync::Never))?;
    db.set_term(2);
    for i in 0..10 {
        db.put(format!("k{i}").as_bytes(), b"v")?;
    }
    // As a crash after the table named term 5 and before its first record
    // landed leaves it.
    db.set_term_history(&[t(2, 1), t(5, 11)])?;
    assert_eq!(db.term_history(), vec![t(2, 1), t(5, 11)]);
    // The next leader's log has a record of term 4 there.
    db.apply(&from_master(11, 4))?;
    assert_eq!(db.term_history(), vec![t(2, 1), t(4, 11)]);
    table_matches_log(&db)?;
    db.close()?;
    let db = Db::open(dir.path(), opts(Fsync::Never))?;
    assert_eq!(db.term_history(), vec![t(2, 1), t(4, 11)]);
    // A record whose term goes back is refused, and changes nothing.
    let e = db
        .apply(&from_master(12, 3))
        .expect_err("a term going back");
    assert!(e.to_string().contains("terms never go back"), "{e}");
    assert_eq!((db.seq(), db.term_history()), (11, vec![t(2, 1), t(4, 11)]));
    Ok(())
}

/// The writes of the fault test: (term, key) in order.
const WRITES: [(u64, &str); 7] = [
    (0, "a"),
    (0, "b"),
    (2, "a"),
    (2, "c"),
    (5, "b"),
    (9, "d"),
    (9, "a"),
];

#[test]
fn a_failure_or_crash_at_any_step_never_leaves_a_table_that_claims_less() -> Result<(), Error> {
    let mut failed = 0;
    for op in [Op::Create, Op::Write, Op::Sync, Op::SyncDir, Op::Rename] {
        for nth in 1..12 {
            for fsync in [Fsync::Always, Fsync::Never] {
                let dir = TempDir::new("terms-faults");
                let faulty = Options {
                    io: Arc::new(FaultyIo::failing(op, nth, 5)),
                    ..opts(fsync)
                };
                let Ok(db) = Db::open(dir.path(), faulty) else {
                    failed += 1;
                    continue;
                };
                for (term, key) in WRITES {
                    db.set_term(term);
                    if db.put(key.as_bytes(), b"v").is_err() {
                        failed += 1;
                        break;
                    }
                }
                db.crash();
                let db = Db::open(dir.path(), opts(fsync))?;
                table_matches_log(&db).unwrap_or_else(|e| panic!("{op:?} #{nth} {fsync:?}: {e}"));
                // The next write of a new term finds a consistent table.
                db.set_term(11);
                db.put(b"z", b"after")?;
                table_matches_log(&db)?;
                assert_eq!(db.term_history().last(), Some(&t(11, db.seq())));
            }
        }
    }
    assert!(failed >= 20, "only {failed} runs failed: the faults missed");
    Ok(())
}

#[test]
fn a_format_1_database_holds_term_0_from_seq_1() -> Result<(), Error> {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
    let dir = TempDir::new("terms-format1");
    for entry in std::fs::read_dir(&from).expect("fixture") {
        let entry = entry.expect("fixture entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    let db = Db::open(dir.path(), opts(Fsync::Never))?;
    assert!(db.seq() > 0);
    assert_eq!(db.term_history(), vec![t(0, 1)]);
    table_matches_log(&db)?;
    Ok(())
}
