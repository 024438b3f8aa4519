//! Errors of the encoding core ([`CodecError`]) and of the database ([`Error`]).

use core::fmt;

/// Bytes read from disk that fail a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// A magic number is wrong: this is not the structure it should be.
    BadMagic {
        /// Which structure.
        what: &'static str,
    },
    /// The stored CRC does not match the bytes.
    BadCrc {
        /// CRC stored on disk.
        expected: u32,
        /// CRC of the bytes read.
        actual: u32,
    },
    /// A record kind byte that is neither put nor delete.
    BadKind(u8),
    /// A length field beyond its limit.
    TooLong {
        /// Which field.
        what: &'static str,
        /// The length read.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A field holds a value the format does not allow.
    BadField {
        /// Which field.
        what: &'static str,
    },
    /// A format version this build does not read.
    BadVersion {
        /// Which structure.
        what: &'static str,
        /// The version found.
        found: u16,
    },
    /// A keysize other than 2, 3, 4 or 6.
    BadKeysize(u8),
    /// A well-formed structure this release cannot apply (a newer hypha
    /// wrote it): never cut or skipped.
    Unsupported {
        /// What it is.
        what: &'static str,
    },
    /// A location that the lookup entry width cannot hold.
    LocationDoesNotFit {
        /// Entry width in bytes.
        keysize: u8,
        /// File number.
        file: u16,
        /// Offset.
        offset: u32,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CodecError::BadMagic { what } => write!(f, "bad magic number in {what}"),
            CodecError::BadCrc { expected, actual } => {
                write!(
                    f,
                    "CRC mismatch: stored {expected:#010x}, computed {actual:#010x}"
                )
            }
            CodecError::BadKind(k) => {
                write!(f, "record kind {k} is neither put (1) nor delete (2)")
            }
            CodecError::Unsupported { what } => {
                write!(f, "{what}, which this release cannot apply")
            }
            CodecError::TooLong { what, len, max } => {
                write!(f, "{what} length {len} exceeds {max}")
            }
            CodecError::BadField { what } => write!(f, "invalid {what}"),
            CodecError::BadVersion { what, found } => {
                write!(
                    f,
                    "{what} has format version {found}, which this build does not read"
                )
            }
            CodecError::BadKeysize(k) => {
                write!(f, "keysize {k} is not one of 2, 3, 4, 6 (KEYSIZES)")
            }
            CodecError::LocationDoesNotFit {
                keysize,
                file,
                offset,
            } => write!(
                f,
                "location file {file} offset {offset} does not fit a {keysize}-byte lookup entry; \
                 keysize 2/3/4 address only file 0 below 64 KiB/16 MiB/4 GiB: use keysize 6"
            ),
        }
    }
}

#[cfg(feature = "std")]
pub use self::std_error::Error;

#[cfg(feature = "std")]
mod std_error {
    use super::CodecError;
    use std::{fmt, io, path::PathBuf};

    /// What a database call can fail with.
    #[derive(Debug)]
    #[non_exhaustive]
    pub enum Error {
        /// An I/O call failed.
        Io {
            /// What the engine was doing.
            context: String,
            /// The OS error.
            source: io::Error,
        },
        /// A record or file failed its checks; the bytes are not returned.
        Corrupted {
            /// The file.
            file: PathBuf,
            /// Byte offset in it.
            offset: u64,
            /// What is wrong.
            cause: CodecError,
        },
        /// A key longer than `KEY_BYTES_MAX`.
        KeyTooLong {
            /// The key's length.
            len: usize,
        },
        /// A value longer than the database's `value_bytes_max`.
        ValueTooLong {
            /// The value's length.
            len: usize,
            /// The configured limit.
            max: usize,
        },
        /// A call that must not wait found it would have to: a bug in the
        /// engine, never a client's mistake (the `try_` calls answer
        /// `Ok(None)` instead).
        WouldBlock,
        /// The engine stopped accepting writes after a failed write or fsync.
        ReadOnly {
            /// The failure that stopped it.
            cause: String,
        },
        /// The disk holding the database is full: writes stop until it has
        /// room for what the database buffered, then resume by themselves.
        DiskFull {
            /// The database directory.
            dir: std::path::PathBuf,
            /// Bytes free on its filesystem at the last look.
            free: u64,
            /// Bytes it needs free to resume.
            needed: u64,
            /// The write that failed.
            cause: String,
        },
        /// A compaction would not fit in the free space.
        CompactionNeedsSpace {
            /// The database directory.
            dir: std::path::PathBuf,
            /// Bytes free on its filesystem.
            free: u64,
            /// Bytes the compaction may write.
            needed: u64,
        },
        /// An id outside what this database can address.
        IdOutOfRange {
            /// The id.
            id: u32,
            /// The highest id allowed.
            max: u32,
        },
        /// In incremental mode, `set` with an id that was never assigned.
        IdNotAssigned {
            /// The id.
            id: u32,
            /// The next id incremental mode would assign.
            next: u32,
        },
        /// `set(None, …)` on a database in caller-chosen-id mode, or
        /// `next_id` there.
        NotIncremental,
        /// The id belongs to a key of the key API; write it by key.
        IdHasKey {
            /// The id.
            id: u32,
        },
        /// No more data can be addressed: keysize 2/3/4 hold one data file,
        /// or all 65536 files are used.
        Full {
            /// Why.
            reason: String,
        },
        /// A record does not fit in one data file.
        RecordTooLarge {
            /// Bytes of the record.
            len: usize,
            /// Bytes a data file holds after its header.
            room: usize,
        },
        /// An atomic batch larger than the engine takes in one piece
        /// (`BATCH_RECORDS_MAX` records, `BATCH_READ_BYTES_MAX` bytes read).
        BatchTooLarge {
            /// What is too large, and the limit.
            detail: String,
        },
        /// `apply` got a record that contradicts this database (the same key
        /// under another id): the replica followed a different history.
        Diverged {
            /// What disagrees.
            detail: String,
        },
        /// A record given to `apply` that no database could have written.
        InvalidRecord {
            /// What is wrong with it.
            detail: String,
        },
        /// A vote that would take back a term or a vote already persisted
        /// (`Db::set_vote`): a bug in the caller, refused.
        InvalidVote {
            /// The vote on disk and the one refused.
            detail: String,
        },
        /// Options that cannot work, or that contradict the database on disk.
        BadOptions {
            /// What to change.
            detail: String,
        },
        /// `read_from` asked for records some of which compaction removed
        /// (deletes with a seq above `after`): the reader needs a snapshot.
        Compacted {
            /// Where the reader wanted to start.
            after: u64,
            /// Highest seq of a delete compaction dropped.
            horizon: u64,
        },
        /// Another process has the database open.
        Locked {
            /// The database directory.
            dir: PathBuf,
        },
    }

