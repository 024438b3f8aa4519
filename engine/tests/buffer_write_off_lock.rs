//! The writer that fills the write buffer writes it out without the write
//! lock: while that `pwrite` is held up (as the kernel holds a writer when
//! dirty pages pile up), reads find every key, including those in the
//! buffer being written, and other writers go on; once it lands, every
//! write is in the data files, and a crash after a sync keeps them all.

mod common;

use common::{TempDir, WriteGate};
use hypha_engine::{Db, Error, Fsync, Options, WRITE_BUFFER_BYTES, WRITE_BUFFER_MAX};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the test waits for anything before it calls it a hang.
const HANG_MS: u64 = 30_000;
/// Value bytes per put.
const VALUE_BYTES: usize = 100;

/// Holds a full buffer's write to a data file (smaller writes pass: the
/// lock holder's own writes).
fn buffer_writes(path: &std::path::Path, buf: &[u8]) -> bool {
    buf.len() >= WRITE_BUFFER_BYTES && path.extension().is_some_and(|e| e == "db")
}

fn key(i: u32) -> [u8; 8] {
    let mut k = *b"k0000000";
    k[1..].copy_from_slice(format!("{i:07}").as_bytes());
    k
}

fn value(i: u32) -> Vec<u8> {
    let mut v = format!("value {i} ").into_bytes();
    v.resize(VALUE_BYTES, b'.');
    v
}

/// Puts keys from `from` on a thread until one of its puts is held in the
/// gate; returns that thread and how many keys it put (the held put's
/// included: its record is appended before its buffer is written).
fn put_until_held(
    db: &Arc<Db>,
    gate: &Arc<WriteGate>,
) -> (std::thread::JoinHandle<Result<u32, Error>>, u32) {
    let written = Arc::new(Mutex::new(0u32));
    let filler = {
        let (db, gate, written) = (db.clone(), gate.clone(), written.clone());
        std::thread::spawn(move || -> Result<u32, Error> {
            let mut n = 0;
            while gate.held() == 0 {
                // Counted first: once this put is held, its key is readable.
                *written.lock().expect("lock") = n + 1;
                db.put(&key(n), &value(n))?;
                n += 1;
                assert!(n < 1_000_000, "no data write after {n} puts");
            }
            Ok(n)
        })
    };
    assert!(gate.wait_held(HANG_MS), "no data-file write was held");
    let n = *written.lock().expect("lock");
    (filler, n)
}

#[test]
fn reads_and_writes_go_on_while_a_full_buffer_is_written() -> Result<(), Error> {
    let dir = TempDir::new("buffer-off-lock");
    let gate = Arc::new(WriteGate::new(buffer_writes));
    let opts = Options {
        fsync: Fsync::Never,
        io: gate.clone(),
        auto_compact: false,
        ..Options::default()
    };
    let db = Arc::new(Db::open(dir.path(), opts)?);
    gate.close();
    let (filler, n) = put_until_held(&db, &gate);
    // Fewer than fill the next buffer to WRITE_BUFFER_MAX (where a writer
    // helps the one in flight), so none of these waits for the gate.
    let more = (WRITE_BUFFER_MAX / 2 / (VALUE_BYTES + 40)) as u32;
    let (tx, rx) = std::sync::mpsc::channel();
    let racer = {
        let db = db.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            for i in 0..n {
                assert_eq!(db.get(&key(i))?, Some(value(i)), "key {i} of {n}");
            }
            for i in n..n + more {
                db.put(&key(i), &value(i))?;
                assert_eq!(db.get(&key(i))?, Some(value(i)));
            }
            tx.send(()).expect("send");
            Ok(())
        })
    };
    let finished = rx.recv_timeout(Duration::from_millis(HANG_MS));
    let held = gate.held();
    gate.open();
    racer.join().expect("racer panicked")?;
    assert!(
        finished.is_ok(),
        "a read or write waited for the full buffer's write"
    );
    assert_eq!(held, 1, "another write was held too");
    let filled = filler.join().expect("filler panicked")?;
    assert_eq!(filled, n);
    db.sync()?;
    let db = Arc::try_unwrap(db).map_err(|_| ()).expect("one owner");
    db.crash();
    let db = Db::open(dir.path(), Options::default())?;
    for i in 0..n + more {
        assert_eq!(db.get(&key(i))?, Some(value(i)), "synced key {i} lost");
    }
    Ok(())
}
