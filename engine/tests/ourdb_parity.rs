//! The id API behaves like OurDB's: incremental ids from 1, history newest
//! first, delete, file rollover, every keysize — and, unlike OurDB, it all
//! survives a reopen.

mod common;
use common::TempDir;
use hypha_engine::{Db, Error, Fsync, Options};

fn opts(keysize: u8, file_size: u32) -> Options {
    Options {
        keysize,
        file_size,
        fsync: Fsync::Never,
        ..Options::default()
    }
}

#[test]
fn incremental_ids_start_at_one_and_survive_reopen() -> Result<(), Error> {
    let dir = TempDir::new("parity-ids");
    let db = Db::open(dir.path(), opts(6, 1 << 20))?;
    assert_eq!(db.ids().next_id()?, 1);
    assert_eq!(db.ids().set(None, b"a")?, 1);
    assert_eq!(db.ids().set(None, b"b")?, 2);
    assert_eq!(db.ids().next_id()?, 3);
    assert!(matches!(
        db.ids().set(Some(7), b"x"),
        Err(Error::IdNotAssigned { id: 7, next: 3 })
    ));
    assert_eq!(db.ids().set(Some(1), b"a2")?, 1);
    db.close()?;
    let db = Db::open(dir.path(), opts(6, 1 << 20))?;
    assert_eq!(db.ids().get(1)?.as_deref(), Some(&b"a2"[..]));
    assert_eq!(db.ids().get(2)?.as_deref(), Some(&b"b"[..]));
    assert_eq!(db.ids().next_id()?, 3);
    Ok(())
}

#[test]
fn history_is_newest_first_and_limited_by_depth() -> Result<(), Error> {
    for keysize in [2u8, 3, 4, 6] {
        let dir = TempDir::new("parity-history");
        let db = Db::open(dir.path(), opts(keysize, 1 << 16))?;
        let id = db.ids().set(None, b"v0")?;
        for i in 1..5 {
            db.ids().set(Some(id), format!("v{i}").as_bytes())?;
        }
        let h = db.ids().history(id, 3)?;
        let values: Vec<_> = h.iter().map(|v| v.value.clone().unwrap()).collect();
        assert_eq!(
            values,
            [b"v4".to_vec(), b"v3".to_vec(), b"v2".to_vec()],
            "keysize {keysize}"
        );
        assert!(h[0].seq > h[1].seq && h[1].seq > h[2].seq);
        assert_eq!(db.ids().history(id, 100)?.len(), 5);
        db.close()?;
        let db = Db::open(dir.path(), opts(keysize, 1 << 16))?;
        assert_eq!(
            db.ids().history(id, 100)?.len(),
            5,
            "history after reopen, keysize {keysize}"
        );
    }
    Ok(())
}

#[test]
fn delete_makes_the_id_absent_and_keeps_history() -> Result<(), Error> {
    let dir = TempDir::new("parity-delete");
    let db = Db::open(dir.path(), opts(6, 1 << 20))?;
    let a = db.ids().set(None, b"one")?;
    let b = db.ids().set(None, b"two")?;
    assert!(db.ids().delete(a)?.is_some());
    assert_eq!(db.ids().get(a)?, None);
    assert_eq!(db.ids().get(b)?.as_deref(), Some(&b"two"[..]));
    assert_eq!(db.ids().delete(a)?, None, "deleting twice writes nothing");
    let h = db.ids().history(a, 10)?;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].value, None);
    assert_eq!(h[1].value.as_deref(), Some(&b"one"[..]));
    Ok(())
}

#[test]
fn data_files_roll_over_with_keysize_6() -> Result<(), Error> {
    let dir = TempDir::new("parity-rollover");
    let db = Db::open(dir.path(), opts(6, 16 << 10))?;
    let value = vec![7u8; 1000];
    let ids: Vec<u32> = (0..100)
        .map(|_| db.ids().set(None, &value))
        .collect::<Result<_, _>>()?;
    assert!(db.stats().files >= 6, "{} files", db.stats().files);
    assert!(dir.path().join("5.db").exists());
    db.close()?;
    let db = Db::open(dir.path(), opts(6, 16 << 10))?;
    for id in ids {
        assert_eq!(db.ids().get(id)?.as_deref(), Some(&value[..]));
    }
    Ok(())
}

#[test]
fn small_keysizes_report_full_instead_of_rolling_over() -> Result<(), Error> {
    for (keysize, file_size) in [(2u8, 1u32 << 16), (3, 1 << 17), (4, 1 << 17)] {
        let dir = TempDir::new("parity-full");
        let db = Db::open(dir.path(), opts(keysize, file_size))?;
        let value = vec![1u8; 4000];
        let mut stored = 0;
        let err = loop {
            match db.ids().set(None, &value) {
                Ok(_) => stored += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, Error::Full { .. }),
            "keysize {keysize}: {err}"
        );
        assert!(
            err.to_string().contains("keysize 6"),
            "the error says what to do: {err}"
        );
        assert!(stored >= 15, "keysize {keysize} stored {stored}");
        assert_eq!(
            db.ids().get(1)?.as_deref(),
            Some(&value[..]),
            "data before the error stays"
        );
    }
    Ok(())
}

#[test]
fn keysize_and_file_size_that_cannot_work_are_refused() {
    let dir = TempDir::new("parity-badopts");
    for (keysize, file_size) in [(5u8, 1u32 << 20), (2, 1 << 20), (3, 1 << 25), (6, 100)] {
        let err = Db::open(dir.path(), opts(keysize, file_size))
            .err()
            .expect("must fail");
        assert!(
            matches!(err, Error::BadOptions { .. }),
            "{keysize}/{file_size}: {err}"
        );
    }
}

#[test]
fn caller_chosen_ids_and_id_range() -> Result<(), Error> {
    let dir = TempDir::new("parity-chosen");
    let o = Options {
        incremental: false,
        ids_max: 1000,
        ..opts(6, 1 << 20)
    };
    let db = Db::open(dir.path(), o.clone())?;
    assert!(matches!(
        db.ids().set(None, b"x"),
        Err(Error::NotIncremental)
    ));
    assert_eq!(db.ids().set(Some(500), b"five hundred")?, 500);
    assert!(matches!(
        db.ids().set(Some(1001), b"x"),
        Err(Error::IdOutOfRange {
            id: 1001,
            max: 1000
        })
    ));
    assert!(matches!(
        db.ids().set(Some(0), b"x"),
        Err(Error::IdOutOfRange { .. })
    ));
    db.close()?;
    let db = Db::open(dir.path(), o)?;
    assert_eq!(db.ids().get(500)?.as_deref(), Some(&b"five hundred"[..]));
    assert_eq!(db.ids().get(499)?, None);
    Ok(())
}

#[test]
fn large_records_are_not_truncated() -> Result<(), Error> {
    let dir = TempDir::new("parity-large");
    let db = Db::open(dir.path(), opts(6, 1 << 20))?;
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let id = db.ids().set(None, &big)?;
    db.close()?;
    let db = Db::open(dir.path(), opts(6, 1 << 20))?;
    assert_eq!(db.ids().get(id)?.unwrap(), big);
    Ok(())
}
