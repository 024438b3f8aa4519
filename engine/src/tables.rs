//! Fixed headers: data-file header, table header (lookup table, key index),
//! key-index slots, the checkpoint (`meta`) and the compaction marker
//! (`COMPACT`). See `FORMAT.md`.

use crate::error::CodecError;
use crate::limits::{
    FILE_HEADER_BYTES, META_BYTES, META_BYTES_V1, META_BYTES_V2, SLOT_BYTES, TABLE_HEADER_BYTES,
    VOTE_BYTES,
};
use crate::location::{check_keysize, Location};
use crate::record::Seq;
use alloc::vec::Vec;

/// Version of the table headers and the compaction marker.
pub const FORMAT_VERSION: u16 = 1;
/// Version of the data files written now: 2, whose records may carry the
/// optional fields of format revision 2 (`record.rs`). Version 1 files
/// (records without them) are still read.
pub const DATA_VERSION: u16 = 2;
/// Magic of a data file.
pub const DATA_MAGIC: [u8; 8] = *b"HYPHADB\0";
/// Magic of the lookup table.
pub const LOOKUP_MAGIC: [u8; 8] = *b"HYPHALK\0";
/// Magic of the key index.
pub const INDEX_MAGIC: [u8; 8] = *b"HYPHAIX\0";
/// Magic of the checkpoint.
pub const META_MAGIC: [u8; 8] = *b"HYPHAMT\0";

pub(crate) fn crc(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    h.finalize()
}
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}
pub(crate) fn check_crc(b: &[u8], at: usize) -> Result<(), CodecError> {
    let expected = u32_at(b, at);
    let actual = crc(&b[..at]);
    if expected == actual {
        Ok(())
    } else {
        Err(CodecError::BadCrc { expected, actual })
    }
}
pub(crate) fn check_magic_version(
    b: &[u8],
    magic: &[u8; 8],
    what: &'static str,
) -> Result<(), CodecError> {
    if &b[0..8] != magic {
        return Err(CodecError::BadMagic { what });
    }
    match u16_at(b, 8) {
        FORMAT_VERSION => Ok(()),
        found => Err(CodecError::BadVersion { what, found }),
    }
}

// Data-file header:
//   0 magic[8] | 8 version u16 | 10 file_no u16 | 12 reserved u32
//  16 first_seq u64 | 24 prev_len u32 (version 2; reserved 0 in 1)
//  28 crc32 of 0..28
const FH_FILE_NO: usize = 10;
const FH_FIRST_SEQ: usize = 16;
const FH_PREV_LEN: usize = 24;
const FH_CRC: usize = 28;
const _: () = assert!(FH_CRC + 4 == FILE_HEADER_BYTES);

/// Header of data file `N.db`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// 1 (format 1) or [`DATA_VERSION`].
    pub version: u16,
    /// The file's number (its name).
    pub file_no: u16,
    /// No record in this file has a seq below this.
    pub first_seq: Seq,
    /// For a file a rollover created: the length of the file it sealed,
    /// which was synced before anything in this one was acknowledged; a
    /// shorter file before it means that file lost its tail in a power cut
    /// (recovery ends the log there). 0: not known (format 1, compaction
    /// output, the first file).
    pub prev_len: u32,
}

