//! `read_from` ships the log in seq order, `apply` replays it keeping seq, id
//! and key, and `digest` agrees on equal contents.

mod common;
use common::{Rng, TempDir};
use hypha_engine::{Db, Error, Fsync, Options, Record, RecordKind};

fn never() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: 1 << 16,
        ..Options::default()
    }
}

fn write_random(db: &Db, rng: &mut Rng, n: usize) -> Result<(), Error> {
    for _ in 0..n {
        let key = format!("k{}", rng.below(300)).into_bytes();
        if rng.below(5) == 0 {
            db.delete(&key)?;
        } else {
            let len = rng.below(300) as usize;
            let v = rng.bytes(len);
            db.put(&key, &v)?;
        }
    }
    Ok(())
}

#[test]
fn a_replica_fed_by_read_from_ends_equal() -> Result<(), Error> {
    let mut rng = Rng::from_env("a_replica_fed_by_read_from_ends_equal");
    let (a, b) = (TempDir::new("repl-a"), TempDir::new("repl-b"));
    let master = Db::open(a.path(), never())?;
    let replica = Db::open(b.path(), never())?;
    write_random(&master, &mut rng, 3000)?;
    assert!(master.stats().files > 1, "the log spans files");
    let mut shipped = 0;
    let mut last = 0;
    for r in master.read_from(0) {
        let r = r?;
        assert!(r.seq > last, "seq order");
        last = r.seq;
        assert!(replica.apply(&r)?);
        shipped += 1;
    }
    assert_eq!(shipped, master.seq());
    assert_eq!(replica.digest(), master.digest());
    assert_eq!(replica.len(), master.len());
    assert_eq!(replica.seq(), master.seq());
    for i in 0..300 {
        let k = format!("k{i}").into_bytes();
        assert_eq!(replica.get(&k)?, master.get(&k)?);
        assert_eq!(replica.history(&k, 50)?, master.history(&k, 50)?);
    }
    Ok(())
}

#[test]
fn applying_twice_or_replaying_changes_nothing() -> Result<(), Error> {
    let mut rng = Rng::from_env("applying_twice_or_replaying_changes_nothing");
    let (a, b) = (TempDir::new("idem-a"), TempDir::new("idem-b"));
    let master = Db::open(a.path(), never())?;
    let replica = Db::open(b.path(), never())?;
    write_random(&master, &mut rng, 500)?;
    let records: Vec<Record> = master.read_from(0).collect::<Result<_, _>>()?;
    for r in &records[..250] {
        replica.apply(r)?;
    }
    let seq = replica.seq();
    for r in &records {
        let applied = replica.apply(r)?;
        assert_eq!(applied, r.seq > seq, "seq {} applied once", r.seq);
    }
    assert_eq!(replica.digest(), master.digest());
    assert_eq!(replica.seq(), master.seq());
    Ok(())
}

#[test]
fn read_from_resumes_after_a_seq_and_tails_new_writes() -> Result<(), Error> {
    let a = TempDir::new("tail");
    let db = Db::open(a.path(), never())?;
    for i in 0..100u32 {
        db.put(&i.to_be_bytes(), b"v")?;
    }
    let from_40: Vec<u64> = db
        .read_from(40)
        .map(|r| r.map(|r| r.seq))
        .collect::<Result<_, _>>()?;
    assert_eq!(from_40, (41..=100).collect::<Vec<_>>());
    let mut it = db.read_from(100);
    assert!(it.next().is_none());
    db.put(b"new", b"v")?;
    assert_eq!(it.next().transpose()?.map(|r| r.seq), Some(101));
    db.close()?;
    let db = Db::open(a.path(), never())?;
    assert_eq!(
        db.read_from(99).count(),
        2,
        "the log is read from the files after reopen"
    );
    Ok(())
}

#[test]
fn digest_is_order_independent_and_tracks_live_pairs_only() -> Result<(), Error> {
    let (a, b) = (TempDir::new("dig-a"), TempDir::new("dig-b"));
    let x = Db::open(a.path(), never())?;
    let y = Db::open(b.path(), never())?;
    assert_eq!(x.digest(), y.digest());
    x.put(b"a", b"1")?;
    x.put(b"b", b"2")?;
    x.put(b"gone", b"3")?;
    x.delete(b"gone")?;
    y.put(b"b", b"old")?;
    y.put(b"b", b"2")?;
    y.put(b"a", b"1")?;
    assert_eq!(x.digest(), y.digest());
    y.put(b"a", b"changed")?;
    assert_ne!(x.digest(), y.digest());
    let d = y.digest();
    drop(y);
    assert_eq!(
        Db::open(b.path(), never())?.digest(),
        d,
        "digest survives reopen"
    );
    Ok(())
}

