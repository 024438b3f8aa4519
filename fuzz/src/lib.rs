//! Helpers the fuzz targets share: scratch directories, and small databases
//! built once per process with pinned random fields, so that an input
//! replays the same way in every process (a reproducer must reproduce).

use hypha_engine::tables::Meta;
use hypha_engine::{Db, Options};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Hash seed every template database gets instead of a random one.
pub const HASH_SEED: u64 = 0x6879_7068_615f_6675;
/// History id every template database gets instead of a random one.
pub const HISTORY_ID: u64 = 0x6675_7a7a_2d68_6973;

/// A fresh directory under `std::env::temp_dir()` (set `TMPDIR=/dev/shm` to
/// keep fsyncs off the disk), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A directory named after the target, the process and a counter, so
    /// parallel jobs (`-j2`) never share one.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("hypha-fuzz-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("cannot create a scratch directory");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The files of a closed database, kept in memory (`LOCK` and `torn/` left out).
#[derive(Clone, Debug)]
pub struct Files(pub Vec<(OsString, Vec<u8>)>);

impl Files {
    /// Builds a database with `opts`, lets `fill` write to it, closes it and
    /// pins its hash seed and history id (see [`pin_seeds`]).
    pub fn build(opts: &Options, fill: impl FnOnce(&Db)) -> Files {
        let dir = TempDir::new("template");
        let db = Db::open(dir.path(), opts.clone()).expect("cannot create a template database");
        fill(&db);
        db.close().expect("cannot close the template database");
        pin_seeds(dir.path(), opts);
        Files::read(dir.path())
    }

    /// Reads the regular files of `dir` except `LOCK`.
    pub fn read(dir: &Path) -> Files {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).expect("cannot list the template") {
            let entry = entry.expect("cannot list the template");
            let name = entry.file_name();
            if name == "LOCK" || !entry.path().is_file() {
                continue;
            }
            files.push((
                name,
                fs::read(entry.path()).expect("cannot read the template"),
            ));
        }
        files.sort();
        Files(files)
    }

    /// The contents of file `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bytes)| bytes.as_slice())
    }

    /// Writes every file into `dir`.
    pub fn write_to(&self, dir: &Path) {
        for (name, bytes) in &self.0 {
            fs::write(dir.join(name), bytes).expect("cannot write a template file");
        }
    }
}

/// Replaces the random hash seed and history id of the closed database in
/// `dir` by [`HASH_SEED`] and [`HISTORY_ID`]: rewrites `meta`, removes
/// `keys.idx` and lets one open rebuild the tables from the log.
pub fn pin_seeds(dir: &Path, opts: &Options) {
    let path = dir.join("meta");
    let meta = Meta::decode(&fs::read(&path).expect("cannot read meta")).expect("meta is valid");
    let pinned = Meta {
        hash_seed: HASH_SEED,
        history_id: HISTORY_ID,
        ..meta
    };
    fs::write(&path, pinned.encode()).expect("cannot write meta");
    fs::remove_file(dir.join("keys.idx")).expect("cannot remove keys.idx");
    let db = Db::open(dir, opts.clone()).expect("cannot rebuild the template's tables");
    assert!(
        db.recovery().rebuilt,
        "the template's tables were not rebuilt"
    );
    db.close().expect("cannot close the template database");
}
