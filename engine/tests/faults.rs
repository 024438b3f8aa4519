//! Disk errors: a failed write or fsync is never acknowledged, and the engine
//! goes read-only with an error that says why; reads keep working; what was
//! acknowledged before survives.

mod common;
use common::TempDir;
use hypha_engine::io::FaultyIo;
use hypha_engine::{BatchOp, Db, Error, Fsync, Options};
use std::sync::Arc;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

fn fails_then_read_only(io: FaultyIo, fsync: Fsync, tag: &str) -> Result<(), Error> {
    let dir = TempDir::new(tag);
    let io = Arc::new(io);
    let opts = Options {
        fsync,
        io: io.clone(),
        file_size: 1 << 16,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts)?;
    let mut acked = Vec::new();
    let failure = loop {
        let i = acked.len();
        let k = format!("k{i}");
        let r = db
            .put(k.as_bytes(), &[i as u8; 500])
            .and_then(|_| match fsync {
                Fsync::Never => db.sync(),
                _ => Ok(()),
            });
        match r {
            Ok(_) => acked.push(k),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "the fault never fired");
    };
    assert!(
        matches!(failure, Error::Io { .. } | Error::ReadOnly { .. }),
        "{failure}"
    );
    let again = db.put(b"after", b"x").unwrap_err();
    assert!(matches!(again, Error::ReadOnly { .. }), "{again}");
    assert!(again.to_string().contains("read-only"), "{again}");
    for (i, k) in acked.iter().enumerate() {
        assert_eq!(
            db.get(k.as_bytes())?,
            Some(vec![i as u8; 500]),
            "reads still work"
        );
    }
    drop(db);
    let db = Db::open(
        dir.path(),
        Options {
            file_size: 1 << 16,
            ..Options::default()
        },
    )?;
    for (i, k) in acked.iter().enumerate() {
        assert_eq!(
            db.get(k.as_bytes())?,
            Some(vec![i as u8; 500]),
            "acknowledged {k} survives"
        );
    }
    assert_eq!(db.get(b"after")?, None);
    Ok(())
}

#[test]
fn a_failed_fsync_makes_the_engine_read_only() -> Result<(), Error> {
    // Opening a new database takes a few syncs; fail one well after that.
    fails_then_read_only(FaultyIo::new(0, 40, EIO), Fsync::Always, "fault-sync")
}

#[test]
fn a_failed_write_makes_the_engine_read_only() -> Result<(), Error> {
    // (ENOSPC latches only until there is room: tests/full_disk.rs.)
    fails_then_read_only(FaultyIo::new(30, 0, EIO), Fsync::Always, "fault-write")
}

/// ENOSPC on a write latches the engine like any failed write, but as a
/// full disk: the refusal says so with the figures and the write that
/// failed, reads go on, and while the writes keep failing (here: whatever
/// the free space says) the latch holds.
#[test]
fn a_write_without_space_latches_as_a_full_disk() -> Result<(), Error> {
    let dir = TempDir::new("fault-nospace");
    let opts = Options {
        io: Arc::new(FaultyIo::new(30, 0, ENOSPC)),
        file_size: 1 << 16,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts)?;
    let mut acked = 0u32;
    let failure = loop {
        match db.put(format!("k{acked}").as_bytes(), &[7; 500]) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "the fault never fired");
    };
    assert!(failure.is_disk_full(), "{failure}");
    for _ in 0..3 {
        let again = db.put(b"after", b"x").unwrap_err();
        assert!(matches!(again, Error::DiskFull { .. }), "{again}");
        let msg = again.to_string();
        assert!(
            msg.contains("is full") && msg.contains("No space left"),
            "{msg}"
        );
    }
    assert!(db.stats().disk_full.is_some());
    for i in 0..acked {
        assert_eq!(db.get(format!("k{i}").as_bytes())?, Some(vec![7; 500]));
    }
    Ok(())
}

#[test]
fn a_failed_sync_is_reported_by_sync_under_fsync_never() -> Result<(), Error> {
    fails_then_read_only(FaultyIo::new(0, 25, EIO), Fsync::Never, "fault-never")
}

