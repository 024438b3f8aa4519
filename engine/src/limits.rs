//! Every limit and fixed size of the engine, in one place.
//!
//! Sizes of on-disk structures are part of the format (see `FORMAT.md`); the
//! others are defaults or tuning bounds. Relations between them are checked at
//! compile time below.

/// Bytes of the header at the start of every data file (`N.db`).
pub const FILE_HEADER_BYTES: usize = 32;
/// Bytes of the fixed header in front of every data record.
pub const RECORD_HEADER_BYTES: usize = 40;
/// Most bytes of optional fields after it (term, deadline, request id).
pub const RECORD_EXT_BYTES_MAX: usize = 32;
/// Bytes of the header at the start of `lookup.tbl` and `keys.idx`.
pub const TABLE_HEADER_BYTES: usize = 32;
/// Bytes of the checkpoint file `meta` (version 3).
pub const META_BYTES: usize = 136;
/// Bytes of a version-2 checkpoint, still read.
pub const META_BYTES_V2: usize = 128;
/// Bytes of a version-1 checkpoint, still read.
pub const META_BYTES_V1: usize = 96;
/// Bytes of the vote file `vote` (a failover member's term and vote).
pub const VOTE_BYTES: usize = 32;
/// Most entries of the term table `terms` (failover: where each of the
/// newest terms starts in the log). The wire's `TERMS_KEPT` is the same.
pub const TERMS_KEPT: usize = 32;
/// Bytes of the term table's head (magic, version, count, reserved).
pub const TERM_TABLE_HEAD_BYTES: usize = 16;
/// Bytes of one key-index slot: hash u64 + id u32.
pub const SLOT_BYTES: usize = 12;

/// Longest key the key API accepts.
pub const KEY_BYTES_MAX: usize = 4096;
/// Default for `Options::value_bytes_max`.
pub const VALUE_BYTES_MAX_DEFAULT: usize = 16 << 20;
/// Largest value limit a database can be configured with; the record length
/// fields are u32, and a record must fit in one data file.
pub const VALUE_BYTES_LIMIT: usize = 1 << 30;

/// Default size at which a data file rolls over to the next (`file_size`).
pub const FILE_SIZE_DEFAULT: u32 = 256 << 20;
/// Smallest `file_size` accepted.
pub const FILE_SIZE_MIN: u32 = 16 << 10;
/// Highest data-file number (the lookup entry stores it in a u16).
pub const FILE_NUMBER_MAX: u16 = u16::MAX;

/// Lookup-entry widths OurDB defines ("keysize"): 2, 3, 4 bytes address one
/// data file by offset; 6 bytes address file number (u16) and offset (u32).
pub const KEYSIZES: [u8; 4] = [2, 3, 4, 6];
/// Default keysize: many files, 4 GiB each.
pub const KEYSIZE_DEFAULT: u8 = 6;

/// Deepest history walk one call returns.
pub const HISTORY_DEPTH_MAX: usize = 4096;
/// Default for `Options::history`: compaction keeps the newest version of
/// each key only, so `history` reaches back to the last compaction.
pub const HISTORY_KEEP_DEFAULT: usize = 1;
/// Default for `Options::compact_garbage_percent`.
pub const COMPACT_GARBAGE_PERCENT_DEFAULT: u8 = 50;
/// Default for `Options::compact_min_bytes`.
pub const COMPACT_MIN_BYTES_DEFAULT: u64 = 64 << 20;

/// Most records one atomic batch may hold: recovery keeps a batch's
/// headers in memory until its last record, and cuts a longer run as
/// corrupt.
pub const BATCH_RECORDS_MAX: usize = 4096;

/// Most bytes of values one transaction's reads return (`Db::txn`, the
/// reads of a failed one): they are copied under the write lock.
pub const BATCH_READ_BYTES_MAX: usize = 16 << 20;

/// Most records a retried write's search for its request id examines
/// (`Db::put_once`): the search holds the write lock, so it is bounded; a
/// retry whose window is longer is answered `Once::Unknown`.
pub const REQUEST_SCAN_RECORDS_MAX: u64 = 1 << 16;

/// Fewest slots the key index starts with (a power of two).
pub const INDEX_SLOTS_MIN: u64 = 1 << 12;
/// The key index doubles before more than this percentage of slots is used.
pub const INDEX_LOAD_PERCENT_MAX: u64 = 70;

const _: () = assert!(
    FILE_HEADER_BYTES + RECORD_HEADER_BYTES + RECORD_EXT_BYTES_MAX + KEY_BYTES_MAX
        <= FILE_SIZE_MIN as usize
);
const _: () = assert!(FILE_HEADER_BYTES < FILE_SIZE_MIN as usize);
const _: () = assert!(VALUE_BYTES_MAX_DEFAULT <= VALUE_BYTES_LIMIT);
const _: () = assert!(
    VALUE_BYTES_LIMIT + KEY_BYTES_MAX + RECORD_HEADER_BYTES + RECORD_EXT_BYTES_MAX
        < u32::MAX as usize
);
const _: () = assert!(INDEX_SLOTS_MIN.is_power_of_two());
const _: () = assert!(INDEX_LOAD_PERCENT_MAX < 100);
const _: () = assert!(KEY_BYTES_MAX <= u16::MAX as usize);

/// Reading the log from a seq starts at most this many bytes before the
/// record it wants: iterators note the (offset, seq) of a record once per
/// this many bytes of each data file they pass (`seek::SeekMarks`), at most
/// `FILE_SIZE_DEFAULT / SEEK_MARK_STRIDE_BYTES` = 1,024 marks (16 KiB) per
/// file of the default size.
pub const SEEK_MARK_STRIDE_BYTES: u32 = 256 << 10;
/// An iterator skipping records below its seq releases the read lock after
/// this many, so that a reader seeking into a large file never holds
/// writers back for the whole file.
pub const SEEK_SKIP_RECORDS_PER_LOCK: usize = 4096;

/// The newest data file's mapping grows in steps of this many bytes (by
/// `mremap`, under the write lock), a step ahead of what is written, up to
/// `file_size`: an empty database maps 16 MiB, not the whole rollover size
/// (a worker installing a snapshot holds two databases open).
pub const NEWEST_MAP_STEP_BYTES: u32 = 16 << 20;

/// Bytes of sealed data files the engine keeps mapped at once by default
/// (`Options::sealed_map_bytes`). The newest file is mapped besides (at most
/// `file_size`), and a compaction maps one input file at a time: with the
/// lookup table and key index (about 23 bytes per id, see
/// `docs/design.md`, "Address space"), that bounds the engine's address
/// space whatever the size of its records. Reads of a sealed file beyond
/// the budget use `pread` until the least recently read files are
/// unmapped. 256 MiB on 32-bit targets (a MIPS process has 2 GiB of
/// address space); on 64-bit ones large enough that a database on one
/// device never reaches it.
pub const SEALED_MAP_BYTES_DEFAULT: u64 = if usize::BITS <= 32 {
    256 << 20
} else {
    64 << 30
};

/// A read of an unmapped sealed file reads this much at once (most records
/// fit; a longer one takes a second read).
pub const UNMAPPED_READ_BYTES: usize = 4 << 10;
