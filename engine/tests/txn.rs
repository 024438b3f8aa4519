//! Atomic batches and transactions: the writes of one batch get
//! consecutive seqs, appear to readers all at once, replicate as a unit
//! (`apply_all` refuses records that end inside one) and survive a reopen
//! whole; a transaction writes only when every condition holds, and
//! otherwise answers which failed with the reads it asked for.

mod common;
use common::TempDir;
use hypha_engine::{
    BatchOp, Cond, Db, Error, Expect, Fsync, Options, Record, Request, Test, Txn, TxnOutcome,
};
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

fn put<'a>(key: &'a [u8], value: &'a [u8]) -> BatchOp<'a> {
    BatchOp::Put {
        key,
        value,
        deadline_ms: 0,
    }
}

fn run(db: &Db, txn: &Txn<'_>, req: Option<&Request>) -> Result<TxnOutcome, Error> {
    Ok(db.txn(txn, req, true)?.expect("a waiting transaction ends"))
}

#[test]
fn a_batch_takes_consecutive_seqs_and_marks_all_but_its_last_record() -> Result<(), Error> {
    let dir = TempDir::new("txn-seqs");
    let db = Db::open(dir.path(), opts())?;
    db.put(b"before", b"0")?;
    let last = db.batch(&[
        put(b"a", b"1"),
        put(b"b", b"2"),
        BatchOp::Delete { key: b"before" },
        // Absent by then: writes nothing.
        BatchOp::Delete { key: b"never" },
    ])?;
    assert_eq!(last, Some(4));
    let log: Vec<Record> = db.read_from(1).collect::<Result<_, _>>()?;
    let shape: Vec<_> = log.iter().map(|r| (r.seq, r.meta.batch_more)).collect();
    assert_eq!(shape, vec![(2, true), (3, true), (4, false)]);
    assert_eq!(db.get(b"a")?.as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"before")?, None);
    // Nothing to write: no record, no seq.
    assert_eq!(db.batch(&[BatchOp::Delete { key: b"never" }])?, None);
    assert_eq!(db.seq(), 4);
    // A later write of the same key in one batch wins; a put then a delete
    // of a new key writes both.
    db.batch(&[
        put(b"c", b"1"),
        put(b"c", b"2"),
        BatchOp::Delete { key: b"a" },
    ])?;
    assert_eq!(db.get(b"c")?.as_deref(), Some(&b"2"[..]));
    assert_eq!(
        db.batch(&[put(b"d", b"1"), BatchOp::Delete { key: b"d" }])?,
        Some(9)
    );
    assert_eq!(db.get(b"d")?, None);
    // The snapshot holds live versions, not batches: no flag survives in it.
    assert!(db.snapshot().all(|r| r.is_ok_and(|r| !r.meta.batch_more)));
    Ok(())
}

#[test]
fn a_transaction_writes_only_when_every_condition_holds() -> Result<(), Error> {
    let dir = TempDir::new("txn-conds");
    let db = Db::open(dir.path(), opts())?;
    let a = db.put(b"a", b"on")?;
    let txn = |seq| Txn {
        conds: vec![
            Cond {
                key: b"a",
                test: Test::Expect(Expect::Seq(seq)),
            },
            Cond {
                key: b"b",
                test: Test::Expect(Expect::Absent),
            },
            Cond {
                key: b"a",
                test: Test::Value(b"on"),
            },
        ],
        ops: vec![put(b"a", b"1"), put(b"b", b"2")],
        reads: vec![b"a", b"nothing"],
    };
    // A stale seq: the first condition fails, nothing is written, and the
    // reads come back as of the check.
    let TxnOutcome::Failed { failed, seq, reads } = run(&db, &txn(a + 7), None)? else {
        panic!("a stale seq fails");
    };
    assert_eq!((failed, seq), (vec![0], a));
    assert_eq!(reads, vec![Some((a, b"on".to_vec())), None]);
    assert_eq!(db.seq(), a);
    // All hold: both writes, at one batch.
    assert_eq!(run(&db, &txn(a), None)?, TxnOutcome::Applied(Some(a + 2)));
    assert_eq!(db.get(b"b")?.as_deref(), Some(&b"2"[..]));
    // Now `a` moved, `b` exists and `a` holds "1": all three fail.
    let TxnOutcome::Failed { failed, .. } = run(&db, &txn(a), None)? else {
        panic!("conditions on changed keys fail");
    };
    assert_eq!(failed, vec![0, 1, 2]);
    Ok(())
}

