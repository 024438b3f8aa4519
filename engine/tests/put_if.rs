//! Conditional writes (compare-and-swap): a put or delete happens only if
//! its key is as it expects (its live version's seq, absent, present),
//! decided under the write lock with the append, so concurrent writers
//! that each read-modify-write one counter lose no update; a retry of a
//! conditional write that was applied is answered with its first seq.

mod common;
use common::TempDir;
use hypha_engine::{Db, Error, Expect, Fsync, Once, Options, Request};
use std::sync::Arc;

fn opts() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: 1 << 16,
        auto_compact: false,
        ..Options::default()
    }
}

fn put_if(db: &Db, key: &[u8], value: &[u8], expect: Expect) -> Result<Once, Error> {
    Ok(db
        .put_if(key, value, expect, None, true)?
        .expect("a waiting write ends"))
}

#[test]
fn a_write_happens_only_when_the_key_is_as_expected() -> Result<(), Error> {
    let dir = TempDir::new("put-if");
    let db = Db::open(dir.path(), opts())?;
    // Create-only: once.
    let Once::Wrote(Some(first)) = put_if(&db, b"k", b"1", Expect::Absent)? else {
        panic!("an absent key is created");
    };
    assert_eq!(
        put_if(&db, b"k", b"x", Expect::Absent)?,
        Once::Conflict(Some(first))
    );
    assert_eq!(db.get(b"k")?.as_deref(), Some(&b"1"[..]));
    // Swap at the seq read; a stale seq conflicts and names the current.
    let Once::Wrote(Some(second)) = put_if(&db, b"k", b"2", Expect::Seq(first))? else {
        panic!("the seq read is the live one");
    };
    assert_eq!(
        put_if(&db, b"k", b"3", Expect::Seq(first))?,
        Once::Conflict(Some(second))
    );
    assert_eq!(
        put_if(&db, b"new", b"v", Expect::Present)?,
        Once::Conflict(None)
    );
    assert_eq!(
        put_if(&db, b"new", b"v", Expect::Seq(first))?,
        Once::Conflict(None)
    );
    // Delete at a seq; a deleted key counts as absent.
    let stale = db.delete_if(b"k", Expect::Seq(first), None, true)?;
    assert_eq!(stale, Some(Once::Conflict(Some(second))));
    let gone = db.delete_if(b"k", Expect::Seq(second), None, true)?;
    assert!(matches!(gone, Some(Once::Wrote(Some(_)))), "{gone:?}");
    assert_eq!(db.get(b"k")?, None);
    assert!(matches!(
        put_if(&db, b"k", b"4", Expect::Absent)?,
        Once::Wrote(Some(_))
    ));
    // Nothing was written by a conflict: the seqs are the writes above.
    assert_eq!(db.seq(), 4);
    Ok(())
}

#[test]
fn a_retry_of_an_applied_conditional_write_gets_its_first_seq() -> Result<(), Error> {
    let dir = TempDir::new("put-if-retry");
    let db = Db::open(dir.path(), opts())?;
    let committed = db.seq();
    let first = Request {
        id: [7; 16],
        retry_after: None,
    };
    let Some(Once::Wrote(Some(seq))) = db.put_if(b"c", b"1", Expect::Absent, Some(&first), true)?
    else {
        panic!("created");
    };
    // The answer was lost; the retry's condition no longer holds, but it
    // is the same request.
    let retry = Request {
        id: [7; 16],
        retry_after: Some(committed),
    };
    let again = db.put_if(b"c", b"1", Expect::Absent, Some(&retry), true)?;
    assert_eq!(again, Some(Once::Repeated(seq)));
    assert_eq!(db.seq(), seq);
    Ok(())
}

#[test]
fn concurrent_increments_by_compare_and_swap_lose_no_update() -> Result<(), Error> {
    let dir = TempDir::new("put-if-counter");
    let db = Arc::new(Db::open(dir.path(), opts())?);
    db.put(b"n", b"0")?;
    let (threads, each) = (8, 200);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || -> Result<u32, Error> {
                let mut conflicts = 0;
                for _ in 0..each {
                    loop {
                        let (seq, v) = db.get_versioned(b"n")?.expect("the counter exists");
                        let n: u64 = String::from_utf8_lossy(&v).parse().expect("a number");
                        let next = (n + 1).to_string();
                        match put_if(&db, b"n", next.as_bytes(), Expect::Seq(seq))? {
                            Once::Wrote(_) => break,
                            Once::Conflict(_) => conflicts += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                }
                Ok(conflicts)
            })
        })
        .collect();
    let mut conflicts = 0;
    for w in workers {
        conflicts += w.join().expect("no panic")?;
    }
    let n = db.get(b"n")?.expect("the counter");
    assert_eq!(n, (threads * each).to_string().into_bytes());
    println!(
        "{} increments, {conflicts} conflicts retried",
        threads * each
    );
    Ok(())
}
