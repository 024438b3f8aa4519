//! Data records: the unit of the append-only data files.
//!
//! ```text
//! offset size field
//!      0    4 crc32      CRC-32 (IEEE) of bytes 4.., through the value
//!      4    2 magic      RECORD_MAGIC
//!      6    1 kind       1 = put, 2 = delete (tombstone), 3 = range delete
//!      7    1 flags      which optional fields follow; 0 in format 1
//!      8    2 key_len    0 for records of the id API
//!     10    2 prev_file  location of the previous version of this id
//!     12    4 value_len  0 for a delete
//!     16    4 id
//!     20    4 prev_offset (prev_file, prev_offset) = (0, 0): no previous version
//!     24    8 seq
//!     32    8 pair_hash  hash::pair_hash(key, id, value) of a put, 0 otherwise
//!     40      optional fields, in this order, each present iff its flag is:
//!        8   term        (FLAG_TERM) term of the master that wrote it, ≠ 0
//!        8   deadline    (FLAG_DEADLINE) expiry, ms since the Unix epoch, ≠ 0
//!       16   request_id  (FLAG_REQUEST) the client request that wrote it, ≠ 0
//!      then key bytes, then value bytes
//! ```
//! All integers little-endian. `FLAG_BATCH_MORE` (no field) marks every
//! record of an atomic batch but its last; `FLAG_REFRESH` (no field) a put
//! that only moved its key's deadline (it needs `FLAG_DEADLINE`). A delete
//! with a deadline is an expiry. A format-1 record is a format-2 record
//! with no flags: term 0, no deadline, no request id, no batch.

use crate::error::CodecError;
use crate::hash::pair_hash;
use crate::limits::{KEY_BYTES_MAX, RECORD_EXT_BYTES_MAX, RECORD_HEADER_BYTES, VALUE_BYTES_LIMIT};
use crate::location::Location;
use alloc::vec::Vec;

/// Marks the start of a record; lets recovery tell a record from zeros.
pub const RECORD_MAGIC: u16 = 0x4879; // "yH" on disk

const CRC: usize = 0;
const MAGIC: usize = CRC + 4;
const KIND: usize = MAGIC + 2;
const FLAGS: usize = KIND + 1;
const KEY_LEN: usize = FLAGS + 1;
const PREV_FILE: usize = KEY_LEN + 2;
const VALUE_LEN: usize = PREV_FILE + 2;
const ID: usize = VALUE_LEN + 4;
const PREV_OFFSET: usize = ID + 4;
const SEQ: usize = PREV_OFFSET + 4;
const PAIR_HASH: usize = SEQ + 8;
const END: usize = PAIR_HASH + 8;
const _: () = assert!(END == RECORD_HEADER_BYTES);

/// A mutation's sequence number: strictly increasing across the database.
pub type Seq = u64;

/// Flag: a term (u64, ≠ 0) follows the fixed header.
pub const FLAG_TERM: u8 = 1;
/// Flag: an expiry deadline (u64 ms since the Unix epoch, ≠ 0) follows.
pub const FLAG_DEADLINE: u8 = 2;
/// Flag: a request id (16 bytes, not all zero) follows.
pub const FLAG_REQUEST: u8 = 4;
/// Flag: more records of the same atomic batch follow this one.
pub const FLAG_BATCH_MORE: u8 = 8;
/// Flag: a put that refreshed its key's deadline, keeping the value (needs
/// `FLAG_DEADLINE`).
pub const FLAG_REFRESH: u8 = 16;
/// Every flag this format defines.
const FLAGS_KNOWN: u8 = FLAG_TERM | FLAG_DEADLINE | FLAG_REQUEST | FLAG_BATCH_MORE | FLAG_REFRESH;
/// Kind byte of a range delete (see `FORMAT.md`): this release decodes it
/// but does not apply it, and refuses a log holding one.
pub const KIND_RANGE_DELETE: u8 = 3;
const _: () = assert!(8 + 8 + REQUEST_ID_BYTES == RECORD_EXT_BYTES_MAX);

/// Bytes of a request id.
pub const REQUEST_ID_BYTES: usize = 16;