impl FileHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; FILE_HEADER_BYTES] {
        let mut b = [0u8; FILE_HEADER_BYTES];
        b[0..8].copy_from_slice(&DATA_MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[FH_FILE_NO..FH_FILE_NO + 2].copy_from_slice(&self.file_no.to_le_bytes());
        b[FH_FIRST_SEQ..FH_FIRST_SEQ + 8].copy_from_slice(&self.first_seq.to_le_bytes());
        b[FH_PREV_LEN..FH_PREV_LEN + 4].copy_from_slice(&self.prev_len.to_le_bytes());
        let c = crc(&b[..FH_CRC]);
        b[FH_CRC..].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Decodes and checks a header; `Ok(None)` if `b` is too short.
    pub fn decode(b: &[u8]) -> Result<Option<FileHeader>, CodecError> {
        if b.len() < FILE_HEADER_BYTES {
            return Ok(None);
        }
        if b[0..8] != DATA_MAGIC {
            return Err(CodecError::BadMagic {
                what: "data file header",
            });
        }
        let version = u16_at(b, 8);
        if version != 1 && version != DATA_VERSION {
            return Err(CodecError::BadVersion {
                what: "data file header",
                found: version,
            });
        }
        check_crc(b, FH_CRC)?;
        Ok(Some(FileHeader {
            version,
            file_no: u16_at(b, FH_FILE_NO),
            first_seq: u64_at(b, FH_FIRST_SEQ),
            prev_len: u32_at(b, FH_PREV_LEN),
        }))
    }
}

// Table header (lookup.tbl and keys.idx):
//   0 magic[8] | 8 version u16 | 10 width u8 | 11 reserved u8 | 12 reserved u32
//  16 seed u64 | 24 reserved u32 | 28 crc32 of 0..28
const TH_WIDTH: usize = 10;
const TH_SEED: usize = 16;
const TH_CRC: usize = 28;
const _: () = assert!(TH_CRC + 4 == TABLE_HEADER_BYTES);

/// Header of the lookup table (width = keysize, seed = 0) or of the key index
/// (width = `SLOT_BYTES`, seed = the database's hash seed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableHeader {
    /// Bytes per entry.
    pub width: u8,
    /// Hash seed of the key index; 0 in the lookup table.
    pub seed: u64,
}

