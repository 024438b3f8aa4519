//! The key API: binary-safe keys and values, limits as clear errors, scan,
//! history, len/contains, and everything surviving a reopen.

mod common;
use common::TempDir;
use hypha_engine::limits::KEY_BYTES_MAX;
use hypha_engine::{Db, Error, Fsync, Options};

fn never() -> Options {
    Options {
        fsync: Fsync::Never,
        file_size: 1 << 20,
        ..Options::default()
    }
}

#[test]
fn binary_keys_and_values_round_trip_across_reopen() -> Result<(), Error> {
    let dir = TempDir::new("key-binary");
    let long_key: Vec<u8> = (0..KEY_BYTES_MAX).map(|i| (i * 7) as u8).collect();
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"\0".to_vec(), b"\0\0\xff".to_vec()),
        ("ключ/🔑".as_bytes().to_vec(), vec![]),
        (long_key.clone(), vec![0xAB; 100_000]),
        (vec![], b"the empty key is a key".to_vec()),
    ];
    let db = Db::open(dir.path(), never())?;
    for (k, v) in &pairs {
        db.put(k, v)?;
    }
    for (k, v) in &pairs {
        assert_eq!(db.get(k)?.as_ref(), Some(v));
    }
    assert_eq!(db.len(), 4);
    db.close()?;
    let db = Db::open(dir.path(), never())?;
    for (k, v) in &pairs {
        assert_eq!(db.get(k)?.as_ref(), Some(v), "after reopen");
        assert!(db.contains(k)?);
    }
    assert!(!db.contains(b"absent")?);
    assert_eq!(db.get(b"absent")?, None);
    Ok(())
}

#[test]
fn oversized_keys_and_values_are_clear_errors_and_write_nothing() -> Result<(), Error> {
    let dir = TempDir::new("key-limits");
    let db = Db::open(
        dir.path(),
        Options {
            value_bytes_max: 1000,
            ..never()
        },
    )?;
    let err = db.put(&vec![1u8; KEY_BYTES_MAX + 1], b"v").unwrap_err();
    assert!(matches!(err, Error::KeyTooLong { len } if len == KEY_BYTES_MAX + 1));
    assert!(err.to_string().contains("the limit is 4096 bytes"), "{err}");
    let err = db.put(b"k", &[0u8; 1001]).unwrap_err();
    assert!(matches!(
        err,
        Error::ValueTooLong {
            len: 1001,
            max: 1000
        }
    ));
    assert!(err.to_string().contains("value_bytes_max"), "{err}");
    assert_eq!(db.seq(), 0);
    assert_eq!(db.get(b"k")?, None);
    db.put(b"k", &[0u8; 1000])?;
    assert_eq!(db.get(b"k")?.map(|v| v.len()), Some(1000));
    Ok(())
}

#[test]
fn overwrite_delete_and_history() -> Result<(), Error> {
    let dir = TempDir::new("key-history");
    let db = Db::open(dir.path(), never())?;
    let s1 = db.put(b"k", b"1")?;
    let s2 = db.put(b"k", b"2")?;
    assert!(s2 > s1);
    assert_eq!(db.len(), 1);
    let d = db.delete(b"k")?.expect("was present");
    assert!(d > s2);
    assert_eq!(db.delete(b"k")?, None);
    assert_eq!(db.delete(b"never")?, None);
    assert_eq!(db.get(b"k")?, None);
    assert_eq!(db.len(), 0);
    let s3 = db.put(b"k", b"3")?;
    let h = db.history(b"k", 10)?;
    let seqs: Vec<_> = h.iter().map(|v| v.seq).collect();
    assert_eq!(seqs, [s3, d, s2, s1]);
    assert_eq!(h[1].value, None);
    assert_eq!(h[0].value.as_deref(), Some(&b"3"[..]));
    assert_eq!(db.history(b"k", 2)?.len(), 2);
    assert!(db.history(b"never", 5)?.is_empty());
    assert_eq!(db.get_versioned(b"k")?, Some((s3, b"3".to_vec())));
    Ok(())
}

#[test]
fn scan_pages_through_every_live_key_with_a_stable_cursor() -> Result<(), Error> {
    let dir = TempDir::new("key-scan");
    let db = Db::open(dir.path(), never())?;
    for i in 0..1000 {
        db.put(format!("user/{i:04}").as_bytes(), b"x")?;
        db.put(format!("item/{i:04}").as_bytes(), b"y")?;
    }
    for i in (0..1000).step_by(3) {
        db.delete(format!("user/{i:04}").as_bytes())?;
    }
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = db.scan(cursor, b"user/", 64)?;
        assert!(page.keys.len() <= 64);
        seen.extend(page.keys);
        match page.next_cursor {
            Some(c) => cursor = c,
            None => break,
        }
    }
    let mut expected: Vec<Vec<u8>> = (0..1000)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("user/{i:04}").into_bytes())
        .collect();
    assert_eq!(seen.len(), expected.len());
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected);
    let all = db.scan(0, b"", 10_000)?;
    assert_eq!(all.keys.len() as u64, db.len());
    Ok(())
}

#[test]
fn a_second_process_cannot_open_a_database_in_use() -> Result<(), Error> {
    let dir = TempDir::new("key-lock");
    let _db = Db::open(dir.path(), never())?;
    let err = Db::open(dir.path(), never())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    Ok(())
}

#[test]
fn reopening_with_other_fixed_options_is_refused() -> Result<(), Error> {
    let dir = TempDir::new("key-fixed");
    Db::open(dir.path(), never())?.close()?;
    let err = Db::open(
        dir.path(),
        Options {
            keysize: 4,
            ..never()
        },
    )
    .err()
    .expect("must fail");
    assert!(err.to_string().contains("keysize 6"), "{err}");
    Ok(())
}

#[test]
fn many_keys_grow_the_index_and_stay_reachable() -> Result<(), Error> {
    let dir = TempDir::new("key-many");
    let db = Db::open(dir.path(), never())?;
    for i in 0..50_000u32 {
        db.put(&i.to_be_bytes(), &i.to_le_bytes())?;
    }
    db.close()?;
    let db = Db::open(dir.path(), never())?;
    assert_eq!(db.len(), 50_000);
    for i in (0..50_000u32).step_by(7) {
        assert_eq!(db.get(&i.to_be_bytes())?, Some(i.to_le_bytes().to_vec()));
    }
    assert_eq!(db.get(&50_000u32.to_be_bytes())?, None);
    Ok(())
}
