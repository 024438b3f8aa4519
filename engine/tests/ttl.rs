//! Expiry in the engine: a put's deadline is kept in its record, through
//! reopen and compaction; `expire_due` writes the expiry (a delete carrying
//! the deadline) only once the key's live version is due, never over a
//! later write; a refresh keeps the value and moves the deadline;
//! `deadlines` lists what a new master must watch.

mod common;
use common::TempDir;
use hypha_engine::{BatchOp, Db, Error, Fsync, Options, Record, RecordKind};

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: 1 << 16,
        auto_compact: false,
        ..Options::default()
    }
}

fn put_ttl(db: &Db, key: &[u8], value: &[u8], deadline_ms: u64) -> Result<u64, Error> {
    let op = BatchOp::Put {
        key,
        value,
        deadline_ms,
    };
    Ok(db.batch(&[op])?.expect("a put writes"))
}

fn last_record(db: &Db) -> Result<Record, Error> {
    let log: Vec<Record> = db.read_from(db.seq() - 1).collect::<Result<_, _>>()?;
    Ok(log.last().cloned().expect("a record"))
}

#[test]
fn a_key_expires_once_due_and_never_over_a_later_write() -> Result<(), Error> {
    let dir = TempDir::new("ttl-expire");
    let db = Db::open(dir.path(), opts())?;
    let seq = put_ttl(&db, b"lease", b"owner-1", 1_000)?;
    let live = db.get_live(b"lease")?.expect("live");
    assert_eq!((live.seq, live.deadline_ms), (seq, 1_000));
    // Not due yet: nothing written.
    assert_eq!(db.expire_due(b"lease", 999)?, None);
    assert_eq!(db.seq(), seq);
    // Due: a delete that carries the deadline.
    let expired = db.expire_due(b"lease", 1_000)?.expect("expired");
    let r = last_record(&db)?;
    assert_eq!(
        (r.seq, r.kind, r.meta.deadline_ms),
        (expired, RecordKind::Delete, 1_000)
    );
    assert_eq!(db.get(b"lease")?, None);
    assert_eq!(db.expire_due(b"lease", 5_000)?, None, "expired once");
    // Rewritten without a deadline before the expiry ran: kept.
    put_ttl(&db, b"k", b"1", 2_000)?;
    db.put(b"k", b"2")?;
    assert_eq!(db.expire_due(b"k", 9_000)?, None);
    assert_eq!(db.get(b"k")?.as_deref(), Some(&b"2"[..]));
    // Rewritten with a later deadline: only that one counts.
    put_ttl(&db, b"m", b"1", 2_000)?;
    put_ttl(&db, b"m", b"2", 4_000)?;
    assert_eq!(db.expire_due(b"m", 3_000)?, None);
    assert!(db.expire_due(b"m", 4_000)?.is_some());
    Ok(())
}

#[test]
fn a_refresh_keeps_the_value_and_moves_the_deadline() -> Result<(), Error> {
    let dir = TempDir::new("ttl-refresh");
    let db = Db::open(dir.path(), opts())?;
    let first = put_ttl(&db, b"lease", b"owner-1", 1_000)?;
    let refresh = BatchOp::Refresh {
        key: b"lease",
        deadline_ms: 5_000,
    };
    let seq = db.batch(&[refresh])?.expect("a live key refreshes");
    assert!(seq > first, "a refresh is a write");
    let r = last_record(&db)?;
    assert!(r.meta.refresh && r.kind == RecordKind::Put);
    assert_eq!(
        (r.value.as_slice(), r.meta.deadline_ms),
        (&b"owner-1"[..], 5_000)
    );
    assert_eq!(db.expire_due(b"lease", 1_000)?, None);
    // An absent key has nothing to refresh: nothing is written.
    let absent = BatchOp::Refresh {
        key: b"none",
        deadline_ms: 5_000,
    };
    assert_eq!(db.batch(&[absent])?, None);
    // A refresh without a deadline is a caller's bug.
    let zero = BatchOp::Refresh {
        key: b"lease",
        deadline_ms: 0,
    };
    assert!(matches!(
        db.batch(&[zero]),
        Err(Error::InvalidRecord { .. })
    ));
    Ok(())
}

#[test]
fn deadlines_survive_reopen_and_compaction() -> Result<(), Error> {
    let dir = TempDir::new("ttl-durable");
    let db = Db::open(dir.path(), opts())?;
    for i in 0..50u64 {
        let key = format!("k{i}");
        put_ttl(&db, key.as_bytes(), b"v", 10_000 + i)?;
        // A rewrite without a deadline for half of them.
        if i % 2 == 0 {
            db.put(key.as_bytes(), b"plain")?;
        }
    }
    db.put(b"filler", &vec![1u8; 30_000])?;
    db.put(b"filler", &vec![2u8; 30_000])?;
    db.compact()?;
    db.close()?;
    let db = Db::open(dir.path(), opts())?;
    let mut listed = db.deadlines()?;
    listed.sort();
    let expected: Vec<(u64, Vec<u8>)> = (0..50u64)
        .filter(|i| i % 2 == 1)
        .map(|i| (10_000 + i, format!("k{i}").into_bytes()))
        .collect();
    assert_eq!(listed, expected);
    assert!(db.expire_due(b"k1", 10_001)?.is_some());
    assert_eq!(db.expire_due(b"k0", 99_999)?, None);
    Ok(())
}