impl TableHeader {
    /// Encodes the header with `magic` (`LOOKUP_MAGIC` or `INDEX_MAGIC`).
    pub fn encode(&self, magic: &[u8; 8]) -> [u8; TABLE_HEADER_BYTES] {
        let mut b = [0u8; TABLE_HEADER_BYTES];
        b[0..8].copy_from_slice(magic);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[TH_WIDTH] = self.width;
        b[TH_SEED..TH_SEED + 8].copy_from_slice(&self.seed.to_le_bytes());
        let c = crc(&b[..TH_CRC]);
        b[TH_CRC..].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Decodes and checks a header.
    pub fn decode(
        b: &[u8],
        magic: &[u8; 8],
        what: &'static str,
    ) -> Result<TableHeader, CodecError> {
        if b.len() < TABLE_HEADER_BYTES {
            return Err(CodecError::TooLong {
                what,
                len: b.len() as u64,
                max: TABLE_HEADER_BYTES as u64,
            });
        }
        check_magic_version(b, magic, what)?;
        check_crc(b, TH_CRC)?;
        Ok(TableHeader {
            width: b[TH_WIDTH],
            seed: u64_at(b, TH_SEED),
        })
    }
}

/// Encodes a key-index slot: key hash (0 = empty) and id.
pub fn encode_slot(hash: u64, id: u32) -> [u8; SLOT_BYTES] {
    let mut b = [0u8; SLOT_BYTES];
    b[0..8].copy_from_slice(&hash.to_le_bytes());
    b[8..12].copy_from_slice(&id.to_le_bytes());
    b
}

/// Decodes a key-index slot: (hash, id); hash 0 is an empty slot.
pub fn decode_slot(b: &[u8]) -> (u64, u32) {
    (u64_at(b, 0), u32_at(b, 8))
}

// Checkpoint (meta):
//   0 magic[8] | 8 version u16 | 10 keysize u8 | 11 flags u8 (bit 0: incremental)
//  12 file_size u32 | 16 history_id u64 | 24 hash_seed u64
//  32 ckpt_file u16 | 34 reserved u16 | 36 ckpt_offset u32 | 40 seq u64
//  48 next_id u32 | 52 reserved u32 | 56 live u64 | 64 digest u64
//  72 index_used u64 | 80 index_slots u64 | 88 reserved u32 | 92 crc32 of 0..92
const M_KEYSIZE: usize = 10;
const M_FLAGS: usize = 11;
const M_FILE_SIZE: usize = 12;
const M_HISTORY: usize = 16;
const M_SEED: usize = 24;
const M_CKPT_FILE: usize = 32;
const M_CKPT_OFFSET: usize = 36;
const M_SEQ: usize = 40;
const M_NEXT_ID: usize = 48;
const M_LIVE: usize = 56;
const M_DIGEST: usize = 64;
const M_INDEX_USED: usize = 72;
const M_INDEX_SLOTS: usize = 80;
const M_CRC_V1: usize = 92;
// Version 2 appends the compaction fields; bytes 0..88 are as in version 1.
const M_COMPACT_SEQ: usize = 88;
const M_HORIZON: usize = 96;
const M_LIVE_BYTES: usize = 104;
const M_FILE_COUNT: usize = 112;
const M_COMPACT_ID: usize = 116;
const M_CRC_V2: usize = 124;
// Version 3 (format revision 2) appends last_term; bytes 0..124 are as in
// version 2.
const M_LAST_TERM: usize = 124;
const M_CRC: usize = 132;
const _: () = assert!(M_CRC_V1 + 4 == META_BYTES_V1);
const _: () = assert!(M_CRC_V2 + 4 == META_BYTES_V2);
const _: () = assert!(M_CRC + 4 == META_BYTES);

/// Version of the checkpoint written now (3: format revision 2, with the
/// last record's term); versions 1 and 2 are still read. A release that
/// knows only version 2 refuses a database this one opened, before it could
/// misread a record with optional fields.
pub const META_VERSION: u16 = 3;

/// The checkpoint: everything before `ckpt` is reflected in the lookup table
/// and key index on disk, and the counters are as of `ckpt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Lookup entry width.
    pub keysize: u8,
    /// Ids assigned by the engine from 1 upward.
    pub incremental: bool,
    /// Data-file rollover size.
    pub file_size: u32,
    /// Random id of this database's history (replication compares it).
    pub history_id: u64,
    /// Seed of the key-index hash.
    pub hash_seed: u64,
    /// Log position up to which the tables are complete.
    pub ckpt: Location,
    /// Highest seq at `ckpt`.
    pub seq: Seq,
    /// Next id incremental mode assigns.
    pub next_id: u32,
    /// Live entries.
    pub live: u64,
    /// Content digest.
    pub digest: u64,
    /// Used key-index slots.
    pub index_used: u64,
    /// Key-index slot count.
    pub index_slots: u64,
    /// Records with a seq up to this were rewritten by the last compaction
    /// (0: never compacted).
    pub compact_seq: Seq,
    /// Highest seq of a delete that compaction dropped: a replica that has
    /// applied less than this must take a snapshot.
    pub tombstone_horizon: Seq,
    /// Bytes of the newest records that hold values (`None` when read from a
    /// version-1 checkpoint: recomputed at open).
    pub live_bytes: Option<u64>,
    /// Data files in log order up to and including `ckpt.file` (0: unknown,
    /// version 1).
    pub file_count: u32,
    /// Random id of the last compaction whose final checkpoint this is (or
    /// follows); 0: none.
    pub compact_id: u64,
    /// Term of the newest record at `ckpt` (0 before version 3).
    pub last_term: u64,
}

