//! A checkpoint writes its lookup entries, and the checkpoint thread the
//! pending key-index slots, without the write lock: while those writes are
//! held up, reads and writes go on (and find every key), and a crash at
//! that moment, or after, keeps every synced write.

mod common;

use common::{TempDir, WriteFilter, WriteGate};
use hypha_engine::{Db, Error, Fsync, Options};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the test waits for anything before it calls it a hang.
const HANG_MS: u64 = 30_000;
/// Puts after which a table write must have been held (a checkpoint is due
/// at `CHECKPOINT_IDS_MAX` changed ids, a key-index write at 32768 new keys).
const PUTS_MAX: u32 = 4 * hypha_engine::CHECKPOINT_IDS_MAX as u32;
/// Puts of new keys, and updates, while the table write is held: fewer than
/// make a writer wait for it (a full key-index backlog).
const PUTS_HELD: u32 = 1000;

/// Holds writes to `lookup.tbl`.
fn lookup_writes(path: &Path, _: &[u8]) -> bool {
    path.file_name().is_some_and(|n| n == "lookup.tbl")
}

/// Holds writes to `keys.idx`.
fn key_index_writes(path: &Path, _: &[u8]) -> bool {
    path.file_name().is_some_and(|n| n == "keys.idx")
}

fn key(i: u32) -> [u8; 8] {
    let mut k = *b"k0000000";
    k[1..].copy_from_slice(format!("{i:07}").as_bytes());
    k
}

/// The value `key(i)` is first put with.
fn initial(i: u32) -> Vec<u8> {
    format!("value {i}").into_bytes()
}

/// The value `key(i)` holds after the test: updated for the first
/// `PUTS_HELD` keys.
fn value(i: u32) -> Vec<u8> {
    match i < PUTS_HELD {
        true => format!("updated {i}").into_bytes(),
        false => initial(i),
    }
}

/// Copies the database's files: what a crash at this moment leaves (every
/// write is in the page cache; the test syncs what it checks).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn check_all(dir: &Path, n: u32) -> Result<(), Error> {
    let db = Db::open(dir, Options::default())?;
    for i in 0..n + PUTS_HELD {
        assert_eq!(
            db.get(&key(i))?,
            Some(value(i)),
            "{}: synced key {i} lost or stale",
            dir.display()
        );
    }
    Ok(())
}

/// Puts new keys until a write to the gated table is held (and a little
/// past it, if puts go on); returns how many, or `None` if the puts hung.
fn fill_until_held(
    db: &Arc<Db>,
    gate: &Arc<WriteGate>,
    table: &'static str,
) -> Result<Option<u32>, Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let filler = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(), Error> {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                assert!(n < PUTS_MAX, "no write to {table} after {n} puts");
                db.put(&key(n), &initial(n))?;
                n += 1;
            }
            tx.send(n).expect("send");
            Ok(())
        })
    };
    let held = gate.wait_held(HANG_MS);
    stop.store(true, Ordering::SeqCst);
    let n = rx.recv_timeout(Duration::from_millis(HANG_MS)).ok();
    if n.is_none() {
        gate.open();
    }
    filler.join().expect("filler panicked")?;
    assert!(held, "no write to {table} was held");
    Ok(n)
}

/// While a write to the gated table is held: new keys, updates and reads,
/// then a sync. Returns the keys written before.
fn race_held_write(db: &Arc<Db>, gate: &Arc<WriteGate>, table: &'static str) -> Result<u32, Error> {
    let n = fill_until_held(db, gate, table)?;
    let Some(n) = n else {
        panic!("a put waited for a held write to {table}");
    };
    assert!(n > 2 * PUTS_HELD, "held after {n} puts");
    db.sync()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let racer = {
        let db = db.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            for j in 0..PUTS_HELD {
                db.put(&key(n + j), &value(n + j))?;
                db.put(&key(j), &value(j))?;
                assert_eq!(db.get(&key(j))?, Some(value(j)));
                // Keys whose table entries are being written.
                let old = n - 1 - j;
                assert_eq!(db.get(&key(old))?, Some(initial(old)));
            }
            db.sync()?;
            tx.send(()).expect("send");
            Ok(())
        })
    };
    let finished = rx.recv_timeout(Duration::from_millis(HANG_MS));
    if finished.is_err() {
        gate.open();
    }
    racer.join().expect("racer panicked")?;
    assert!(
        finished.is_ok(),
        "a read or write waited for a held write to {table}"
    );
    Ok(n)
}

#[test]
fn reads_and_writes_go_on_while_table_writes_are_held_and_a_crash_keeps_synced_writes(
) -> Result<(), Error> {
    for (table, filter) in [
        ("lookup.tbl", lookup_writes as WriteFilter),
        ("keys.idx", key_index_writes),
    ] {
        let dir = TempDir::new(&format!("held-{table}"));
        let copy = TempDir::new(&format!("held-{table}-crash"));
        let gate = Arc::new(WriteGate::new(filter));
        let opts = Options {
            fsync: Fsync::Never,
            io: gate.clone(),
            file_size: 1 << 20,
            auto_compact: false,
            ..Options::default()
        };
        let db = Arc::new(Db::open(dir.path(), opts)?);
        gate.close();
        let n = race_held_write(&db, &gate, table)?;
        // A crash while the table write is still held.
        assert!(gate.held() > 0, "the write to {table} was not held");
        copy_dir(dir.path(), copy.path()).expect("copy");
        gate.open();
        let db = Arc::try_unwrap(db).map_err(|_| ()).expect("one owner");
        db.crash();
        check_all(copy.path(), n)?;
        check_all(dir.path(), n)?;
    }
    Ok(())
}