#[test]
fn a_retried_transaction_finds_its_first_attempt() -> Result<(), Error> {
    let dir = TempDir::new("txn-retry");
    let db = Db::open(dir.path(), opts())?;
    db.put(b"x", b"0")?;
    let committed = db.seq();
    let txn = Txn {
        ops: vec![put(b"a", b"1"), put(b"b", b"1")],
        ..Txn::default()
    };
    let first = Request {
        id: [9; 16],
        retry_after: None,
    };
    let TxnOutcome::Applied(Some(seq)) = run(&db, &txn, Some(&first))? else {
        panic!("applied");
    };
    db.put(b"y", b"later")?;
    let retry = Request {
        retry_after: Some(committed),
        ..first
    };
    assert_eq!(run(&db, &txn, Some(&retry))?, TxnOutcome::Repeated(seq));
    assert_eq!(db.history(b"a", 5)?.len(), 1, "written once");
    Ok(())
}

#[test]
fn a_batch_binding_more_keys_than_the_index_holds_grows_it_first() -> Result<(), Error> {
    let dir = TempDir::new("txn-grow");
    let db = Db::open(
        dir.path(),
        Options {
            file_size: 1 << 22,
            ..opts()
        },
    )?;
    let keys: Vec<Vec<u8>> = (0..4000).map(|i| format!("k{i}").into_bytes()).collect();
    let ops: Vec<_> = keys.iter().map(|k| put(k, b"v")).collect();
    assert_eq!(db.batch(&ops)?, Some(4000));
    assert_eq!(db.len(), 4000);
    drop(db);
    let db = Db::open(dir.path(), opts())?;
    assert_eq!(db.get(b"k3999")?.as_deref(), Some(&b"v"[..]));
    Ok(())
}

#[test]
fn too_large_batches_are_refused_before_anything_is_written() -> Result<(), Error> {
    let dir = TempDir::new("txn-large");
    let db = Db::open(dir.path(), opts())?;
    let keys: Vec<Vec<u8>> = (0..5000).map(|i| format!("k{i}").into_bytes()).collect();
    let ops: Vec<_> = keys.iter().map(|k| put(k, b"v")).collect();
    assert!(matches!(db.batch(&ops), Err(Error::BatchTooLarge { .. })));
    // A record larger than a data file, after a good one: nothing written.
    let big = vec![7u8; 1 << 16];
    let err = db.batch(&[put(b"ok", b"1"), put(b"big", &big)]);
    assert!(matches!(err, Err(Error::RecordTooLarge { .. })), "{err:?}");
    assert_eq!((db.seq(), db.get(b"ok")?), (0, None));
    db.put(b"still", b"writable")?;
    Ok(())
}

#[test]
fn readers_never_see_half_a_batch() -> Result<(), Error> {
    let dir = TempDir::new("txn-readers");
    let db = Arc::new(Db::open(dir.path(), opts())?);
    db.batch(&[put(b"a", b"0"), put(b"b", b"0")])?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || -> Result<u64, Error> {
            let mut reads = 0;
            while !stop.load(Ordering::Acquire) {
                // `b` is read second: once `a` is new, so is `b`.
                let a = db.get(b"a")?.expect("a");
                let b = db.get(b"b")?.expect("b");
                let (a, b): (u64, u64) = (parse(&a), parse(&b));
                assert!(b >= a, "half a batch seen: a = {a}, b = {b}");
                reads += 1;
            }
            Ok(reads)
        })
    };
    for i in 1..=3000u64 {
        let v = i.to_string();
        // `a` first: written one by one, a reader could find the new `a`
        // and then the old `b`.
        db.batch(&[put(b"a", v.as_bytes()), put(b"b", v.as_bytes())])?;
    }
    stop.store(true, Ordering::Release);
    let reads = reader.join().expect("reader")?;
    assert!(reads > 0);
    // The same through `apply_all` on a replica.
    let replica_dir = TempDir::new("txn-replica");
    let replica = Db::open(replica_dir.path(), opts())?;
    let log: Vec<Record> = db.read_from(0).collect::<Result<_, _>>()?;
    let cut = log.len() - 1;
    assert!(matches!(
        replica.apply_all(&log[..cut]),
        Err(Error::InvalidRecord { .. })
    ));
    assert_eq!(
        replica.seq(),
        0,
        "nothing applied from records ending inside a batch"
    );
    assert_eq!(replica.apply_all(&log)?, db.seq());
    assert_eq!(replica.digest(), db.digest());
    Ok(())
}

fn parse(v: &[u8]) -> u64 {
    std::str::from_utf8(v)
        .expect("utf-8")
        .parse()
        .expect("number")
}
