//! `put_unsynced` / `delete_unsynced` under `Fsync::Always`: they return
//! without an fdatasync, one `sync()` then makes all of them durable, and
//! what that sync covered survives a crash.

mod common;
use common::TempDir;
use hypha_engine::io::FaultyIo;
use hypha_engine::{Db, Error, Fsync, Options};
use std::sync::Arc;

const WRITES: usize = 100;

fn options(io: Arc<FaultyIo>) -> Options {
    Options {
        fsync: Fsync::Always,
        io,
        ..Options::default()
    }
}

#[test]
fn unsynced_writes_share_one_fdatasync_and_survive_a_crash_after_it() -> Result<(), Error> {
    let dir = TempDir::new("unsynced-writes");
    let io = Arc::new(FaultyIo::new(0, 0, 0));
    let db = Db::open(dir.path(), options(io.clone()))?;

    // A plain put under Fsync::Always pays its own fdatasync.
    let before = io.syncs();
    db.put(b"gone", b"soon")?;
    assert_eq!(io.syncs(), before + 1, "a put waits for its fdatasync");

    let before = io.syncs();
    let mut last = 0;
    for i in 0..WRITES {
        last = db.put_unsynced(format!("k{i}").as_bytes(), &[i as u8; 150])?;
    }
    let deleted = db.delete_unsynced(b"gone")?.expect("the key was there");
    assert_eq!(db.delete_unsynced(b"never-written")?, None);
    assert!(deleted > last, "seqs in append order");
    assert_eq!(io.syncs(), before, "unsynced writes do not fdatasync");
    assert_eq!(
        db.get(b"k0")?,
        Some(vec![0; 150]),
        "readers see them at once"
    );

    db.sync()?;
    assert_eq!(io.syncs(), before + 1, "one fdatasync covers all of them");

    db.crash();
    let db = Db::open(dir.path(), options(Arc::new(FaultyIo::new(0, 0, 0))))?;
    assert_eq!(db.seq(), deleted);
    for i in 0..WRITES {
        assert_eq!(
            db.get(format!("k{i}").as_bytes())?,
            Some(vec![i as u8; 150])
        );
    }
    assert_eq!(db.get(b"gone")?, None);
    Ok(())
}

#[test]
fn a_failed_sync_of_unsynced_writes_is_an_error_and_the_db_turns_read_only() -> Result<(), Error> {
    let dir = TempDir::new("unsynced-sync-fails");
    // Opening syncs a few times; fail the first fdatasync after that.
    let probe = Arc::new(FaultyIo::new(0, 0, 0));
    let probed = Db::open(dir.path(), options(probe.clone()))?;
    let opened = probe.syncs();
    probed.crash();
    let dir = TempDir::new("unsynced-sync-fails-2");
    let io = Arc::new(FaultyIo::new(0, opened + 1, 5));
    let db = Db::open(dir.path(), options(io))?;
    db.put_unsynced(b"k", b"v")?;
    let e = db.sync().unwrap_err();
    assert!(
        matches!(e, Error::Io { .. } | Error::ReadOnly { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("fdatasync"), "says why: {e}");
    let again = db.put_unsynced(b"k2", b"v").unwrap_err();
    assert!(matches!(again, Error::ReadOnly { .. }), "{again}");
    Ok(())
}

/// The `try_` writes never wait for key-index growth: when a new key would,
/// they write nothing and say so, and the waiting call then goes through.
#[test]
fn try_writes_refuse_to_wait_for_key_index_growth_and_write_nothing() -> Result<(), Error> {
    let dir = TempDir::new("try-writes-growth");
    let db = Db::open(
        dir.path(),
        Options {
            fsync: Fsync::Never,
            ..Options::default()
        },
    )?;
    let key = |i: u32| format!("key-{i:06}").into_bytes();
    let mut blocked = None;
    for i in 0..100_000u32 {
        match db.try_put_unsynced(&key(i), b"v")? {
            Some(_) => {}
            None => {
                blocked = Some(i);
                break;
            }
        }
    }
    let i = blocked.expect("a new key eventually needs the key index to grow");
    let seq = db.seq();
    assert_eq!(db.get(&key(i))?, None, "a refused try_put wrote nothing");
    // An existing key needs no growth.
    assert!(db.try_put_unsynced(&key(0), b"again")?.is_some());
    assert_eq!(db.seq(), seq + 1);
    // The waiting call grows the index; then new keys go through again.
    db.put_unsynced(&key(i), b"v")?;
    assert!(db.try_put_unsynced(&key(i + 1), b"v")?.is_some());

    // A replica applying the same records meets the same wall with
    // try_apply, and apply gets past it.
    let replica_dir = TempDir::new("try-apply-growth");
    let replica = Db::open(replica_dir.path(), Options::default())?;
    let mut waited = 0;
    for r in db.read_from(0) {
        let r = r?;
        match replica.try_apply(&r)? {
            Some(applied) => assert!(applied),
            None => {
                waited += 1;
                assert!(replica.seq() < r.seq, "a refused try_apply wrote nothing");
                assert!(replica.apply(&r)?);
            }
        }
    }
    assert!(waited >= 1, "the replica's key index had to grow too");
    assert_eq!(replica.digest(), db.digest());
    Ok(())
}