#[test]
fn concurrent_durable_writers_share_fsyncs() -> Result<(), Error> {
    let dir = TempDir::new("group-commit");
    let io = Arc::new(FaultyIo::new(0, 0, EIO));
    let db = Arc::new(Db::open(
        dir.path(),
        Options {
            io: io.clone(),
            ..Options::default()
        },
    )?);
    let before = io.syncs();
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || -> Result<(), Error> {
                for i in 0..20 {
                    db.put(format!("t{t}-{i}").as_bytes(), b"durable")?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer panicked")?;
    }
    let syncs = io.syncs() - before;
    assert_eq!(db.len(), 640);
    assert!(
        syncs < 640,
        "{syncs} fdatasyncs for 640 durable writes: no group commit"
    );
    Ok(())
}

/// A file layer whose fsyncs (of files and of the directory) wait while
/// the gate is closed.
#[derive(Debug, Default)]
struct Gate {
    closed: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn set(&self, closed: bool) {
        *self.closed.lock().expect("lock") = closed;
        self.opened.notify_all();
    }
    fn pass(&self) {
        let mut closed = self.closed.lock().expect("lock");
        while *closed {
            closed = self.opened.wait(closed).expect("lock");
        }
    }
}

impl hypha_engine::io::FileIo for Gate {
    fn write_at(&self, file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        file.write_all_at(buf, offset)
    }
    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        self.pass();
        file.sync_data()
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.pass();
        std::fs::File::open(dir)?.sync_all()
    }
}

#[test]
fn a_rollover_does_not_wait_for_the_fsync_of_the_full_file() -> Result<(), Error> {
    // With every fsync held up, a writer fills a data file and goes on in
    // the next, and reads and writes go on while the full file's fsync
    // waits: it runs in the background, not on the writer, not under the
    // lock. (It would hang, and time out below, otherwise.)
    let dir = TempDir::new("rollover-background");
    let gate = Arc::new(Gate::default());
    let opts = Options {
        fsync: Fsync::Never,
        io: gate.clone(),
        file_size: 16 << 10,
        ..Options::default()
    };
    let db = Arc::new(Db::open(dir.path(), opts)?);
    gate.set(true);
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            let mut i = 0u32;
            while db.stats().files < 2 {
                db.put(&i.to_be_bytes(), &[7u8; 500])?;
                i += 1;
            }
            // Past the rollover: more writes into the new file, and reads.
            for j in i..i + 10 {
                db.put(&j.to_be_bytes(), &[8u8; 500])?;
            }
            assert_eq!(db.get(&0u32.to_be_bytes())?, Some(vec![7u8; 500]));
            tx.send(()).expect("send");
            Ok(())
        })
    };
    let finished = rx.recv_timeout(std::time::Duration::from_secs(30));
    gate.set(false);
    writer.join().expect("writer panicked")?;
    assert!(finished.is_ok(), "a write waited for the full file's fsync");
    // sync() runs what is still owed, so everything written is durable.
    db.sync()?;
    Ok(())
}

/// A file layer that remembers what each successful fdatasync made durable,
/// and fails every fdatasync from the `fail_at`th on. [`PowerCut::apply`]
/// then leaves the data files as a power cut would: each cut to the length
/// its latest fdatasync saw, and every write no fdatasync covered zeroed
/// (data files are append-only, so what a lost write leaves is zeros, or
/// the zeros written ahead there).
#[derive(Debug)]
struct PowerCut {
    inner: FaultyIo,
    state: std::sync::Mutex<PowerCutState>,
}

#[derive(Debug, Default)]
struct PowerCutState {
    /// Writes completed so far.
    writes: u64,
    /// Writes no fdatasync has covered: (number, file, offset, length).
    unsynced: Vec<(u64, std::path::PathBuf, u64, u64)>,
    /// fdatasyncs started so far.
    syncs: u64,
    /// Per file, the length the latest-started successful fdatasync saw
    /// (and its number): a trim shrinks a file, and the next fdatasync makes
    /// the shorter length durable.
    durable: std::collections::HashMap<std::path::PathBuf, (u64, u64)>,
}

fn path_of(file: &std::fs::File) -> std::io::Result<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

impl hypha_engine::io::FileIo for PowerCut {
    fn write_at(&self, file: &std::fs::File, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_at(file, buf, offset)?;
        // Numbered once complete: an fdatasync that began before covers
        // it only if it was numbered before the fdatasync began.
        let path = path_of(file)?;
        let mut st = self.state.lock().expect("lock");
        st.writes += 1;
        let n = st.writes;
        st.unsynced.push((n, path, offset, buf.len() as u64));
        Ok(())
    }
    fn sync_data(&self, file: &std::fs::File) -> std::io::Result<()> {
        let path = path_of(file)?;
        let (covered, len, started) = {
            let mut st = self.state.lock().expect("lock");
            st.syncs += 1;
            (st.writes, file.metadata()?.len(), st.syncs)
        };
        self.inner.sync_data(file)?;
        let mut st = self.state.lock().expect("lock");
        st.unsynced
            .retain(|(n, p, _, _)| *n > covered || *p != path);
        let d = st.durable.entry(path).or_default();
        if started > d.0 {
            *d = (started, len);
        }
        Ok(())
    }
}

