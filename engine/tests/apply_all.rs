//! `Db::apply_all`: a follower's frame of records is applied in order with
//! one durability wait, so under `Fsync::Always` one fdatasync covers it
//! (per-record `apply` pays one each); records already held are skipped.

mod common;
use common::TempDir;
use hypha_engine::io::{FileIo, RealIo};
use hypha_engine::{Db, Error, Fsync, Options, Record};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Real I/O that counts fdatasyncs.
#[derive(Debug, Default)]
struct CountSyncs(AtomicUsize);

impl FileIo for CountSyncs {
    fn write_at(&self, file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        RealIo.write_at(file, buf, offset)
    }
    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        RealIo.sync_data(file)
    }
}

fn source(dir: &TempDir, n: usize) -> Result<Vec<Record>, Error> {
    let src = Db::open(dir.path(), Options::default())?;
    for i in 0..n {
        src.put(
            format!("key-{i:04}").as_bytes(),
            format!("value {i}").as_bytes(),
        )?;
    }
    src.delete(b"key-0003")?;
    src.read_from(0).collect()
}

fn follower(dir: &TempDir, io: Arc<CountSyncs>) -> Result<Db, Error> {
    let opts = Options {
        fsync: Fsync::Always,
        io,
        ..Options::default()
    };
    Db::open(dir.path(), opts)
}

#[test]
fn a_batch_is_applied_in_order_with_one_fdatasync() -> Result<(), Error> {
    let (src_dir, dst_dir) = (TempDir::new("apply-all-src"), TempDir::new("apply-all-dst"));
    let records = source(&src_dir, 64)?;
    let io = Arc::new(CountSyncs::default());
    let db = follower(&dst_dir, io.clone())?;
    let before = io.0.load(Ordering::SeqCst);
    let seq = db.apply_all(&records)?;
    let syncs = io.0.load(Ordering::SeqCst) - before;
    assert_eq!(seq, records.last().map(|r| r.seq).unwrap_or(0));
    assert_eq!(
        syncs,
        1,
        "{syncs} fdatasyncs for one batch of {}",
        records.len()
    );
    assert_eq!(db.get(b"key-0007")?.as_deref(), Some(&b"value 7"[..]));
    assert_eq!(db.get(b"key-0003")?, None);
    // Again, and half again: nothing new, nothing to wait for.
    let before = io.0.load(Ordering::SeqCst);
    assert_eq!(db.apply_all(&records)?, seq);
    assert_eq!(db.apply_all(&records[..32])?, seq);
    assert_eq!(
        io.0.load(Ordering::SeqCst),
        before,
        "old records were synced again"
    );
    drop(db);
    // Durable: a reopen finds everything.
    let db = follower(&dst_dir, Arc::new(CountSyncs::default()))?;
    assert_eq!(db.seq(), seq);
    assert_eq!(db.get(b"key-0063")?.as_deref(), Some(&b"value 63"[..]));
    Ok(())
}

#[test]
fn per_record_apply_pays_an_fdatasync_each() -> Result<(), Error> {
    // The baseline the batch is measured against: if this stops holding,
    // the test above proves nothing.
    let (src_dir, dst_dir) = (TempDir::new("apply-one-src"), TempDir::new("apply-one-dst"));
    let records = source(&src_dir, 16)?;
    let io = Arc::new(CountSyncs::default());
    let db = follower(&dst_dir, io.clone())?;
    let before = io.0.load(Ordering::SeqCst);
    for r in &records {
        db.apply(r)?;
    }
    assert!(io.0.load(Ordering::SeqCst) - before >= records.len());
    Ok(())
}