/// The optional fields of a record (format 2). The default (all zero, no
/// batch) is what every format-1 record reads as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RecordMeta {
    /// Term of the master that wrote the record; 0 before failover.
    pub term: u64,
    /// Expiry, ms since the Unix epoch; 0: none.
    pub deadline_ms: u64,
    /// The client request that wrote it; all zero: none.
    pub request_id: [u8; REQUEST_ID_BYTES],
    /// More records of the same atomic batch follow.
    pub batch_more: bool,
    /// A put that refreshed the deadline, keeping the value.
    pub refresh: bool,
}

impl RecordMeta {
    /// The flags byte that encodes these fields.
    pub fn flags(&self) -> u8 {
        let mut f = 0;
        if self.term != 0 {
            f |= FLAG_TERM;
        }
        if self.deadline_ms != 0 {
            f |= FLAG_DEADLINE;
        }
        if self.request_id != [0; REQUEST_ID_BYTES] {
            f |= FLAG_REQUEST;
        }
        if self.batch_more {
            f |= FLAG_BATCH_MORE;
        }
        if self.refresh {
            f |= FLAG_REFRESH;
        }
        f
    }

    /// Bytes of the optional fields these flags announce.
    pub fn ext_len(flags: u8) -> usize {
        let mut n = 0;
        if flags & FLAG_TERM != 0 {
            n += 8;
        }
        if flags & FLAG_DEADLINE != 0 {
            n += 8;
        }
        if flags & FLAG_REQUEST != 0 {
            n += REQUEST_ID_BYTES;
        }
        n
    }
}

/// Bytes of the encoded record.
pub fn encoded_len(key: usize, value: usize, meta: &RecordMeta) -> usize {
    RECORD_HEADER_BYTES + RecordMeta::ext_len(meta.flags()) + key + value
}

/// What a record does to its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Stores a value.
    Put = 1,
    /// Makes the id (and its key) read as absent.
    Delete = 2,
}

/// The decoded fixed part of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// CRC-32 stored in the record.
    pub crc: u32,
    /// Put or delete.
    pub kind: RecordKind,
    /// Length of the key that follows the header.
    pub key_len: u16,
    /// Length of the value that follows the key.
    pub value_len: u32,
    /// The id this record is a version of.
    pub id: u32,
    /// The previous version of the same id, or `Location::NONE`.
    pub prev: Location,
    /// Sequence number of the mutation.
    pub seq: Seq,
    /// `pair_hash` of a put; 0 for a delete.
    pub pair_hash: u64,
    /// The optional fields.
    pub meta: RecordMeta,
}

impl Header {
    /// Bytes of the fixed header and the optional fields: where the key
    /// starts.
    pub fn header_len(&self) -> usize {
        RECORD_HEADER_BYTES + RecordMeta::ext_len(self.meta.flags())
    }

    /// Bytes of the whole record: header, optional fields, key and value.
    pub fn record_len(&self) -> usize {
        self.header_len() + self.key_len as usize + self.value_len as usize
    }
}

/// A whole record as replication ships it and `Db::apply` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Sequence number, kept by a replica.
    pub seq: Seq,
    /// Id, kept by a replica.
    pub id: u32,
    /// Put or delete.
    pub kind: RecordKind,
    /// Key (empty for the id API).
    pub key: Vec<u8>,
    /// Value (empty for a delete).
    pub value: Vec<u8>,
    /// Term, deadline, request id, batch marker.
    pub meta: RecordMeta,
}