impl Meta {
    /// Encodes the checkpoint.
    pub fn encode(&self) -> [u8; META_BYTES] {
        let mut b = [0u8; META_BYTES];
        b[0..8].copy_from_slice(&META_MAGIC);
        b[8..10].copy_from_slice(&META_VERSION.to_le_bytes());
        b[M_KEYSIZE] = self.keysize;
        b[M_FLAGS] = self.incremental as u8;
        b[M_FILE_SIZE..M_FILE_SIZE + 4].copy_from_slice(&self.file_size.to_le_bytes());
        b[M_HISTORY..M_HISTORY + 8].copy_from_slice(&self.history_id.to_le_bytes());
        b[M_SEED..M_SEED + 8].copy_from_slice(&self.hash_seed.to_le_bytes());
        b[M_CKPT_FILE..M_CKPT_FILE + 2].copy_from_slice(&self.ckpt.file.to_le_bytes());
        b[M_CKPT_OFFSET..M_CKPT_OFFSET + 4].copy_from_slice(&self.ckpt.offset.to_le_bytes());
        b[M_SEQ..M_SEQ + 8].copy_from_slice(&self.seq.to_le_bytes());
        b[M_NEXT_ID..M_NEXT_ID + 4].copy_from_slice(&self.next_id.to_le_bytes());
        b[M_LIVE..M_LIVE + 8].copy_from_slice(&self.live.to_le_bytes());
        b[M_DIGEST..M_DIGEST + 8].copy_from_slice(&self.digest.to_le_bytes());
        b[M_INDEX_USED..M_INDEX_USED + 8].copy_from_slice(&self.index_used.to_le_bytes());
        b[M_INDEX_SLOTS..M_INDEX_SLOTS + 8].copy_from_slice(&self.index_slots.to_le_bytes());
        b[M_COMPACT_SEQ..M_COMPACT_SEQ + 8].copy_from_slice(&self.compact_seq.to_le_bytes());
        b[M_HORIZON..M_HORIZON + 8].copy_from_slice(&self.tombstone_horizon.to_le_bytes());
        let live_bytes = self.live_bytes.unwrap_or(u64::MAX);
        b[M_LIVE_BYTES..M_LIVE_BYTES + 8].copy_from_slice(&live_bytes.to_le_bytes());
        b[M_FILE_COUNT..M_FILE_COUNT + 4].copy_from_slice(&self.file_count.to_le_bytes());
        b[M_COMPACT_ID..M_COMPACT_ID + 8].copy_from_slice(&self.compact_id.to_le_bytes());
        b[M_LAST_TERM..M_LAST_TERM + 8].copy_from_slice(&self.last_term.to_le_bytes());
        let c = crc(&b[..M_CRC]);
        b[M_CRC..].copy_from_slice(&c.to_le_bytes());
        b
    }

    /// Decodes and checks a checkpoint.
    pub fn decode(b: &[u8]) -> Result<Meta, CodecError> {
        if b.len() < 10 || b[0..8] != META_MAGIC {
            return Err(CodecError::BadMagic { what: "meta" });
        }
        let version = u16_at(b, 8);
        let (len, crc_at) = match version {
            1 => (META_BYTES_V1, M_CRC_V1),
            2 => (META_BYTES_V2, M_CRC_V2),
            META_VERSION => (META_BYTES, M_CRC),
            found => {
                return Err(CodecError::BadVersion {
                    what: "meta",
                    found,
                })
            }
        };
        if b.len() != len {
            return Err(CodecError::TooLong {
                what: "meta",
                len: b.len() as u64,
                max: len as u64,
            });
        }
        check_crc(b, crc_at)?;
        let keysize = b[M_KEYSIZE];
        check_keysize(keysize)?;
        if b[M_FLAGS] > 1 {
            return Err(CodecError::BadField { what: "meta flags" });
        }
        let slots = u64_at(b, M_INDEX_SLOTS);
        if !slots.is_power_of_two() {
            return Err(CodecError::BadField {
                what: "meta index_slots (not a power of two)",
            });
        }
        let v2 = version >= 2;
        let field = |at: usize| if v2 { u64_at(b, at) } else { 0 };
        let live_bytes = match field(M_LIVE_BYTES) {
            _ if !v2 => None,
            u64::MAX => None,
            n => Some(n),
        };
        Ok(Meta {
            keysize,
            incremental: b[M_FLAGS] == 1,
            file_size: u32_at(b, M_FILE_SIZE),
            history_id: u64_at(b, M_HISTORY),
            hash_seed: u64_at(b, M_SEED),
            ckpt: Location {
                file: u16_at(b, M_CKPT_FILE),
                offset: u32_at(b, M_CKPT_OFFSET),
            },
            seq: u64_at(b, M_SEQ),
            next_id: u32_at(b, M_NEXT_ID),
            live: u64_at(b, M_LIVE),
            digest: u64_at(b, M_DIGEST),
            index_used: u64_at(b, M_INDEX_USED),
            index_slots: slots,
            compact_seq: field(M_COMPACT_SEQ),
            tombstone_horizon: field(M_HORIZON),
            live_bytes,
            file_count: if v2 { u32_at(b, M_FILE_COUNT) } else { 0 },
            compact_id: field(M_COMPACT_ID),
            last_term: if version >= 3 {
                u64_at(b, M_LAST_TERM)
            } else {
                0
            },
        })
    }
}

