//! Every file operation the engine performs can fail — creating, opening,
//! sizing, renaming and removing files, fsyncing the directory, creating
//! `torn/` — and each failure, at each place the operation is used (data-file
//! rollover, checkpoint, compaction, key-index growth, recovery), loses no
//! acknowledged write: the database stops or reports the error, and after a
//! crash it reopens with everything it acknowledged.

mod common;
use common::TempDir;
use hypha_engine::io::{FaultyIo, Op};
use hypha_engine::{Db, Error, Fsync, Options};
use std::collections::BTreeMap;
use std::sync::Arc;

const EIO: i32 = 5;
/// Small data files, so a few hundred puts roll over.
const FILE_SIZE: u32 = 1 << 16;
const VALUE_BYTES: usize = 300;
/// More new keys than 70 % of the key index's first 4096 slots: it grows.
const KEYS_PAST_FIRST_GROWTH: usize = 3000;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn options(io: &Arc<FaultyIo>) -> Options {
    Options {
        io: io.clone(),
        file_size: FILE_SIZE,
        fsync: Fsync::Always,
        auto_compact: false,
        ..Options::default()
    }
}

fn value(i: usize, round: usize) -> Vec<u8> {
    vec![(i + round) as u8; VALUE_BYTES]
}

/// Durable puts of keys `k{i}` for `i` in `keys` (version `round`) until
/// one fails; every acknowledged one goes into `acked`. The first error.
fn put_all(
    db: &Db,
    keys: std::ops::Range<usize>,
    round: usize,
    acked: &mut Model,
) -> Option<Error> {
    for i in keys {
        let (k, v) = (format!("k{i}").into_bytes(), value(i, round));
        match db.put(&k, &v) {
            Ok(_) => {
                acked.insert(k, v);
            }
            Err(e) => return Some(e),
        }
    }
    None
}

/// Reopens `dir` with the real file layer and checks every acknowledged
/// write; then closes and opens it once more (the recovered state is
/// itself durable).
fn reopen_and_check(dir: &TempDir, acked: &Model, case: &str) -> Result<(), Error> {
    for _ in 0..2 {
        let opts = Options {
            file_size: FILE_SIZE,
            auto_compact: false,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts)?;
        for (k, v) in acked {
            let got = db.get(k)?;
            assert!(
                got.as_ref() == Some(v),
                "{case}: acknowledged {} lost or wrong after reopening",
                String::from_utf8_lossy(k)
            );
        }
        db.put(b"writable-again", b"yes")?;
        db.close()?;
    }
    Ok(())
}

/// Asserts that the failure `e` came from the operation armed (its message
/// names what was being done).
fn assert_failed_at(e: &Error, fragment: &str, case: &str) {
    let text = e.to_string();
    assert!(
        text.contains(fragment) && text.contains("os error 5"),
        "{case}: expected a failure at '{fragment}', got: {text}"
    );
}

#[test]
fn each_operation_of_a_rollover_can_fail() -> Result<(), Error> {
    // A rollover trims the full file (set_len, under Fsync::Always), creates
    // the next one, writes its header and fsyncs it and the directory.
    for (op, fragment) in [
        (Op::SetLen, "truncate"),
        (Op::Create, "create"),
        (Op::SyncDir, "fsync directory"),
    ] {
        let case = format!("rollover, {op:?} fails");
        let dir = TempDir::new("fault-rollover");
        let io = Arc::new(FaultyIo::new(0, 0, EIO));
        let db = Db::open(dir.path(), options(&io))?;
        let mut acked = Model::new();
        assert!(put_all(&db, 0..10, 0, &mut acked).is_none());
        let calls = io.calls(op);
        io.arm(op, 1);
        let e = put_all(&db, 10..2000, 0, &mut acked).expect("the rollover never failed");
        assert!(io.calls(op) > calls, "{case}: failed elsewhere");
        assert_failed_at(&e, fragment, &case);
        let again = db.put(b"after", b"x").unwrap_err();
        assert!(matches!(again, Error::ReadOnly { .. }), "{case}: {again}");
        db.crash();
        reopen_and_check(&dir, &acked, &case)?;
    }
    Ok(())
}

#[test]
fn each_operation_of_a_checkpoint_can_fail() -> Result<(), Error> {
    // A checkpoint replaces `meta`: create meta.tmp, write, fsync, rename,
    // fsync the directory. Closing takes one.
    for (op, fragment) in [
        (Op::Create, "meta.tmp"),
        (Op::Rename, "meta.tmp"),
        (Op::SyncDir, "fsync directory"),
    ] {
        let case = format!("checkpoint, {op:?} fails");
        let dir = TempDir::new("fault-ckpt");
        let io = Arc::new(FaultyIo::new(0, 0, EIO));
        let db = Db::open(dir.path(), options(&io))?;
        let mut acked = Model::new();
        assert!(put_all(&db, 0..500, 0, &mut acked).is_none());
        io.arm(op, 1);
        let e = db.close().expect_err("the checkpoint did not fail");
        assert_failed_at(&e, fragment, &case);
        reopen_and_check(&dir, &acked, &case)?;
    }
    Ok(())
}

