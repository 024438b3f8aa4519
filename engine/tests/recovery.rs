//! Recovery: bounded by what was written since the checkpoint, torn tails
//! cut and kept aside, corrupt records reported with file and offset and
//! never returned.

mod common;
use common::TempDir;
use hypha_engine::{Db, Error, Fsync, Options, CHECKPOINT_IDLE_MS, CHECKPOINT_IDS_MAX};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

fn never() -> Options {
    Options {
        fsync: Fsync::Never,
        ..Options::default()
    }
}

#[test]
fn replay_after_a_crash_is_bounded_by_the_checkpoint() -> Result<(), Error> {
    let dir = TempDir::new("rec-bounded");
    let db = Db::open(dir.path(), never())?;
    let n = 3 * CHECKPOINT_IDS_MAX as u32 + 100;
    for i in 0..n {
        db.put(&i.to_be_bytes(), b"value")?;
    }
    db.sync()?;
    db.crash();
    let db = Db::open(dir.path(), never())?;
    let replayed = db.recovery().replayed;
    assert!(
        replayed <= CHECKPOINT_IDS_MAX as u64,
        "replayed {replayed} of {n}"
    );
    assert_eq!(db.len(), n as u64);
    assert_eq!(
        db.get(&(n - 1).to_be_bytes())?.as_deref(),
        Some(&b"value"[..])
    );
    db.close()?;
    assert_eq!(
        Db::open(dir.path(), never())?.recovery().replayed,
        0,
        "a clean close replays nothing"
    );
    Ok(())
}

/// Offset of the record holding `needle` in a data file.
fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("value in file")
}

#[test]
fn a_corrupt_record_is_reported_with_file_and_offset_and_never_returned() -> Result<(), Error> {
    let dir = TempDir::new("rec-corrupt");
    let db = Db::open(dir.path(), never())?;
    db.put(b"a", b"first-value")?;
    db.put(b"b", b"second-value")?;
    db.put(b"c", b"third-value")?;
    db.close()?;
    let path = dir.path().join("0.db");
    let at = find(&std::fs::read(&path).expect("read"), b"second-value");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.write_at(b"X", at as u64))
        .expect("flip");
    let db = Db::open(dir.path(), never())?;
    let err = db.get(b"b").unwrap_err();
    match &err {
        Error::Corrupted { file, offset, .. } => {
            assert_eq!(file, &path);
            assert!(*offset < at as u64 && *offset > 0);
        }
        other => panic!("expected Corrupted, got {other}"),
    }
    assert!(err.to_string().contains("0.db"), "{err}");
    assert_eq!(db.get(b"a")?.as_deref(), Some(&b"first-value"[..]));
    assert_eq!(db.get(b"c")?.as_deref(), Some(&b"third-value"[..]));
    Ok(())
}

#[test]
fn a_corrupt_record_after_the_checkpoint_cuts_the_log_there_and_keeps_the_bytes(
) -> Result<(), Error> {
    let dir = TempDir::new("rec-torn");
    let db = Db::open(dir.path(), never())?;
    db.put(b"a", b"first-value")?;
    db.put(b"b", b"second-value")?;
    db.put(b"c", b"third-value")?;
    db.sync()?;
    db.crash();
    let path = dir.path().join("0.db");
    let at = find(&std::fs::read(&path).expect("read"), b"second-value");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.write_at(b"X", at as u64))
        .expect("flip");
    let db = Db::open(dir.path(), never())?;
    assert!(db.recovery().truncated_bytes > 0);
    assert_eq!(db.get(b"a")?.as_deref(), Some(&b"first-value"[..]));
    assert_eq!(db.get(b"b")?, None, "the corrupt value is not served");
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("torn"))
        .expect("torn dir")
        .collect();
    assert_eq!(kept.len(), 1, "the cut bytes are kept");
    db.put(b"d", b"writes continue")?;
    Ok(())
}

#[test]
fn every_cut_inside_the_last_two_records_recovers_a_prefix() -> Result<(), Error> {
    let dir = TempDir::new("rec-cuts");
    let db = Db::open(dir.path(), never())?;
    for i in 0..10u8 {
        db.put(&[i], &[i; 40])?;
    }
    db.sync()?;
    db.crash();
    let path = dir.path().join("0.db");
    let full = std::fs::read(&path).expect("read");
    let record = 40 + 1 + 40;
    for cut in full.len() - 2 * record..full.len() {
        let copy = TempDir::new("rec-cut-copy");
        for entry in std::fs::read_dir(dir.path()).expect("ls") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
            }
        }
        std::fs::write(copy.path().join("0.db"), &full[..cut]).expect("cut");
        let db = Db::open(copy.path(), never())?;
        let expect = if cut < full.len() - record { 8 } else { 9 };
        assert_eq!(db.len(), expect, "cut at {cut}");
        for i in 0..expect as u8 {
            assert_eq!(db.get(&[i])?, Some(vec![i; 40]), "cut at {cut}");
        }
    }
    Ok(())
}