// Compaction marker (COMPACT):
//   0 magic[8] | 8 version u16 | 10 old count u16 | 12 new count u16
//  14 reserved u16 | 16 compact_seq u64 | 24 tombstone_horizon u64
//  32 compact_id u64 | 40 next_id u32 | 44 reserved u32
//  48 old file numbers u16 each, then the new ones | crc32 of all before
const CM_VERSION: usize = 8;
const CM_OLD_COUNT: usize = CM_VERSION + 2;
const CM_NEW_COUNT: usize = CM_OLD_COUNT + 2;
const CM_COMPACT_SEQ: usize = CM_NEW_COUNT + 2 + 2;
const CM_HORIZON: usize = CM_COMPACT_SEQ + 8;
const CM_COMPACT_ID: usize = CM_HORIZON + 8;
const CM_NEXT_ID: usize = CM_COMPACT_ID + 8;
/// Bytes of the marker before the file numbers.
pub const MARKER_FIXED_BYTES: usize = CM_NEXT_ID + 4 + 4;
const _: () = assert!(MARKER_FIXED_BYTES == 48);

/// Magic of the compaction marker.
pub const MARKER_MAGIC: [u8; 8] = *b"HYPHACP\0";
/// Version of the compaction marker.
pub const MARKER_VERSION: u16 = 1;

/// The commit marker of a compaction: which files it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Records with a seq up to this were rewritten.
    pub compact_seq: Seq,
    /// Highest seq of a delete the compaction dropped (or the previous
    /// horizon).
    pub tombstone_horizon: Seq,
    /// Random, names this compaction: its final checkpoint records it.
    pub compact_id: u64,
    /// Next id at the seal: no id a dropped record had is issued again.
    pub next_id: u32,
    /// Numbers of the data files compacted (removed).
    pub old: Vec<u16>,
    /// Numbers of the data files written.
    pub new: Vec<u16>,
}

