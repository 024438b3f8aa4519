//! A full disk (a small ext4 image on a loop device): writes stop with an
//! error that says how much space is needed, reads go on, writes resume
//! without a reopen once space is freed — by deleting a file, or by a
//! compaction that fits in the space it reports needing — and every
//! acknowledged write survives, in memory and after a reopen.
//!
//! Needs root (mount) and mkfs.ext4 (Debian's e2fsprogs).

mod common;
use common::TempDir;
use hypha_engine::{Db, Error, Fsync, Options};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KEYS: u32 = 32;
const VALUE_BYTES: usize = 32 << 10;
const FILLER_BYTES: usize = 3 << 20;

/// An ext4 filesystem of `mib` MiB in a file, mounted; unmounted on drop.
struct SmallFs {
    _tmp: TempDir,
    mnt: PathBuf,
}

impl SmallFs {
    fn new(mib: u32) -> SmallFs {
        let tmp = TempDir::new("full-disk");
        let img = tmp.path().join("fs.img");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mount point");
        let f = std::fs::File::create(&img).expect("image");
        f.set_len(mib as u64 * 1024 * 1024).expect("size the image");
        // No blocks reserved for root: the free space statvfs reports is all there is.
        run("mkfs.ext4", &["-q", "-F", "-m", "0", img.to_str().unwrap()]);
        run(
            "mount",
            &["-o", "loop", img.to_str().unwrap(), mnt.to_str().unwrap()],
        );
        SmallFs { _tmp: tmp, mnt }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status();
    let st = st.unwrap_or_else(|e| panic!("{cmd}: {e} (this test needs root and e2fsprogs)"));
    assert!(st.success(), "{cmd} {args:?}: {st} (this test needs root)");
}

fn filler(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, vec![0xa5u8; FILLER_BYTES]).expect("write the filler");
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    path
}

fn key(k: u32) -> Vec<u8> {
    format!("key-{k:02}").into_bytes()
}

fn value(n: u32) -> Vec<u8> {
    let mut v = vec![(n % 251) as u8; VALUE_BYTES];
    v[..4].copy_from_slice(&n.to_le_bytes());
    v
}

fn opts(fsync: Fsync) -> Options {
    Options {
        fsync,
        file_size: 1 << 20,
        auto_compact: false,
        ..Options::default()
    }
}

/// What the writer was told.
#[derive(Default)]
struct Acked {
    /// Key number → the last write acknowledged.
    last: HashMap<u32, u32>,
    /// The write that failed as the disk filled: it may be applied or not.
    failed: Option<(u32, u32)>,
    next: u32,
}

impl Acked {
    /// Overwrites the next key in turn; notes the write if acknowledged.
    fn put_next(&mut self, db: &Db) -> Result<(), Error> {
        let (k, n) = (self.next % KEYS, self.next);
        self.next += 1;
        db.put(&key(k), &value(n))?;
        self.last.insert(k, n);
        Ok(())
    }

    /// Overwrites the keys in turn until a write fails; returns its error.
    fn fill(&mut self, db: &Db) -> Error {
        loop {
            if let Err(e) = self.put_next(db) {
                let n = self.next - 1;
                self.failed = Some((n % KEYS, n));
                return e;
            }
            assert!(self.next < 100_000, "the disk never filled");
        }
    }

    /// Every key holds its last acknowledged value (or, for the write that
    /// failed, that one).
    fn check(&self, db: &Db) {
        for (&k, &n) in &self.last {
            let got = db.get(&key(k)).expect("reads work on a full disk");
            let got = got.expect("an acknowledged key is there");
            let n_got = u32::from_le_bytes(got[..4].try_into().unwrap());
            let maybe = self
                .failed
                .is_some_and(|(fk, fnum)| fk == k && fnum == n_got);
            assert!(
                n_got == n || maybe,
                "key {k}: write {n_got}, acknowledged {n}"
            );
            assert_eq!(got, value(n_got), "key {k} garbled");
        }
    }