/// Appends the encoding of one record to `out`.
///
/// Panics if the key or value exceeds the format's limits: callers check
/// lengths against the database's options first and return an error.
pub fn encode(out: &mut Vec<u8>, r: &RecordRef<'_>, prev: Location) {
    assert!(r.key.len() <= KEY_BYTES_MAX, "key of {} bytes", r.key.len());
    assert!(
        r.value.len() <= VALUE_BYTES_LIMIT,
        "value of {} bytes",
        r.value.len()
    );
    let start = out.len();
    let flags = r.meta.flags();
    let mut h = [0u8; RECORD_HEADER_BYTES + RECORD_EXT_BYTES_MAX];
    h[MAGIC..KIND].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    h[KIND] = r.kind as u8;
    h[FLAGS] = flags;
    h[KEY_LEN..PREV_FILE].copy_from_slice(&(r.key.len() as u16).to_le_bytes());
    h[PREV_FILE..VALUE_LEN].copy_from_slice(&prev.file.to_le_bytes());
    h[VALUE_LEN..ID].copy_from_slice(&(r.value.len() as u32).to_le_bytes());
    h[ID..PREV_OFFSET].copy_from_slice(&r.id.to_le_bytes());
    h[PREV_OFFSET..SEQ].copy_from_slice(&prev.offset.to_le_bytes());
    h[SEQ..PAIR_HASH].copy_from_slice(&r.seq.to_le_bytes());
    let ph = match r.kind {
        RecordKind::Put => pair_hash(r.key, r.id, r.value),
        RecordKind::Delete => 0,
    };
    h[PAIR_HASH..END].copy_from_slice(&ph.to_le_bytes());
    let mut at = END;
    let mut field = |bytes: &[u8]| {
        h[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    if flags & FLAG_TERM != 0 {
        field(&r.meta.term.to_le_bytes());
    }
    if flags & FLAG_DEADLINE != 0 {
        field(&r.meta.deadline_ms.to_le_bytes());
    }
    if flags & FLAG_REQUEST != 0 {
        field(&r.meta.request_id);
    }
    let h = &mut h[..at];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[MAGIC..]);
    crc.update(r.key);
    crc.update(r.value);
    h[CRC..MAGIC].copy_from_slice(&crc.finalize().to_le_bytes());
    out.reserve(h.len() + r.key.len() + r.value.len());
    out.extend_from_slice(h);
    out.extend_from_slice(r.key);
    out.extend_from_slice(r.value);
    debug_assert_eq!(
        out.len() - start,
        encoded_len(r.key.len(), r.value.len(), &r.meta)
    );
}

/// A record to encode, borrowing its key and value.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// Sequence number.
    pub seq: Seq,
    /// Id.
    pub id: u32,
    /// Put or delete.
    pub kind: RecordKind,
    /// Key.
    pub key: &'a [u8],
    /// Value.
    pub value: &'a [u8],
    /// Term, deadline, request id, batch marker.
    pub meta: RecordMeta,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Decodes and checks the header and optional fields at the start of
/// `bytes` without checking the CRC (which needs the key and value too).
///
/// Returns `Ok(None)` when `bytes` ends inside them. A range delete (kind
/// 3) is `CodecError::Unsupported` (see [`decode`]).
pub fn decode_header(bytes: &[u8]) -> Result<Option<Header>, CodecError> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Ok(None);
    }
    if u16_at(bytes, MAGIC) != RECORD_MAGIC {
        return Err(CodecError::BadMagic { what: "record" });
    }
    let kind = match bytes[KIND] {
        1 => RecordKind::Put,
        2 => RecordKind::Delete,
        KIND_RANGE_DELETE => return Err(unsupported_range_delete(bytes)),
        other => return Err(CodecError::BadKind(other)),
    };
    let key_len = u16_at(bytes, KEY_LEN);
    let value_len = u32_at(bytes, VALUE_LEN);
    if key_len as usize > KEY_BYTES_MAX {
        return Err(CodecError::TooLong {
            what: "key",
            len: key_len as u64,
            max: KEY_BYTES_MAX as u64,
        });
    }
    if value_len as usize > VALUE_BYTES_LIMIT {
        return Err(CodecError::TooLong {
            what: "value",
            len: value_len as u64,
            max: VALUE_BYTES_LIMIT as u64,
        });
    }
    if kind == RecordKind::Delete && value_len != 0 {
        return Err(CodecError::BadField {
            what: "record delete length",
        });
    }
    let Some(meta) = decode_meta(bytes)? else {
        return Ok(None);
    };
    if meta.refresh && (kind != RecordKind::Put || meta.deadline_ms == 0) {
        return Err(CodecError::BadField {
            what: "record refresh flag without a put's deadline",
        });
    }
    Ok(Some(Header {
        crc: u32_at(bytes, CRC),
        kind,
        key_len,
        value_len,
        id: u32_at(bytes, ID),
        prev: Location {
            file: u16_at(bytes, PREV_FILE),
            offset: u32_at(bytes, PREV_OFFSET),
        },
        seq: u64_at(bytes, SEQ),
        pair_hash: u64_at(bytes, PAIR_HASH),
        meta,
    }))
}

