//! The file layer writes and fsyncs go through, so tests can inject faults.
//!
//! Reads use memory maps and never fail here; every write and every
//! fdatasync of data files, tables and the checkpoint calls [`FileIo`].

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
// AtomicUsize, not AtomicU64: 32-bit MIPS routers have no 64-bit atomics,
// and a test never makes 2^32 calls.
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writes and syncs files. The engine holds one per database.
pub trait FileIo: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync.
    fn sync_data(&self, file: &File) -> io::Result<()>;
}

/// The real thing: `pwrite` and `fdatasync`.
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

/// Fault injection for tests: fails the Nth write or the Nth fsync (counting
/// from 1, across all files) with `errno`, and every call after it.
#[derive(Debug)]
pub struct FaultyIo {
    /// Fail this write (0: never).
    pub fail_write_at: u64,
    /// Fail this fdatasync (0: never).
    pub fail_sync_at: u64,
    /// The OS error to return (e.g. 5 = EIO, 28 = ENOSPC).
    pub errno: i32,
    writes: AtomicUsize,
    syncs: AtomicUsize,
}

impl FaultyIo {
    /// A layer that fails the `write`th write and the `sync`th fsync (0: never).
    pub fn new(write: u64, sync: u64, errno: i32) -> FaultyIo {
        FaultyIo {
            fail_write_at: write,
            fail_sync_at: sync,
            errno,
            writes: AtomicUsize::new(0),
            syncs: AtomicUsize::new(0),
        }
    }

    /// fdatasync calls so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst) as u64
    }

    /// Write calls so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst) as u64
    }
}

impl FileIo for FaultyIo {
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if self.fail_write_at != 0 && n >= self.fail_write_at {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        file.write_all_at(buf, offset)
    }
    fn sync_data(&self, file: &File) -> io::Result<()> {
        let n = self.syncs.fetch_add(1, Ordering::SeqCst) as u64 + 1;
        if self.fail_sync_at != 0 && n >= self.fail_sync_at {
            return Err(io::Error::from_raw_os_error(self.errno));
        }
        file.sync_data()
    }
}
