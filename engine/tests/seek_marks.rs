//! Reading the log from a seq deep inside a data file starts near it (at a
//! seek mark an earlier reader noted), not at the file's beginning, and
//! returns exactly the records after that seq — across files, while writes
//! go on, and after a compaction replaced the files.

mod common;
use common::{Rng, TempDir};
use hypha_engine::limits::{RECORD_HEADER_BYTES, SEEK_MARK_STRIDE_BYTES};
use hypha_engine::{Db, Error, Fsync, Options};

const VALUE_BYTES: usize = 60;

fn options(file_size: u32) -> Options {
    Options {
        fsync: Fsync::Never,
        file_size,
        ..Options::default()
    }
}

fn seqs_after(db: &Db, after: u64, n: usize) -> Result<Vec<u64>, Error> {
    db.read_from(after)
        .take(n)
        .map(|r| r.map(|r| r.seq))
        .collect()
}

/// Most records a seek may pass over once marks exist: one stride of the
/// smallest records this test writes.
fn stride_records() -> u64 {
    let smallest = RECORD_HEADER_BYTES + 2 + VALUE_BYTES;
    u64::from(SEEK_MARK_STRIDE_BYTES) / smallest as u64 + 1
}

#[test]
fn a_seek_into_a_large_file_skips_at_most_one_stride_once_marks_exist() -> Result<(), Error> {
    let dir = TempDir::new("seek-one-file");
    let db = Db::open(dir.path(), options(64 << 20))?;
    let n = 200_000u64;
    for i in 0..n {
        db.put(format!("k{}", i % 5000).as_bytes(), &[7; VALUE_BYTES])?;
    }
    assert_eq!(db.stats().files, 1, "every record is in one file");

    // No marks yet: a seek near the end reads the file from its start.
    let before = db.stats().seek_skipped;
    assert_eq!(seqs_after(&db, n - 10, 3)?, vec![n - 9, n - 8, n - 7]);
    let first = db.stats().seek_skipped - before;
    assert!(first >= n - 10 - stride_records(), "skipped only {first}");

    // That pass noted marks along the way: every later seek is short.
    let mut rng = Rng::from_env("seek_marks");
    for _ in 0..200 {
        let after = rng.below(n - 1);
        let before = db.stats().seek_skipped;
        assert_eq!(seqs_after(&db, after, 2)?, vec![after + 1, after + 2]);
        let skipped = db.stats().seek_skipped - before;
        assert!(
            skipped <= stride_records(),
            "seek after {after} skipped {skipped} records"
        );
    }
    db.close()
}

#[test]
fn seeks_return_exactly_the_later_records_across_files_writes_and_compaction() -> Result<(), Error>
{
    let dir = TempDir::new("seek-files");
    let db = Db::open(dir.path(), options(1 << 20))?;
    let mut rng = Rng::from_env("seek_marks_files");
    let mut write = |db: &Db, n: usize| -> Result<(), Error> {
        for _ in 0..n {
            let key = format!("k{}", rng.below(2000));
            if rng.below(6) == 0 {
                db.delete(key.as_bytes())?;
            } else {
                db.put(key.as_bytes(), &[1; VALUE_BYTES])?;
            }
        }
        Ok(())
    };
    write(&db, 40_000)?;
    let check = |db: &Db, seed: u64| -> Result<(), Error> {
        let horizon = db.stats().tombstone_horizon;
        let all = seqs_after(db, horizon, usize::MAX)?;
        let mut rng = Rng::new(seed);
        for _ in 0..300 {
            let after = horizon + rng.below(db.seq() - horizon);
            let want: Vec<u64> = all.iter().copied().filter(|&s| s > after).take(5).collect();
            assert_eq!(seqs_after(db, after, 5)?, want, "after {after}");
        }
        Ok(())
    };
    check(&db, 1)?;
    write(&db, 20_000)?;
    check(&db, 2)?;
    // An iterator at the end before the compaction finds its place in the
    // files the compaction wrote, and then the records after them.
    let tail_from = db.seq();
    let mut tail = db.read_from(tail_from);
    db.compact()?;
    assert!(db.stats().files > 1, "the test spans several files");
    check(&db, 3)?;
    write(&db, 5_000)?;
    check(&db, 4)?;
    let tail: Vec<u64> = tail
        .by_ref()
        .map(|r| r.map(|r| r.seq))
        .collect::<Result<_, _>>()?;
    assert_eq!(tail, (tail_from + 1..=db.seq()).collect::<Vec<_>>());
    db.close()
}