/// The optional fields after the fixed header (`Ok(None)`: `bytes` ends
/// inside them). Each is present iff its flag is, and then not zero, so
/// every record has one encoding.
fn decode_meta(bytes: &[u8]) -> Result<Option<RecordMeta>, CodecError> {
    let flags = bytes[FLAGS];
    if flags & !FLAGS_KNOWN != 0 {
        return Err(CodecError::BadField {
            what: "record flags (unknown bits)",
        });
    }
    let end = RECORD_HEADER_BYTES + RecordMeta::ext_len(flags);
    if bytes.len() < end {
        return Ok(None);
    }
    let mut at = END;
    let mut meta = RecordMeta {
        batch_more: flags & FLAG_BATCH_MORE != 0,
        refresh: flags & FLAG_REFRESH != 0,
        ..RecordMeta::default()
    };
    if flags & FLAG_TERM != 0 {
        meta.term = u64_at(bytes, at);
        at += 8;
    }
    if flags & FLAG_DEADLINE != 0 {
        meta.deadline_ms = u64_at(bytes, at);
        at += 8;
    }
    if flags & FLAG_REQUEST != 0 {
        meta.request_id
            .copy_from_slice(&bytes[at..at + REQUEST_ID_BYTES]);
    }
    if meta.flags() != flags {
        return Err(CodecError::BadField {
            what: "record optional field flagged but zero",
        });
    }
    Ok(Some(meta))
}

/// A range delete whose CRC holds is a record a newer hypha wrote, which
/// this release must not skip or cut; one whose CRC fails is damage.
fn unsupported_range_delete(bytes: &[u8]) -> CodecError {
    let (key_len, value_len) = (u16_at(bytes, KEY_LEN), u32_at(bytes, VALUE_LEN));
    let body = key_len as usize + value_len as usize;
    let len = RecordMeta::ext_len(bytes[FLAGS] & FLAGS_KNOWN)
        .saturating_add(RECORD_HEADER_BYTES)
        .saturating_add(body);
    if key_len as usize > KEY_BYTES_MAX || value_len as usize > KEY_BYTES_MAX || bytes.len() < len {
        return CodecError::BadKind(KIND_RANGE_DELETE);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[MAGIC..len]);
    match crc.finalize() == u32_at(bytes, CRC) {
        true => CodecError::Unsupported {
            what: "range delete record (kind 3), written by a newer hypha",
        },
        false => CodecError::BadKind(KIND_RANGE_DELETE),
    }
}

/// A record decoded and checked in place.
#[derive(Clone, Copy, Debug)]
pub struct Decoded<'a> {
    /// The header.
    pub header: Header,
    /// The key bytes.
    pub key: &'a [u8],
    /// The value bytes.
    pub value: &'a [u8],
}

impl Decoded<'_> {
    /// Copies the record out.
    pub fn to_record(&self) -> Record {
        Record {
            seq: self.header.seq,
            id: self.header.id,
            kind: self.header.kind,
            key: self.key.to_vec(),
            value: self.value.to_vec(),
            meta: self.header.meta,
        }
    }
}

/// Decodes the record at the start of `bytes` and checks its CRC.
///
/// Returns `Ok(None)` when `bytes` ends before the record does (a torn tail
/// or a record still being written).
pub fn decode(bytes: &[u8]) -> Result<Option<Decoded<'_>>, CodecError> {
    let Some(header) = decode_header(bytes)? else {
        return Ok(None);
    };
    let len = header.record_len();
    if bytes.len() < len {
        return Ok(None);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[MAGIC..len]);
    let actual = crc.finalize();
    if actual != header.crc {
        return Err(CodecError::BadCrc {
            expected: header.crc,
            actual,
        });
    }
    let key_start = header.header_len();
    let key_end = key_start + header.key_len as usize;
    let key = &bytes[key_start..key_end];
    let value = &bytes[key_end..len];
    if header.kind == RecordKind::Put && pair_hash(key, header.id, value) != header.pair_hash {
        return Err(CodecError::BadField {
            what: "record pair_hash",
        });
    }
    Ok(Some(Decoded { header, key, value }))
}

#[cfg(test)]
mod tests;
