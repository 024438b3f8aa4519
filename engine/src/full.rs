//! A full disk: writes stop, reads go on, and writes resume by themselves
//! once there is room.
//!
//! A write that fails with ENOSPC or EDQUOT latches the database read-only
//! like any failed write, but *resumably*: the records appended before it
//! stay in the write buffer (readable, as before), and every write attempt
//! — at most once per `FULL_RETRY_MS` — measures the free space (statvfs)
//! and, once it covers what the database needs to catch up
//! ([`Core::space_needed`]), writes the buffers out, fsyncs and checkpoints.
//! If that succeeds the latch is lifted; nothing acknowledged was lost, since
//! nothing unwritten was ever acknowledged.
//!
//! An fsync that fails, even with ENOSPC, latches for good: after a failed
//! fsync the kernel may have dropped the dirty pages, so only a reopen (which
//! replays what is really on disk) is safe.
//!
//! A compaction may run while the latch holds (it is how space is won back)
//! if the free space covers what it writes: the buffers, a copy of the live
//! records, and the headroom.

use crate::error::{Error, Result};
use crate::inner::{lock, Inner};
use crate::outbuf::PREALLOC_BYTES;
use crate::state::Core;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A database latched by a full disk measures the free space again at most
/// this often (on a write attempt).
pub const FULL_RETRY_MS: u64 = 1000;

/// Room beyond the buffered records that resuming asks for: a checkpoint's
/// metadata and table pages, and a rollover's new file.
pub const FULL_HEADROOM_BYTES: u64 = 1 << 20;

impl Error {
    /// True for a write (not an fsync) that found no space (ENOSPC,
    /// EDQUOT), and for the refusals a full disk causes.
    pub fn is_disk_full(&self) -> bool {
        let (context, source) = match self {
            Error::Io { context, source } => (context, source),
            Error::DiskFull { .. } => return true,
            _ => return false,
        };
        let full = matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
        full && !context.contains("fsync") && !context.contains("fdatasync")
    }
}

impl Core {
    /// Bytes the database must write before it can take writes again: the
    /// buffered records, the zeros written ahead of them, the table entries
    /// a checkpoint writes, and `FULL_HEADROOM_BYTES`.
    pub(crate) fn space_needed(&self) -> u64 {
        let prealloc = if self.log.prealloc { PREALLOC_BYTES } else { 0 };
        let tables = self.lookup.dirty() as u64 * crate::limits::KEYSIZE_DEFAULT as u64
            + self.keys.pending_len() as u64 * crate::limits::SLOT_BYTES as u64;
        self.log.unwritten() as u64 + prealloc as u64 + tables + FULL_HEADROOM_BYTES
    }
}

/// Bytes available to an unprivileged process on the filesystem that holds
/// `dir` (`u64::MAX` if statvfs fails: then nothing waits for room, and the
/// writes themselves tell).
pub(crate) fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return u64::MAX;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is NUL-terminated and `st` is a statvfs to fill.
    if unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return u64::MAX;
    }
    // SAFETY: statvfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // (u32 on 32-bit targets.)
    #[allow(clippy::unnecessary_cast)]
    (st.f_bavail as u64).saturating_mul(st.f_frsize as u64)
}

impl Inner {
    /// True if a full disk holds the read-only latch (nothing worse).
    pub(crate) fn full_disk(&self) -> bool {
        self.read_only.load(Ordering::Acquire) && lock(&self.full).resumable
    }

    /// True if the read-only latch is set (whatever set it).
    pub(crate) fn full_disk_latched(&self) -> bool {
        self.read_only.load(Ordering::Acquire)
    }

    /// The error writes get while the latch holds.
    pub(crate) fn writable_error(&self) -> Error {
        if lock(&self.full).resumable {
            return self.full_error();
        }
        let cause = lock(&self.failure).clone().unwrap_or_default();
        Error::ReadOnly { cause }
    }

