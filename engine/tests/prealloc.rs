//! Zeros written ahead under `Fsync::Always`: a commit's fdatasync finds the
//! file's size unchanged (so it does not also write the inode), and the
//! zeros never become part of the log — trimmed when a file is sealed or the
//! database closed, cut without loss or complaint after a crash.

mod common;
use common::TempDir;
use hypha_engine::io::{FileIo, RealIo};
use hypha_engine::{Db, Error, Fsync, Options, PREALLOC_BYTES};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Real I/O that records the size of every data file it fdatasyncs.
#[derive(Debug, Default)]
struct SizesAtSync {
    sizes: Mutex<Vec<u64>>,
}

impl FileIo for SizesAtSync {
    fn write_at(&self, file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        RealIo.write_at(file, buf, offset)
    }
    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        if path.extension().is_some_and(|e| e == "db") {
            self.sizes
                .lock()
                .expect("lock")
                .push(file.metadata()?.len());
        }
        RealIo.sync_data(file)
    }
}

fn always() -> Options {
    Options {
        fsync: Fsync::Always,
        ..Options::default()
    }
}

fn file_len(dir: &Path, n: u16) -> u64 {
    std::fs::metadata(dir.join(format!("{n}.db")))
        .expect("data file")
        .len()
}

fn ends_with(dir: &Path, n: u16, tail: &[u8]) -> bool {
    std::fs::read(dir.join(format!("{n}.db")))
        .expect("data file")
        .ends_with(tail)
}

#[test]
fn durable_writes_fdatasync_a_file_whose_size_does_not_change() -> Result<(), Error> {
    let dir = TempDir::new("prealloc-sizes");
    let io = Arc::new(SizesAtSync::default());
    let db = Db::open(
        dir.path(),
        Options {
            io: io.clone(),
            ..always()
        },
    )?;
    io.sizes.lock().expect("lock").clear();
    const PUTS: usize = 2_000;
    for i in 0..PUTS {
        db.put(format!("key-{i:06}").as_bytes(), &[b'v'; 200])?;
    }
    let sizes = io.sizes.lock().expect("lock").clone();
    assert!(
        sizes.len() >= PUTS,
        "{} fdatasyncs for {PUTS} durable puts",
        sizes.len()
    );
    let written = PUTS as u64 * 250;
    let steps = written / PREALLOC_BYTES as u64 + 1;
    let changes = sizes.windows(2).filter(|w| w[0] != w[1]).count() as u64;
    assert!(
        changes <= steps,
        "the file size changed between {changes} of {} fdatasyncs; zeros written ahead in \
         {steps} steps should leave it unchanged in all others",
        sizes.len()
    );
    assert!(file_len(dir.path(), 0) > written, "no zeros written ahead");
    Ok(())
}

#[test]
fn a_clean_close_trims_the_zeros_and_a_crash_leaves_them_to_recovery() -> Result<(), Error> {
    let dir = TempDir::new("prealloc-close");
    let db = Db::open(dir.path(), always())?;
    db.put(b"a", b"first")?;
    db.put(b"b", b"LAST-VALUE")?;
    assert_eq!(file_len(dir.path(), 0), PREALLOC_BYTES as u64);
    db.close()?;
    assert!(ends_with(dir.path(), 0, b"LAST-VALUE"), "closed with zeros");
    let closed = file_len(dir.path(), 0);

    // Reopened, written and killed: the zeros are still there.
    let db = Db::open(dir.path(), always())?;
    db.put(b"c", b"AFTER-CRASH")?;
    db.crash();
    assert_eq!(file_len(dir.path(), 0), PREALLOC_BYTES as u64);
    let db = Db::open(dir.path(), always())?;
    let r = db.recovery().clone();
    assert_eq!(
        (r.truncated_bytes, r.truncated_at),
        (0, None),
        "zeros counted as torn"
    );
    assert!(r.zeros_cut > 0, "the zeros written ahead were not cut");
    assert!(
        !dir.path().join("torn").exists(),
        "zeros kept as torn bytes"
    );
    assert_eq!(db.get(b"a")?.as_deref(), Some(&b"first"[..]));
    assert_eq!(db.get(b"c")?.as_deref(), Some(&b"AFTER-CRASH"[..]));
    // Recovery cut them: the file ends at the last record, and the log goes
    // on right after it.
    assert!(
        ends_with(dir.path(), 0, b"AFTER-CRASH"),
        "zeros left after recovery"
    );
    assert!(file_len(dir.path(), 0) > closed);
    db.put(b"d", b"NEXT")?;
    db.close()?;
    assert!(ends_with(dir.path(), 0, b"NEXT"));
    let db = Db::open(dir.path(), Options::default())?;
    assert_eq!(db.len(), 4);
    assert_eq!(db.recovery().replayed, 0, "clean close replays nothing");
    Ok(())
}

#[test]
fn sealed_files_end_at_their_last_record() -> Result<(), Error> {
    let dir = TempDir::new("prealloc-roll");
    let db = Db::open(
        dir.path(),
        Options {
            file_size: 1 << 16,
            ..always()
        },
    )?;
    for i in 0..1_000u32 {
        db.put(&i.to_be_bytes(), &[b'v'; 200])?;
    }
    let newest = (0u16..)
        .take_while(|n| dir.path().join(format!("{n}.db")).exists())
        .last();
    let newest = newest.expect("data files");
    assert!(newest >= 2, "no rollover");
    for n in 0..newest {
        assert!(file_len(dir.path(), n) <= 1 << 16);
        assert!(
            ends_with(dir.path(), n, &[b'v'; 200]),
            "{n}.db sealed with zeros"
        );
    }
    drop(db);
    let db = Db::open(dir.path(), Options::default())?;
    for i in 0..1_000u32 {
        assert_eq!(db.get(&i.to_be_bytes())?, Some(vec![b'v'; 200]), "key {i}");
    }
    Ok(())
}