impl Marker {
    /// Encodes the marker.
    pub fn encode(&self) -> Vec<u8> {
        let numbers = 2 * (self.old.len() + self.new.len());
        let mut b = Vec::with_capacity(MARKER_FIXED_BYTES + numbers + 4);
        b.extend_from_slice(&MARKER_MAGIC);
        b.extend_from_slice(&MARKER_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.old.len() as u16).to_le_bytes());
        b.extend_from_slice(&(self.new.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.compact_seq.to_le_bytes());
        b.extend_from_slice(&self.tombstone_horizon.to_le_bytes());
        b.extend_from_slice(&self.compact_id.to_le_bytes());
        b.extend_from_slice(&self.next_id.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        debug_assert_eq!(b.len(), MARKER_FIXED_BYTES);
        for n in self.old.iter().chain(&self.new) {
            b.extend_from_slice(&n.to_le_bytes());
        }
        let c = crc(&b);
        b.extend_from_slice(&c.to_le_bytes());
        b
    }

    /// Decodes and checks a marker.
    pub fn decode(b: &[u8]) -> Result<Marker, CodecError> {
        let what = "compaction marker";
        if b.len() < MARKER_FIXED_BYTES + 4 || b[..8] != MARKER_MAGIC {
            return Err(CodecError::BadMagic { what });
        }
        let version = u16_at(b, CM_VERSION);
        if version != MARKER_VERSION {
            return Err(CodecError::BadVersion {
                what,
                found: version,
            });
        }
        let n_old = u16_at(b, CM_OLD_COUNT) as usize;
        let n_new = u16_at(b, CM_NEW_COUNT) as usize;
        let len = MARKER_FIXED_BYTES + 2 * (n_old + n_new) + 4;
        if b.len() != len {
            return Err(CodecError::BadField {
                what: "compaction marker length",
            });
        }
        check_crc(b, len - 4)?;
        let numbers: Vec<u16> = (0..n_old + n_new)
            .map(|i| u16_at(b, MARKER_FIXED_BYTES + 2 * i))
            .collect();
        Ok(Marker {
            compact_seq: u64_at(b, CM_COMPACT_SEQ),
            tombstone_horizon: u64_at(b, CM_HORIZON),
            compact_id: u64_at(b, CM_COMPACT_ID),
            next_id: u32_at(b, CM_NEXT_ID),
            old: numbers[..n_old].to_vec(),
            new: numbers[n_old..].to_vec(),
        })
    }
}

// Small records (`vote`, `TRUNCATE`), `SMALL_BYTES` each:
//   0 magic[8] | 8 version u16 | 10 reserved u16 | 12 reserved u32
//  16 a u64 | 24 b u32 | 28 crc32 of 0..28
const S_A: usize = 16;
const S_B: usize = 24;
const S_CRC: usize = 28;
const SMALL_BYTES: usize = 32;
const _: () = assert!(S_CRC + 4 == SMALL_BYTES);
const _: () = assert!(VOTE_BYTES == SMALL_BYTES);

/// Encodes a small record: `magic`, the version, `a` and `b`, a CRC.
fn small_encode(magic: &[u8; 8], a: u64, b: u32) -> [u8; SMALL_BYTES] {
    let mut out = [0u8; SMALL_BYTES];
    out[0..8].copy_from_slice(magic);
    out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[S_A..S_A + 8].copy_from_slice(&a.to_le_bytes());
    out[S_B..S_B + 4].copy_from_slice(&b.to_le_bytes());
    let c = crc(&out[..S_CRC]);
    out[S_CRC..].copy_from_slice(&c.to_le_bytes());
    out
}

/// Decodes and checks a small record: `(a, b)`.
fn small_decode(b: &[u8], magic: &[u8; 8], what: &'static str) -> Result<(u64, u32), CodecError> {
    if b.len() != SMALL_BYTES {
        return Err(CodecError::TooLong {
            what,
            len: b.len() as u64,
            max: SMALL_BYTES as u64,
        });
    }
    check_magic_version(b, magic, what)?;
    check_crc(b, S_CRC)?;
    if b[10..S_A].iter().any(|&x| x != 0) {
        return Err(CodecError::BadField { what });
    }
    Ok((u64_at(b, S_A), u32_at(b, S_B)))
}

/// Magic of the vote file.
pub const VOTE_MAGIC: [u8; 8] = *b"HYPHAVT\0";

/// A failover member's term and the member it voted for in it (`vote`: a
/// small record, a = term, b = voted_for + 1, 0 for none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vote {
    /// The member's current term.
    pub term: u64,
    /// The member it voted for in `term` (its index in the member list).
    pub voted_for: Option<u32>,
}

impl Vote {
    /// Encodes the vote file.
    pub fn encode(&self) -> [u8; VOTE_BYTES] {
        let voted = self.voted_for.map_or(0, |m| m.saturating_add(1));
        small_encode(&VOTE_MAGIC, self.term, voted)
    }

    /// Decodes and checks the vote file.
    pub fn decode(b: &[u8]) -> Result<Vote, CodecError> {
        let (term, voted) = small_decode(b, &VOTE_MAGIC, "vote")?;
        Ok(Vote {
            term,
            voted_for: voted.checked_sub(1),
        })
    }
}

/// Magic of the truncation marker.
pub const TRUNCATE_MAGIC: [u8; 8] = *b"HYPHATR\0";
/// Bytes of the truncation marker.
pub const TRUNCATE_BYTES: usize = SMALL_BYTES;

/// A requested cut of the log after seq `after` (a rejoining member), done
/// by the next open (`TRUNCATE`: a small record, a = after, b = 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TruncateMarker {
    /// The last seq kept.
    pub after: Seq,
}

impl TruncateMarker {
    /// Encodes the marker.
    pub fn encode(&self) -> [u8; TRUNCATE_BYTES] {
        small_encode(&TRUNCATE_MAGIC, self.after, 0)
    }

    /// Decodes and checks the marker.
    pub fn decode(b: &[u8]) -> Result<TruncateMarker, CodecError> {
        match small_decode(b, &TRUNCATE_MAGIC, "truncation marker")? {
            (after, 0) => Ok(TruncateMarker { after }),
            _ => Err(CodecError::BadField {
                what: "truncation marker",
            }),
        }
    }
}

#[cfg(test)]
mod tests;