    impl fmt::Display for Error {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Error::Io { context, source } => write!(f, "{context}: {source}"),
                Error::Corrupted {
                    file,
                    offset,
                    cause: cause @ CodecError::Unsupported { .. },
                } => write!(
                    f,
                    "{} at offset {offset} holds a {cause}; open the database with the hypha \
                     release that wrote it (nothing was changed)",
                    file.display()
                ),
                Error::Corrupted { file, offset, cause } => write!(
                    f,
                    "corrupt data in {} at offset {offset}: {cause}; the record is not returned",
                    file.display()
                ),
                Error::KeyTooLong { len } => write!(
                    f,
                    "key is {len} bytes; the limit is {} bytes: use a shorter key",
                    crate::limits::KEY_BYTES_MAX
                ),
                Error::ValueTooLong { len, max } => write!(
                    f,
                    "value is {len} bytes; the limit is {max} (value_bytes_max); raise the option \
                     or store the value in smaller pieces"
                ),
                Error::WouldBlock => write!(
                    f,
                    "internal error: a write was retried after it ran (please report it)"
                ),
                Error::ReadOnly { cause } => write!(
                    f,
                    "the database is read-only after a failed write or fsync ({cause}); \
                     writes since the last successful sync may be lost: fix the disk and reopen"
                ),
                Error::DiskFull {
                    dir,
                    free,
                    needed,
                    cause,
                } => write!(
                    f,
                    "the disk holding {} is full ({cause}): {free} bytes free at the last look, \
                     writes need at least {needed}; free space there (or compact, which needs the \
                     live data's size free) and writes resume by themselves; nothing acknowledged \
                     was lost, and a write that failed as the disk filled may still be applied",
                    dir.display()
                ),
                Error::CompactionNeedsSpace { dir, free, needed } => write!(
                    f,
                    "compacting {} needs up to {needed} bytes free on its disk (the buffered \
                     records, a copy of the live ones and headroom); {free} are free: free \
                     {} bytes and retry",
                    dir.display(),
                    needed.saturating_sub(*free)
                ),
                Error::IdOutOfRange { id, max } => {
                    write!(f, "id {id} is out of range: ids run from 1 to {max} (ids_max)")
                }
                Error::IdNotAssigned { id, next } => write!(
                    f,
                    "id {id} was never assigned; in incremental mode set(None, …) assigns ids \
                     (next is {next}) and set(Some(id), …) only updates"
                ),
                Error::NotIncremental => write!(
                    f,
                    "this database uses caller-chosen ids (incremental = false): pass an id"
                ),
                Error::IdHasKey { id } => {
                    write!(f, "id {id} belongs to a key of the key API; write it with put(key, …)")
                }
                Error::Full { reason } => write!(f, "database full: {reason}"),
                Error::RecordTooLarge { len, room } => write!(
                    f,
                    "record of {len} bytes does not fit in a data file ({room} bytes after the \
                     header): raise file_size"
                ),
                Error::BatchTooLarge { detail } => write!(f, "batch too large: {detail}"),
                Error::Diverged { detail } => write!(f, "replica diverged: {detail}"),
                Error::InvalidRecord { detail } => write!(f, "invalid record: {detail}"),
                Error::InvalidVote { detail } => write!(f, "vote refused: {detail}"),
                Error::BadOptions { detail } => write!(f, "bad options: {detail}"),
                Error::Compacted { after, horizon } => write!(
                    f,
                    "the log after seq {after} is no longer complete: compaction dropped deletes \
                     up to seq {horizon}; take a snapshot instead"
                ),
                Error::Locked { dir } => write!(
                    f,
                    "{} is in use by another process (its LOCK file is held); stop that process first",
                    dir.display()
                ),
            }
        }
    }

    impl std::error::Error for Error {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            match self {
                Error::Io { source, .. } => Some(source),
                _ => None,
            }
        }
    }

    /// Shorthand for results of database calls.
    pub type Result<T> = std::result::Result<T, Error>;

    pub(crate) trait IoContext<T> {
        fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
    }

    impl<T> IoContext<T> for io::Result<T> {
        fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
            self.map_err(|source| Error::Io {
                context: what(),
                source,
            })
        }
    }
}

#[cfg(feature = "std")]
pub(crate) use self::std_error::{IoContext, Result};
