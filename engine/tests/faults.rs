//! Disk errors: a failed write or fsync is never acknowledged, and the engine
//! goes read-only with an error that says why; reads keep working; what was
//! acknowledged before survives.

mod common;
use common::TempDir;
use hypha_engine::io::FaultyIo;
use hypha_engine::{Db, Error, Fsync, Options};
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
    fails_then_read_only(FaultyIo::new(30, 0, ENOSPC), Fsync::Always, "fault-write")
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

#[test]
fn rolling_over_makes_the_full_file_durable_before_the_next_is_used() -> Result<(), Error> {
    // Otherwise a crash could keep records of the new file while losing the
    // unsynced tail of the old one: a hole no prefix of the writes explains.
    let dir = TempDir::new("rollover-sync");
    let io = Arc::new(FaultyIo::new(0, 0, EIO));
    let opts = Options {
        fsync: Fsync::Never,
        io: io.clone(),
        file_size: 16 << 10,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts)?;
    let before = io.syncs();
    let mut i = 0u32;
    while db.stats().files < 2 {
        db.put(&i.to_be_bytes(), &[7u8; 500])?;
        i += 1;
    }
    // One fdatasync of the full file, one of the new file's header.
    assert_eq!(
        io.syncs() - before,
        2,
        "the full file was not synced at rollover"
    );
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
