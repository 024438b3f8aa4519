//! Writes with a client's request id: the id is stored in the record, a
//! retry that finds it writes nothing and gets the original seq, and a
//! retry whose window the log cannot show whole is told the outcome is
//! unknown rather than applied a second time.

mod common;
use common::TempDir;
use hypha_engine::limits::REQUEST_SCAN_RECORDS_MAX;
use hypha_engine::{Db, Error, Fsync, Once, Options, Request};

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: 1 << 16,
        auto_compact: false,
        ..Options::default()
    }
}

fn first(id: u8) -> Request {
    Request {
        id: [id; 16],
        retry_after: None,
    }
}

fn retry(id: u8, after: u64) -> Request {
    Request {
        id: [id; 16],
        retry_after: Some(after),
    }
}

#[test]
fn a_retry_finds_the_first_attempt_and_writes_nothing() -> Result<(), Error> {
    let dir = TempDir::new("once-basic");
    let db = Db::open(dir.path(), opts())?;
    db.put(b"before", b"x")?;
    let committed = db.seq();
    let Once::Wrote(Some(seq)) = db.put_once(b"k", b"v1", &first(1))? else {
        panic!("the first attempt must write");
    };
    // Other writes land between the attempt and its retry.
    db.put(b"other", b"y")?;
    let r = db.read_from(seq - 1).next().expect("the record")?;
    assert_eq!(
        r.meta.request_id, [1; 16],
        "the record carries its request id"
    );
    let tail = db.seq();
    assert_eq!(
        db.put_once(b"k", b"v1", &retry(1, committed))?,
        Once::Repeated(seq)
    );
    assert_eq!(db.seq(), tail, "a repeat writes nothing");
    // Another request is not a repeat.
    assert_eq!(
        db.put_once(b"k", b"v2", &retry(2, committed))?,
        Once::Wrote(Some(tail + 1))
    );
    // A retry whose window starts after the first attempt cannot see it:
    // the writer promises the window starts before, so this is a new write.
    assert_eq!(
        db.try_put_once(b"k", b"v1", &retry(1, seq))?,
        Some(Once::Wrote(Some(tail + 2)))
    );
    Ok(())
}

#[test]
fn deletes_are_recognized_and_the_ids_survive_a_reopen() -> Result<(), Error> {
    let dir = TempDir::new("once-delete");
    let (seq, committed) = {
        let db = Db::open(dir.path(), opts())?;
        db.put(b"k", b"v")?;
        let committed = db.seq();
        let Once::Wrote(Some(seq)) = db.delete_once(b"k", &first(3))? else {
            panic!("the delete of a present key must write");
        };
        db.put(b"k", b"again")?;
        db.close()?;
        (seq, committed)
    };
    let db = Db::open(dir.path(), opts())?;
    let tail = db.seq();
    assert_eq!(
        db.delete_once(b"k", &retry(3, committed))?,
        Once::Repeated(seq)
    );
    assert_eq!(
        db.get(b"k")?,
        Some(b"again".to_vec()),
        "the repeat deleted nothing"
    );
    assert_eq!(db.seq(), tail);
    // A delete of an absent key writes nothing, repeated or not.
    assert_eq!(
        db.try_delete_once(b"none", &retry(4, committed))?,
        Some(Once::Wrote(None))
    );
    Ok(())
}

#[test]
fn a_window_the_log_cannot_show_whole_is_unknown() -> Result<(), Error> {
    let dir = TempDir::new("once-unknown");
    let db = Db::open(dir.path(), opts())?;
    db.put(b"start", b"x")?;
    let committed = db.seq();
    db.put_once(b"k", &[7; 500], &first(5))?;
    for round in 0..300u32 {
        db.put(b"k", &round.to_le_bytes().repeat(100))?;
    }
    db.compact()?;
    let tail = db.seq();
    match db.put_once(b"k", b"v", &retry(5, committed))? {
        Once::Unknown(why) => assert!(why.contains("not in this log"), "{why}"),
        other => panic!("compaction dropped the first attempt: {other:?}"),
    }
    assert_eq!(db.seq(), tail, "an unknown outcome writes nothing");
    // A window longer than a retry may search is unknown at once.
    for i in 0..=REQUEST_SCAN_RECORDS_MAX {
        db.put_unsynced(b"fill", &i.to_le_bytes())?;
    }
    match db.put_once(b"k", b"v", &retry(6, tail))? {
        Once::Unknown(why) => assert!(why.contains("more than"), "{why}"),
        other => panic!("{other:?}"),
    }
    Ok(())
}