    /// Writes until one succeeds (the latch measures the disk at most once
    /// a second); panics after 10 s.
    fn until_resumed(&mut self, db: &Db) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Err(e) = self.put_next(db) {
            assert!(Instant::now() < deadline, "writes did not resume: {e}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn assert_full(e: &Error) -> (u64, u64) {
    match e {
        Error::DiskFull { free, needed, .. } => {
            assert!(free < needed, "{e}");
            let msg = e.to_string();
            assert!(
                msg.contains(&needed.to_string()) && msg.contains("free"),
                "{msg}"
            );
            (*free, *needed)
        }
        other => panic!("expected DiskFull, got {other}"),
    }
}

fn full_disk_round(fsync: Fsync) {
    let fs = SmallFs::new(16);
    let dir = fs.mnt.join("db");
    let first = filler(&fs.mnt, "filler-1");
    let second = filler(&fs.mnt, "filler-2");
    let db = Db::open(&dir, opts(fsync)).expect("open");
    let mut acked = Acked::default();

    // Full: the write that found no room fails, the next ones are refused
    // with the figures, reads go on.
    let e = acked.fill(&db);
    assert!(
        e.is_disk_full() || matches!(e, Error::DiskFull { .. }),
        "{e}"
    );
    let refused = db.put(b"another", b"v").expect_err("the disk is full");
    let (_, needed) = assert_full(&refused);
    assert_eq!(db.stats().disk_full.map(|(_, n)| n), Some(needed));
    acked.check(&db);

    // Freeing space lets writes resume without a reopen.
    std::fs::remove_file(&first).unwrap();
    acked.until_resumed(&db);
    assert_eq!(db.stats().disk_full, None);
    acked.check(&db);

    // Full again: compaction says what it needs; with that much freed it
    // runs, and writes resume after it with room to spare.
    let _ = acked.fill(&db);
    let e = db.compact().expect_err("no room to compact");
    let Error::CompactionNeedsSpace { free, needed, .. } = e else {
        panic!("expected CompactionNeedsSpace, got {e}");
    };
    assert!(needed > free && needed <= FILLER_BYTES as u64, "{e}");
    std::fs::remove_file(&second).unwrap();
    db.compact()
        .expect("compaction fits in the space it asked for");
    for _ in 0..KEYS * 2 {
        acked.until_resumed(&db);
    }
    acked.check(&db);
    db.close().expect("close");

    let db = Db::open(&dir, opts(fsync)).expect("reopen");
    acked.check(&db);
}

#[test]
fn a_full_disk_stops_writes_keeps_reads_and_resumes_with_fsync_always() {
    full_disk_round(Fsync::Always);
}

#[test]
fn a_full_disk_keeps_acknowledged_buffered_writes_with_fsync_never() {
    full_disk_round(Fsync::Never);
}

/// A database closed on a full disk opens again there (reads work), and a
/// compaction says what it needs, then runs once that much is free — as
/// `hypha compact --data DIR` does on a stopped node.
#[test]
fn a_database_on_a_full_disk_reopens_and_compacts_in_the_space_it_reports() {
    let fs = SmallFs::new(16);
    let dir = fs.mnt.join("db");
    let room = filler(&fs.mnt, "filler");
    let db = Db::open(&dir, opts(Fsync::Always)).expect("open");
    let mut acked = Acked::default();
    let _ = acked.fill(&db);
    let _ = db.close();
    let db = Db::open(&dir, opts(Fsync::Always)).expect("a full disk still opens");
    acked.check(&db);
    let e = db.compact().expect_err("no room to compact");
    assert!(matches!(e, Error::CompactionNeedsSpace { .. }), "{e}");
    std::fs::remove_file(&room).unwrap();
    db.compact()
        .expect("compaction fits in the space it asked for");
    acked.until_resumed(&db);
    acked.check(&db);
}
