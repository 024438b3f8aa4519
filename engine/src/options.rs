//! How a database is opened: [`Options`] and the durability mode [`Fsync`].

use crate::error::{Error, Result};
use crate::io::{FileIo, RealIo};
use crate::limits::{
    COMPACT_GARBAGE_PERCENT_DEFAULT, COMPACT_MIN_BYTES_DEFAULT, FILE_SIZE_DEFAULT, FILE_SIZE_MIN,
    HISTORY_DEPTH_MAX, HISTORY_KEEP_DEFAULT, KEYSIZE_DEFAULT, SEALED_MAP_BYTES_DEFAULT,
    VALUE_BYTES_LIMIT, VALUE_BYTES_MAX_DEFAULT,
};
use crate::location::{check_keysize, offset_limit};
use std::sync::Arc;

/// When writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// A write returns after its bytes are fdatasync'ed; concurrent writers
    /// share one fdatasync (group commit).
    Always,
    /// A background thread writes and fdatasyncs every n milliseconds; a
    /// crash loses at most the last n ms of acknowledged writes.
    EveryMs(u32),
    /// Writes are buffered (up to `WRITE_BUFFER_BYTES`) and reach the disk
    /// at checkpoints, `sync()` and close; a crash loses what was not yet
    /// synced.
    Never,
}

/// How to open a database.
#[derive(Clone, Debug)]
pub struct Options {
    /// Lookup entry width: 2, 3, 4 (one data file of up to 64 KiB, 16 MiB,
    /// 4 GiB) or 6 (up to 65536 files). Fixed when the database is created.
    pub keysize: u8,
    /// Data-file rollover size in bytes. Fixed when the database is created.
    pub file_size: u32,
    /// `true`: ids are assigned from 1 upward (`set(None, …)`); `false`: the
    /// caller chooses every id. Fixed when the database is created.
    pub incremental: bool,
    /// Durability of writes.
    pub fsync: Fsync,
    /// Longest value accepted (default 16 MiB).
    pub value_bytes_max: usize,
    /// Highest id accepted.
    pub ids_max: u32,
    /// The file layer (fault injection in tests).
    pub io: Arc<dyn FileIo>,
    /// Versions of each key compaction keeps (the newest included; at
    /// least 1). `history` returns older versions only until a compaction.
    pub history: usize,
    /// Compact automatically (a background thread checks every
    /// `COMPACT_CHECK_MS`) when garbage is at least this percentage of the
    /// data files …
    pub compact_garbage_percent: u8,
    /// … and at least this many bytes.
    pub compact_min_bytes: u64,
    /// Run the background compaction thread.
    pub auto_compact: bool,
    /// Bytes of sealed data files kept mapped at once (see
    /// `SEALED_MAP_BYTES_DEFAULT`); reads beyond it use `pread`.
    pub sealed_map_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keysize: KEYSIZE_DEFAULT,
            file_size: FILE_SIZE_DEFAULT,
            incremental: true,
            fsync: Fsync::Always,
            value_bytes_max: VALUE_BYTES_MAX_DEFAULT,
            ids_max: u32::MAX - 1,
            io: Arc::new(RealIo),
            history: HISTORY_KEEP_DEFAULT,
            compact_garbage_percent: COMPACT_GARBAGE_PERCENT_DEFAULT,
            compact_min_bytes: COMPACT_MIN_BYTES_DEFAULT,
            auto_compact: true,
            sealed_map_bytes: SEALED_MAP_BYTES_DEFAULT,
        }
    }
}

impl Options {
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::BadOptions { detail });
        if let Err(e) = check_keysize(self.keysize) {
            return bad(e.to_string());
        }
        if self.file_size < FILE_SIZE_MIN {
            return bad(format!(
                "file_size {} is below {FILE_SIZE_MIN} (FILE_SIZE_MIN)",
                self.file_size
            ));
        }
        if let Some(limit) = offset_limit(self.keysize) {
            if self.file_size as u64 > limit {
                return bad(format!(
                    "keysize {} addresses offsets below {limit}; file_size {} is larger: lower it or raise keysize",
                    self.keysize, self.file_size
                ));
            }
        }
        if self.value_bytes_max > VALUE_BYTES_LIMIT {
            return bad(format!(
                "value_bytes_max {} exceeds {VALUE_BYTES_LIMIT} (VALUE_BYTES_LIMIT)",
                self.value_bytes_max
            ));
        }
        if self.ids_max == 0 || self.ids_max == u32::MAX {
            return bad(format!("ids_max must be between 1 and {}", u32::MAX - 1));
        }
        if let Fsync::EveryMs(0) = self.fsync {
            return bad("Fsync::EveryMs needs at least 1 ms; use Fsync::Always".into());
        }
        if self.history == 0 || self.history > HISTORY_DEPTH_MAX {
            return bad(format!(
                "history {} must be between 1 (only the newest version) and {HISTORY_DEPTH_MAX}",
                self.history
            ));
        }
        if self.compact_garbage_percent == 0 || self.compact_garbage_percent > 100 {
            return bad(format!(
                "compact_garbage_percent {} must be between 1 and 100",
                self.compact_garbage_percent
            ));
        }
        Ok(())
    }
}
