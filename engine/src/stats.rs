//! What the database reports: counters ([`Stats`]), a compaction's report
//! ([`CompactReport`]), versions of a key and pages of a scan.

use crate::record::Seq;

/// One version of a key or id, newest first in a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The seq of the mutation that made this version.
    pub seq: Seq,
    /// The value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// A page of keys from [`Db::scan`](crate::Db::scan).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Live keys, in id order.
    pub keys: Vec<Vec<u8>>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next_cursor: Option<u64>,
}

/// Counters of a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Highest seq.
    pub seq: Seq,
    /// Live entries (keys and ids).
    pub live: u64,
    /// Content digest.
    pub digest: u64,
    /// Bytes of data files and tables.
    pub disk_bytes: u64,
    /// Data files.
    pub files: u16,
    /// Next id incremental mode assigns.
    pub next_id: u32,
    /// Random id of this database's history.
    pub history_id: u64,
    /// Bytes of the newest records that hold values.
    pub live_bytes: u64,
    /// Bytes of the data files.
    pub data_bytes: u64,
    /// Compactions finished since open.
    pub compactions: u64,
    /// A compaction is running: input bytes examined and total.
    pub compacting: Option<(u64, u64)>,
    /// The last compaction since open.
    pub last_compaction: Option<CompactReport>,
    /// Highest seq of a delete compaction dropped: `read_from` below it
    /// fails with `Error::Compacted`.
    pub tombstone_horizon: Seq,
    /// Seq as of the last checkpoint: a crash now would replay the records
    /// after it.
    pub checkpoint_seq: Seq,
    /// Term of the newest record (0 before failover).
    pub last_term: u64,
    /// Longest hold of the write lock since open that the scheduler did not
    /// interrupt (blocking I/O under the lock counts), in microseconds
    /// (`None` unless built with the `lock-stats` feature).
    pub write_lock_hold_max_us: Option<u64>,
    /// Of those holds, how many took over 1 ms (the target; `None` without
    /// `lock-stats`).
    pub write_lock_holds_over_target: Option<u64>,
    /// Holds of the write lock during which the scheduler ran another thread
    /// on the holder's CPU, and the longest of them in microseconds (wall
    /// time, which the engine does not control; `None` without `lock-stats`).
    pub write_lock_preempted: Option<(u64, u64)>,
    /// Rollovers that had to run the previous rollover's fsyncs under the
    /// write lock because a data file filled before they ran.
    pub rollover_stalls: u64,
    /// Records log readers (followers, watchers) read and passed over to
    /// reach the seq they asked for: seek marks keep this within one
    /// `SEEK_MARK_STRIDE_BYTES` per seek.
    pub seek_skipped: u64,
    /// Bytes of sealed data files mapped now (at most
    /// `Options::sealed_map_bytes`; the newest file's mapping is not
    /// counted).
    pub sealed_mapped_bytes: u64,
    /// Reads of sealed files that found the mapping budget full and read
    /// with `pread` instead.
    pub unmapped_reads: u64,
    /// Writes are stopped by a full disk: (bytes free, bytes needed to
    /// resume) at the last look (see `Error::DiskFull`).
    pub disk_full: Option<(u64, u64)>,
}

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of data files and tables before.
    pub bytes_before: u64,
    /// Bytes of data files and tables after.
    pub bytes_after: u64,
    /// Data files compacted (removed).
    pub files_in: usize,
    /// Data files written.
    pub files_out: usize,
    /// Records copied.
    pub kept: u64,
    /// Records dropped (overwritten versions beyond `history`, deletes).
    pub dropped: u64,
    /// Deletes dropped.
    pub tombstones_dropped: u64,
    /// Records with a seq up to this were rewritten.
    pub compact_seq: Seq,
    /// Wall time in milliseconds.
    pub millis: u64,
}