#[test]
fn a_lookup_entry_pointing_at_another_ids_record_is_an_error_not_its_value() -> Result<(), Error> {
    let dir = TempDir::new("rec-lookup-swap");
    let db = Db::open(dir.path(), never())?;
    let a = db.ids().set(None, b"value of a")?;
    let b = db.ids().set(None, b"value of b")?;
    db.close()?;
    // keysize 6: the entry of id i sits at 32 + 6 * i; give a the entry of b.
    let path = dir.path().join("lookup.tbl");
    let mut table = std::fs::read(&path).expect("read");
    let (ea, eb) = (32 + 6 * a as usize, 32 + 6 * b as usize);
    let entry_b = table[eb..eb + 6].to_vec();
    table[ea..ea + 6].copy_from_slice(&entry_b);
    std::fs::write(&path, &table).expect("write");
    let db = Db::open(dir.path(), never())?;
    assert!(
        matches!(db.ids().get(a), Err(Error::Corrupted { .. })),
        "must not return b's value for a"
    );
    assert_eq!(db.ids().get(b)?.as_deref(), Some(&b"value of b"[..]));
    Ok(())
}

#[test]
fn a_record_whose_chain_points_at_another_id_fails_open_without_panicking() -> Result<(), Error> {
    use hypha_engine::record::{encode, RecordRef};
    use hypha_engine::{Location, RecordKind};
    let dir = TempDir::new("rec-foreign-prev");
    let db = Db::open(dir.path(), never())?;
    db.put(b"a", b"1")?; // id 1, seq 1, at offset 32
    db.sync()?;
    db.crash();
    // A well-formed record (valid CRC) of id 2 whose "previous version" is
    // id 1's record: no engine writes that, so recovery must refuse it.
    let mut bytes = Vec::new();
    let r = RecordRef {
        seq: 2,
        id: 2,
        kind: RecordKind::Put,
        key: b"b",
        value: b"2",
        meta: Default::default(),
    };
    encode(
        &mut bytes,
        &r,
        Location {
            file: 0,
            offset: 32,
        },
    );
    let path = dir.path().join("0.db");
    let mut file = std::fs::read(&path).expect("read");
    file.extend_from_slice(&bytes);
    std::fs::write(&path, &file).expect("write");
    match Db::open(dir.path(), never()) {
        Err(Error::Corrupted { file, .. }) => assert_eq!(file, path),
        Err(other) => panic!("expected Corrupted naming 0.db, got {other}"),
        Ok(_) => panic!("a record chained to another id was accepted"),
    }
    Ok(())
}

#[test]
fn an_idle_database_takes_a_checkpoint_so_a_crash_replays_nothing() -> Result<(), Error> {
    let dir = TempDir::new("rec-idle");
    let db = Db::open(dir.path(), never())?;
    // Two bursts: after the first idle checkpoint the checkpoint thread has
    // nothing to do and waits with no timer, so the second burst must wake it.
    for burst in 0..2u32 {
        if burst == 1 {
            // Not for correctness (the test holds either way): give the
            // thread time to reach that untimed wait.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        for i in 0..100u32 {
            db.put(
                &(burst * 100 + i).to_be_bytes(),
                format!("value {burst}").as_bytes(),
            )?;
        }
        let seq = db.seq();
        assert!(db.stats().checkpoint_seq < seq, "checkpointed already");
        // The idle checkpoint comes 1-2 × CHECKPOINT_IDLE_MS after the last
        // write; poll for it with a deadline well past that.
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_millis(10 * CHECKPOINT_IDLE_MS);
        while db.stats().checkpoint_seq < seq {
            assert!(
                std::time::Instant::now() < deadline,
                "burst {burst}: no checkpoint {} ms after the last write",
                10 * CHECKPOINT_IDLE_MS
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    db.crash();
    let db = Db::open(dir.path(), never())?;
    assert_eq!(db.recovery().replayed, 0, "the crash replayed records");
    for burst in 0..2u32 {
        for i in 0..100u32 {
            assert_eq!(
                db.get(&(burst * 100 + i).to_be_bytes())?,
                Some(format!("value {burst}").into_bytes()),
                "key {}",
                burst * 100 + i
            );
        }
    }
    Ok(())
}

/// A power cut before a rollover's fsyncs ran may take the tail of the
/// sealed file and leave the next one whole (writeback order across files
/// is arbitrary). Nothing in the next file was acknowledged, so the log ends
/// where the sealed file now ends; the next file goes to `torn/`.
#[test]
fn a_sealed_file_that_lost_its_tail_ends_the_log_there() -> Result<(), Error> {
    let dir = TempDir::new("rec-lost-sealed-tail");
    let opts = || Options {
        fsync: hypha_engine::Fsync::Never,
        file_size: hypha_engine::limits::FILE_SIZE_MIN,
        auto_compact: false,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts())?;
    let value = [7u8; 1000];
    let mut n = 0u64;
    // Four keys over and over: the next file's records point back into the
    // sealed one.
    while db.stats().files < 2 || n % 4 != 3 {
        db.put(format!("k{}", n % 4).as_bytes(), &value)?;
        n += 1;
    }
    db.crash();
    // The cut: the sealed file keeps its header and first record only.
    let sealed = dir.path().join("0.db");
    let first_record = 32 + 40 + 2 + value.len() as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sealed)
        .and_then(|f| f.set_len(first_record))
        .expect("cut");
    let db = Db::open(dir.path(), opts())?;
    assert_eq!(
        db.seq(),
        1,
        "the log ends after the sealed file's first record"
    );
    assert_eq!(db.get(b"k0")?.as_deref(), Some(&value[..]));
    assert_eq!(db.get(b"k1")?, None);
    assert!(
        dir.path().join("torn").exists(),
        "the next file is kept in torn/"
    );
    assert_eq!(db.recovery().truncated_at, Some((0, first_record as u32)));
    Ok(())
}