    /// Latches read-only until a reopen, whatever `e` is (half an atomic
    /// batch is in the log: only a reopen, which cuts it, may go on).
    pub(crate) fn fail_for_good(&self, e: &Error) {
        let mut f = lock(&self.failure);
        let mut full = lock(&self.full);
        if f.is_none() || full.resumable {
            log::error!(
                "{}: half an atomic batch is in the log: stopping writes until it is reopened: \
                 {e}",
                self.dir.display()
            );
            *f = Some(format!("half an atomic batch is in the log after: {e}"));
        }
        full.resumable = false;
        self.read_only.store(true, Ordering::Release);
    }

    /// Lifts the read-only latch a full disk set (it has room again); false
    /// if something worse latched it meanwhile.
    pub(crate) fn clear_failure(&self) -> bool {
        let mut f = lock(&self.failure);
        let mut full = lock(&self.full);
        if !full.resumable {
            return false;
        }
        full.resumable = false;
        *f = None;
        self.read_only.store(false, Ordering::Release);
        true
    }

    /// The error a write gets while a full disk holds the latch.
    pub(crate) fn full_error(&self) -> Error {
        let cause = lock(&self.failure).clone().unwrap_or_default();
        let full = lock(&self.full);
        Error::DiskFull {
            dir: self.dir.clone(),
            free: full.free,
            needed: full.needed,
            cause,
        }
    }

    /// On a database latched by a full disk: measures the free space (at
    /// most once per `FULL_RETRY_MS`) and, if it covers what is needed,
    /// writes out what is buffered and lifts the latch. `Err` while the
    /// latch holds.
    pub(crate) fn resume_if_room(&self) -> Result<()> {
        // One thread resumes; the others are refused meanwhile.
        let Ok(_one) = self.resuming.try_lock() else {
            return Err(self.full_error());
        };
        {
            let mut full = lock(&self.full);
            let retry = Duration::from_millis(FULL_RETRY_MS);
            if full.last_try.is_some_and(|t| t.elapsed() < retry) {
                drop(full);
                return Err(self.full_error());
            }
            full.last_try = Some(Instant::now());
        }
        // (Not under `full`: `Db::stats` takes it under the read lock.)
        let needed = self.read().space_needed();
        let free = free_bytes(&self.dir);
        {
            let mut full = lock(&self.full);
            (full.free, full.needed) = (free, needed);
        }
        if free < needed {
            return Err(self.full_error());
        }
        let resumed = (self.sync_active()).and_then(|_| self.checkpoint(true));
        if let Err(e) = resumed {
            self.fail(&e);
            return Err(self.writable_error());
        }
        let free = free_bytes(&self.dir);
        if !self.clear_failure() {
            return Err(self.writable_error());
        }
        log::info!(
            "{}: {free} bytes free on its disk: writes resume",
            self.dir.display()
        );
        Ok(())
    }

    /// Whether the disk has the space a compaction may need: what resuming
    /// needs (`space_needed`, the headroom included) plus its output, the
    /// live records times the versions kept (at most the data files).
    pub(crate) fn compaction_room(&self) -> Result<()> {
        let versions = self.opts.history.max(1) as u64;
        let needed = {
            let core = self.read();
            let output = core.live_bytes.saturating_mul(versions);
            core.space_needed() + output.min(core.log.data_bytes())
        };
        let free = free_bytes(&self.dir);
        {
            let mut full = lock(&self.full);
            full.free = free;
            full.needed = full.needed.min(needed);
        }
        if free >= needed {
            return Ok(());
        }
        Err(Error::CompactionNeedsSpace {
            dir: self.dir.clone(),
            free,
            needed,
        })
    }

    /// (bytes free, bytes needed) while a full disk holds the latch.
    pub(crate) fn full_disk_figures(&self) -> Option<(u64, u64)> {
        let full = lock(&self.full);
        (full.resumable && self.full_disk_latched()).then_some((full.free, full.needed))
    }

    /// Lets the next write attempt measure the free space at once (after a
    /// compaction freed some).
    pub(crate) fn retry_full_now(&self) {
        lock(&self.full).last_try = None;
    }
}