#[test]
fn snapshot_carries_exactly_the_live_records() -> Result<(), Error> {
    let mut rng = Rng::from_env("snapshot_carries_exactly_the_live_records");
    let (a, b) = (TempDir::new("snap-a"), TempDir::new("snap-b"));
    let master = Db::open(a.path(), never())?;
    write_random(&master, &mut rng, 2000)?;
    let replica = Db::open(b.path(), never())?;
    let mut n = 0;
    for r in master.snapshot() {
        let r = r?;
        assert_eq!(r.kind, RecordKind::Put);
        replica.apply(&r)?;
        n += 1;
    }
    assert_eq!(n, master.len());
    assert_eq!(replica.digest(), master.digest());
    // The log continues on top of the snapshot.
    master.put(b"after", b"snapshot")?;
    for r in master.read_from(replica.seq()) {
        replica.apply(&r?)?;
    }
    assert_eq!(replica.digest(), master.digest());
    Ok(())
}

#[test]
fn apply_refuses_a_record_from_another_history() -> Result<(), Error> {
    let a = TempDir::new("diverge");
    let db = Db::open(a.path(), never())?;
    db.put(b"k", b"v")?; // id 1
    let other = Record {
        seq: 10,
        id: 2,
        kind: RecordKind::Put,
        key: b"k".to_vec(),
        value: b"w".to_vec(),
        meta: Default::default(),
    };
    assert!(matches!(db.apply(&other), Err(Error::Diverged { .. })));
    assert_eq!(db.get(b"k")?.as_deref(), Some(&b"v"[..]));
    Ok(())
}

#[test]
fn apply_refuses_a_delete_that_carries_a_value() -> Result<(), Error> {
    let a = TempDir::new("bad-delete");
    let db = Db::open(a.path(), never())?;
    let bad = Record {
        seq: 1,
        id: 1,
        kind: RecordKind::Delete,
        key: b"k".to_vec(),
        value: b"x".to_vec(),
        meta: Default::default(),
    };
    assert!(matches!(db.apply(&bad), Err(Error::InvalidRecord { .. })));
    assert_eq!(db.seq(), 0, "nothing written");
    Ok(())
}

/// A snapshot at `upto` is the store as it was after `upto`, whatever is
/// overwritten or deleted while it is read: a replica built from it and then
/// from the log after `upto` never shows a state the master did not have.
#[test]
fn snapshot_at_is_the_store_at_its_seq_while_writes_go_on() -> Result<(), Error> {
    let mut rng = Rng::from_env("snapshot_at_is_the_store_at_its_seq_while_writes_go_on");
    let (a, b, c) = (
        TempDir::new("snap-at-a"),
        TempDir::new("snap-at-b"),
        TempDir::new("snap-at-c"),
    );
    let master = Db::open(a.path(), never())?;
    write_random(&master, &mut rng, 2000)?;
    let upto = master.seq();
    // The state at `upto`, from the whole log.
    let reference = Db::open(c.path(), never())?;
    for r in master.read_from(0) {
        reference.apply(&r?)?;
    }
    assert_eq!(reference.digest(), master.digest());

    let replica = Db::open(b.path(), never())?;
    let mut snapshot = master.snapshot_at(upto);
    for r in snapshot.by_ref().take(50) {
        replica.apply(&r?)?;
    }
    // Most keys change while the snapshot is half read.
    write_random(&master, &mut rng, 1500)?;
    for r in snapshot {
        let r = r?;
        assert!(r.seq <= upto, "seq {} is past the snapshot's {upto}", r.seq);
        assert_eq!(r.kind, RecordKind::Put);
        replica.apply(&r)?;
    }
    assert_eq!(replica.len(), reference.len(), "the keys live at {upto}");
    assert_eq!(
        replica.digest(),
        reference.digest(),
        "the pairs live at {upto}"
    );
    // The log after `upto` brings it to the master's present.
    for r in master.read_from(upto) {
        replica.apply(&r?)?;
    }
    assert_eq!(replica.digest(), master.digest());
    Ok(())
}
