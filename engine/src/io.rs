//! The file layer every file operation of the engine goes through, so tests
//! can inject faults.
//!
//! Reads use memory maps (and `read`/`stat` at open) and never fail here;
//! every operation that changes a file or the directory — create, open for
//! writing, write, fdatasync, set_len, rename, remove, directory fsync,
//! directory creation — calls [`FileIo`]. Only `write_at` and `sync_data`
//! must be implemented; the others default to the real operation, so a
//! layer written for an older engine keeps working.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
// AtomicUsize, not AtomicU64: 32-bit MIPS routers have no 64-bit atomics,
// and a test never makes 2^32 calls.
use std::sync::atomic::{AtomicUsize, Ordering};

/// How [`FileIo::open`] opens a file (always for reading and writing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// The file must not exist; it is created.
    CreateNew,
    /// Created if absent, emptied if present.
    Truncate,
    /// Created if absent, kept as it is if present.
    CreateOrOpen,
}

impl OpenMode {
    /// Opens `path` this way with the real file system.
    pub fn open(self, path: &Path) -> io::Result<File> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        match self {
            OpenMode::Existing => &mut o,
            OpenMode::CreateNew => o.create_new(true),
            OpenMode::Truncate => o.create(true).truncate(true),
            OpenMode::CreateOrOpen => o.create(true).truncate(false),
        };
        o.open(path)
    }
}

/// Changes files and the directory. The engine holds one per database.
pub trait FileIo: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// Opens or creates `path` for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<File> {
        mode.open(path)
    }
    /// Sets the length of `file` (ftruncate).
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    /// fsyncs the directory `dir`, so entries created, renamed or removed
    /// in it survive a power cut.
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
}

/// The real thing: `pwrite`, `fdatasync` and the file system calls.
#[derive(Debug, Default)]
pub struct RealIo;

impl FileIo for RealIo {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        file.write_all_at(buf, offset)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}

/// A file operation, for [`FaultyIo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`FileIo::write_at`].
    Write,
    /// [`FileIo::sync_data`].
    Sync,
    /// [`FileIo::open`] with a mode that may create the file.
    Create,
    /// [`FileIo::open`] of an existing file ([`OpenMode::Existing`]).
    Open,
    /// [`FileIo::set_len`].
    SetLen,
    /// [`FileIo::rename`].
    Rename,
    /// [`FileIo::remove_file`].
    Remove,
    /// [`FileIo::sync_dir`].
    SyncDir,
    /// [`FileIo::create_dir_all`].
    CreateDir,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 9] = [
        Op::Write,
        Op::Sync,
        Op::Create,
        Op::Open,
        Op::SetLen,
        Op::Rename,
        Op::Remove,
        Op::SyncDir,
        Op::CreateDir,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

const OPS: usize = Op::ALL.len();

/// Fault injection for tests: fails the Nth call of an operation (counting
/// from 1, across all files) with `errno`, and every call of it after.
#[derive(Debug)]
pub struct FaultyIo {
    /// Fail this write (0: never).
    pub fail_write_at: u64,
    /// Fail this fdatasync (0: never).
    pub fail_sync_at: u64,
    /// The OS error to return (e.g. 5 = EIO, 28 = ENOSPC).
    pub errno: i32,
    /// Calls so far, per operation.
    calls: [AtomicUsize; OPS],
    /// The call of each operation that fails first (0: none); writes and
    /// fdatasyncs also fail from `fail_write_at` / `fail_sync_at` on.
    fail_at: [AtomicUsize; OPS],
}

impl FaultyIo {
    /// A layer that fails the `write`th write and the `sync`th fsync (0: never).
    pub fn new(write: u64, sync: u64, errno: i32) -> FaultyIo {
        FaultyIo {
            fail_write_at: write,
            fail_sync_at: sync,
            errno,
            calls: Default::default(),
            fail_at: Default::default(),
        }
    }

    /// A layer that fails the `nth` call of `op` (from 1) and every one after.
    pub fn failing(op: Op, nth: u64, errno: i32) -> FaultyIo {
        let io = FaultyIo::new(0, 0, errno);
        io.fail_at[op.index()].store(nth as usize, Ordering::SeqCst);
        io
    }

    /// From now on, the `nth` next call of `op` (1: the next one) and every
    /// one after it fail.
    pub fn arm(&self, op: Op, nth: u64) {
        let at = self.calls(op) + nth.max(1);
        self.fail_at[op.index()].store(at as usize, Ordering::SeqCst);
    }

    /// Stops failing `op` (armed with [`FaultyIo::arm`] or
    /// [`FaultyIo::failing`]).
    pub fn disarm(&self, op: Op) {
        self.fail_at[op.index()].store(0, Ordering::SeqCst);
    }

    /// Calls of `op` so far.
    pub fn calls(&self, op: Op) -> u64 {
        self.calls[op.index()].load(Ordering::SeqCst) as u64
    }

    /// fdatasync calls so far.
    pub fn syncs(&self) -> u64 {
        self.calls(Op::Sync)
    }

    /// Write calls so far.
    pub fn writes(&self) -> u64 {
        self.calls(Op::Write)
    }

    /// Counts a call of `op`; the error to return if it must fail.
    fn check(&self, op: Op) -> io::Result<()> {
        let n = self.calls[op.index()].fetch_add(1, Ordering::SeqCst) as u64 + 1;
        let fixed = match op {
            Op::Write => self.fail_write_at,
            Op::Sync => self.fail_sync_at,
            _ => 0,
        };
        let armed = self.fail_at[op.index()].load(Ordering::SeqCst) as u64;
        if (fixed != 0 && n >= fixed) || (armed != 0 && n >= armed) {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        Ok(())
    }
}

impl FileIo for FaultyIo {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check(Op::Write)?;
        file.write_all_at(buf, offset)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        self.check(Op::Sync)?;
        file.sync_data()
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<File> {
        self.check(match mode {
            OpenMode::Existing => Op::Open,
            _ => Op::Create,
        })?;
        mode.open(path)
    }
    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        self.check(Op::SetLen)?;
        file.set_len(len)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename)?;
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove)?;
        std::fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir)?;
        File::open(dir)?.sync_all()
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::CreateDir)?;
        std::fs::create_dir_all(dir)
    }
}