#[test]
fn each_operation_of_a_key_index_growth_can_fail() -> Result<(), Error> {
    // Growing the key index creates keys.idx.new, sizes it, writes its
    // header, fsyncs it, renames it over keys.idx and fsyncs the directory.
    for (op, fragment) in [
        (Op::Create, "keys.idx.new"),
        (Op::SetLen, "keys.idx.new"),
        (Op::Rename, "keys.idx"),
    ] {
        let case = format!("key index growth, {op:?} fails");
        let dir = TempDir::new("fault-index");
        let io = Arc::new(FaultyIo::new(0, 0, EIO));
        // Large files: no rollover (which also creates and sizes files).
        let opts = Options {
            file_size: 64 << 20,
            ..options(&io)
        };
        let db = Db::open(dir.path(), opts)?;
        let mut acked = Model::new();
        // The first write creates the term table (`terms`): done before
        // the fault is armed, so the growth is the next file created.
        assert!(put_all(&db, 0..1, 0, &mut acked).is_none());
        io.arm(op, 1);
        let e = put_all(&db, 1..KEYS_PAST_FIRST_GROWTH, 0, &mut acked)
            .expect("the key index never grew");
        assert_failed_at(&e, fragment, &case);
        assert!(
            acked.len() > KEYS_PAST_FIRST_GROWTH / 2,
            "{case}: grew early"
        );
        db.crash();
        reopen_and_check(&dir, &acked, &case)?;
    }
    Ok(())
}

/// A database of several full data files with overwritten versions, closed.
fn compactable(dir: &TempDir) -> Result<Model, Error> {
    let io = Arc::new(FaultyIo::new(0, 0, EIO));
    let db = Db::open(dir.path(), options(&io))?;
    let mut acked = Model::new();
    for round in 0..4 {
        assert!(put_all(&db, 0..200, round, &mut acked).is_none());
    }
    assert!(db.stats().files >= 4, "too few data files to compact");
    db.close()?;
    Ok(acked)
}

#[test]
fn each_file_operation_of_a_compaction_can_fail() -> Result<(), Error> {
    // Before the commit point: outputs are created (`N.db.compact`), the
    // marker is written via COMPACT.tmp and renamed. After it: the outputs
    // are renamed to `N.db`, the old files and then the marker removed.
    for (op, nth, fragment) in [
        (Op::Create, 2, ".db.compact"),
        (Op::Rename, 1, "COMPACT.tmp"),
        (Op::Rename, 2, ".db.compact"),
        (Op::SyncDir, 1, "fsync directory"),
        (Op::Remove, 1, ".db"),
        (Op::Remove, 2, ".db"),
    ] {
        let case = format!("compaction, {op:?} #{nth} fails");
        let dir = TempDir::new("fault-compact");
        let mut acked = compactable(&dir)?;
        let io = Arc::new(FaultyIo::new(0, 0, EIO));
        let db = Db::open(dir.path(), options(&io))?;
        let before = db.digest();
        io.arm(op, nth);
        let e = db.compact().expect_err("the compaction did not fail");
        assert_failed_at(&e, fragment, &case);
        assert_eq!(db.digest(), before, "{case}: contents changed");
        // Writes after a failure before the commit point are still taken;
        // after it the database is read-only until reopened.
        io.disarm(op);
        let _ = put_all(&db, 1000..1010, 0, &mut acked);
        db.crash();
        reopen_and_check(&dir, &acked, &case)?;
        let db = Db::open(dir.path(), options(&Arc::new(FaultyIo::new(0, 0, EIO))))?;
        db.compact()?;
        assert_eq!(db.stats().compactions, 1, "{case}: cannot compact after");
    }
    Ok(())
}

#[test]
fn failures_while_opening_leave_the_database_to_open_next_time() -> Result<(), Error> {
    // Opening reads meta and opens every file (open), and cutting a torn
    // tail keeps its bytes in torn/ (create_dir, create) and truncates
    // (set_len) the file.
    let dir = TempDir::new("fault-open");
    let io = Arc::new(FaultyIo::new(0, 0, EIO));
    let db = Db::open(dir.path(), options(&io))?;
    let mut acked = Model::new();
    assert!(put_all(&db, 0..300, 0, &mut acked).is_none());
    db.crash();
    // A torn tail: garbage after the last record of the newest file.
    // No compaction ran: the highest number is the newest file.
    let newest = (0..u16::MAX)
        .map(|n| dir.path().join(format!("{n}.db")))
        .take_while(|p| p.exists())
        .last()
        .expect("a data file");
    let len = std::fs::metadata(&newest).expect("stat").len();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&newest)
            .expect("open");
        // Past the zeros written ahead, so the cut keeps bytes aside.
        f.write_all_at(&[0xAB; 100], len).expect("garbage");
    }
    for (op, fragment) in [
        (Op::Open, "open"),
        (Op::CreateDir, "torn"), // the 2nd: the 1st is the database directory
        (Op::SetLen, "truncate"),
    ] {
        let case = format!("open, {op:?} fails");
        let nth = if op == Op::CreateDir { 2 } else { 1 };
        let io = Arc::new(FaultyIo::failing(op, nth, EIO));
        let e = match Db::open(dir.path(), options(&io)) {
            Ok(_) => panic!("{case}: opened"),
            Err(e) => e,
        };
        assert_failed_at(&e, fragment, &case);
    }
    reopen_and_check(&dir, &acked, "open after failed opens")?;
    Ok(())
}