impl PowerCut {
    fn apply(&self, dir: &std::path::Path) {
        use std::os::unix::fs::FileExt;
        let st = self.state.lock().expect("lock");
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "db") {
                continue;
            }
            let keep = st.durable.get(&path).map_or(0, |d| d.1);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open");
            for (_, p, offset, len) in &st.unsynced {
                if *p == path && *offset < keep {
                    let len = (*len).min(keep - offset);
                    f.write_all_at(&vec![0u8; len as usize], *offset)
                        .expect("zero");
                }
            }
            f.set_len(keep).expect("cut");
        }
    }
}

#[test]
fn concurrent_durable_writers_are_acknowledged_only_after_their_fdatasync() -> Result<(), Error> {
    // Writers pile up behind a leader that goes on syncing for them; when an
    // fdatasync fails mid-way, only writes an earlier fdatasync covered may
    // have been acknowledged.
    // 64 KiB files roll over every ~300 writes: sealing trims the zeros
    // written ahead, and a power cut must not undo that.
    let sizes = [Options::default().file_size, 1 << 16];
    for (fail_at, file_size) in [8, 15, 30, 60]
        .into_iter()
        .flat_map(|f| sizes.map(|s| (f, s)))
    {
        let dir = TempDir::new("group-fault");
        let io = Arc::new(PowerCut {
            inner: FaultyIo::new(0, fail_at, EIO),
            state: Default::default(),
        });
        let db = Arc::new(Db::open(
            dir.path(),
            Options {
                io: io.clone(),
                file_size,
                ..Options::default()
            },
        )?);
        let threads: Vec<_> = (0..32)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..50 {
                        let k = format!("t{t}-{i}");
                        match db.put(k.as_bytes(), &[t as u8; 200]) {
                            Ok(_) => acked.push(k),
                            Err(_) => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        let acked: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("writer panicked"))
            .collect();
        assert!(db.put(b"after", b"x").is_err(), "still writable");
        drop(db);
        // The power cut: every data file keeps what an fdatasync covered.
        io.apply(dir.path());
        let db = Db::open(dir.path(), Options::default())?;
        for k in &acked {
            let t: u8 = k[1..k.find('-').expect("dash")].parse().expect("t");
            assert_eq!(
                db.get(k.as_bytes())?,
                Some(vec![t; 200]),
                "fdatasync #{fail_at} failed (file_size {file_size}): acknowledged {k} lost at the power cut ({} acknowledged)",
                acked.len()
            );
        }
    }
    Ok(())
}

#[test]
fn a_power_cut_after_rollovers_keeps_a_prefix_that_covers_every_sync() -> Result<(), Error> {
    // The fsyncs of a rollover run after the writer moved on to the next
    // file: whatever the power cut finds, recovery must keep a prefix of
    // the writes, and every write a sync() acknowledged.
    for (synced_puts, more_puts) in [(50, 400), (300, 30), (700, 700)] {
        let dir = TempDir::new("rollover-power-cut");
        let io = Arc::new(PowerCut {
            inner: FaultyIo::new(0, 0, EIO),
            state: Default::default(),
        });
        let opts = Options {
            fsync: Fsync::Never,
            io: io.clone(),
            file_size: 16 << 10,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts)?;
        let key = |i: u32| format!("k{i:05}");
        for i in 0..synced_puts {
            db.put(key(i).as_bytes(), &[i as u8; 300])?;
        }
        db.sync()?;
        for i in synced_puts..synced_puts + more_puts {
            db.put(key(i).as_bytes(), &[i as u8; 300])?;
        }
        db.crash();
        io.apply(dir.path());
        let db = Db::open(
            dir.path(),
            Options {
                file_size: 16 << 10,
                ..Options::default()
            },
        )?;
        let mut present = 0;
        while present < synced_puts + more_puts && db.get(key(present).as_bytes())?.is_some() {
            present += 1;
        }
        assert!(
            present >= synced_puts,
            "a write acknowledged by sync() was lost: {present} of {synced_puts} kept"
        );
        for i in present..synced_puts + more_puts {
            assert_eq!(
                db.get(key(i).as_bytes())?,
                None,
                "not a prefix: k{i} kept but k{present} lost"
            );
        }
        for i in 0..present {
            assert_eq!(db.get(key(i).as_bytes())?, Some(vec![i as u8; 300]));
        }
    }
    Ok(())
}

#[test]
fn reads_and_updates_go_on_while_the_key_index_grows() -> Result<(), Error> {
    // The writer of the key that makes the index grow waits for the new
    // table's fsync (held up here); other readers and writers of existing
    // keys do not wait for it.
    let dir = TempDir::new("index-growth-background");
    let gate = Arc::new(Gate::default());
    let opts = Options {
        fsync: Fsync::Never,
        io: gate.clone(),
        ..Options::default()
    };
    let db = Arc::new(Db::open(dir.path(), opts)?);
    db.put(b"existing", b"v0")?;
    gate.set(true);
    let grower = {
        let db = db.clone();
        // Enough new keys to fill the first 4096 slots past 70 %.
        std::thread::spawn(move || -> Result<(), Error> {
            for i in 0..3000u32 {
                db.put(&i.to_be_bytes(), b"new")?;
            }
            Ok(())
        })
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let other = {
        let db = db.clone();
        std::thread::spawn(move || -> Result<(), Error> {
            // Wait until the grower is in the growth (its fsync held): the
            // index grows before its 2868th slot of 4096 is used (70 %):
            // 2867 live keys, "existing" among them.
            while db.len() < 2867 {
                std::thread::yield_now();
            }
            for round in 0..100u32 {
                db.put(b"existing", &round.to_be_bytes())?;
                assert_eq!(db.get(b"existing")?, Some(round.to_be_bytes().to_vec()));
            }
            tx.send(()).expect("send");
            Ok(())
        })
    };
    let finished = rx.recv_timeout(std::time::Duration::from_secs(30));
    gate.set(false);
    other.join().expect("reader panicked")?;
    grower.join().expect("grower panicked")?;
    assert!(
        finished.is_ok(),
        "an update waited for the key index to grow"
    );
    assert_eq!(db.len(), 3001);
    Ok(())
}

/// A write that fails for space in the middle of an atomic batch (at the
/// rollover inside it) latches for good — resuming would make half a batch
/// durable — while one between batches latches until there is room; either
/// way a reopen finds every batch whole or absent.
#[test]
fn no_space_inside_a_batch_latches_for_good_and_batches_stay_whole() -> Result<(), Error> {
    let value = |b: u32, i: u32| vec![(b * 4 + i) as u8; 20 << 10];
    let mut halves = 0;
    for fail_at in 8..24 {
        let dir = TempDir::new("fault-batch");
        let opts = |io: Option<FaultyIo>| Options {
            io: io.map_or_else(|| Options::default().io, |io| Arc::new(io) as _),
            fsync: Fsync::Never,
            file_size: 64 << 10,
            ..Options::default()
        };
        let db = Db::open(dir.path(), opts(Some(FaultyIo::new(fail_at, 0, ENOSPC))))?;
        // Each batch (4 × 20 KiB) is larger than a data file: it rolls over.
        let mut b = 0u32;
        let failure = loop {
            let keys: Vec<Vec<u8>> = (0..4).map(|i| format!("b{b}-{i}").into_bytes()).collect();
            let values: Vec<Vec<u8>> = (0..4).map(|i| value(b, i)).collect();
            let ops: Vec<BatchOp> = (0..4)
                .map(|i| BatchOp::Put {
                    key: &keys[i],
                    value: &values[i],
                    deadline_ms: 0,
                })
                .collect();
            match db.batch(&ops) {
                Ok(_) => b += 1,
                Err(e) => break e,
            }
            assert!(b < 1000, "the fault never fired");
        };
        let again = db.put(b"after", b"x").unwrap_err();
        if again.to_string().contains("half an atomic batch") {
            halves += 1;
            assert!(matches!(again, Error::ReadOnly { .. }), "{again}");
        } else {
            assert!(
                matches!(again, Error::DiskFull { .. }),
                "{failure} / {again}"
            );
        }
        drop(db);
        let db = Db::open(dir.path(), opts(None))?;
        for n in 0..=b {
            let got: Vec<bool> = (0..4)
                .map(|i| db.get(format!("b{n}-{i}").as_bytes()).map(|v| v.is_some()))
                .collect::<Result<_, _>>()?;
            assert!(got.iter().all(|&g| g == got[0]), "batch {n} split: {got:?}");
        }
    }
    assert!(halves > 0, "no fault landed inside a batch");
    Ok(())
}
