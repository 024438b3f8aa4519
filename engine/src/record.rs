//! Data records: the unit of the append-only data files.
//!
//! ```text
//! offset size field
//!      0    4 crc32      CRC-32 (IEEE) of bytes 4..40, the key and the value
//!      4    2 magic      RECORD_MAGIC
//!      6    1 kind       1 = put, 2 = delete (tombstone)
//!      7    1 reserved   0
//!      8    2 key_len    0 for records of the id API
//!     10    2 prev_file  location of the previous version of this id
//!     12    4 value_len  0 for a delete
//!     16    4 id
//!     20    4 prev_offset (prev_file, prev_offset) = (0, 0): no previous version
//!     24    8 seq
//!     32    8 pair_hash  hash::pair_hash(key, id, value) of a put, 0 for a delete
//!     40      key bytes, then value bytes
//! ```
//! All integers little-endian.

use crate::error::CodecError;
use crate::hash::pair_hash;
use crate::limits::{KEY_BYTES_MAX, RECORD_HEADER_BYTES, VALUE_BYTES_LIMIT};
use crate::location::Location;
use alloc::vec::Vec;

/// Marks the start of a record; lets recovery tell a record from zeros.
pub const RECORD_MAGIC: u16 = 0x4879; // "yH" on disk

const CRC: usize = 0;
const MAGIC: usize = CRC + 4;
const KIND: usize = MAGIC + 2;
const RESERVED: usize = KIND + 1;
const KEY_LEN: usize = RESERVED + 1;
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
}

impl Header {
    /// Bytes of the whole record: header, key and value.
    pub fn record_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.key_len as usize + self.value_len as usize
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
    let mut h = [0u8; RECORD_HEADER_BYTES];
    h[MAGIC..KIND].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
    h[KIND] = r.kind as u8;
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
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[MAGIC..]);
    crc.update(r.key);
    crc.update(r.value);
    h[CRC..MAGIC].copy_from_slice(&crc.finalize().to_le_bytes());
    out.reserve(RECORD_HEADER_BYTES + r.key.len() + r.value.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(r.key);
    out.extend_from_slice(r.value);
    debug_assert_eq!(
        out.len() - start,
        RECORD_HEADER_BYTES + r.key.len() + r.value.len()
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

/// Decodes and checks the fixed header at the start of `bytes` without
/// checking the CRC (which needs the key and value too).
///
/// Returns `Ok(None)` when fewer than `RECORD_HEADER_BYTES` are given.
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
    if bytes[RESERVED] != 0 || (kind == RecordKind::Delete && value_len != 0) {
        return Err(CodecError::BadField {
            what: "record reserved byte or delete length",
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
    }))
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
    let key_end = RECORD_HEADER_BYTES + header.key_len as usize;
    let key = &bytes[RECORD_HEADER_BYTES..key_end];
    let value = &bytes[key_end..len];
    if header.kind == RecordKind::Put && pair_hash(key, header.id, value) != header.pair_hash {
        return Err(CodecError::BadField {
            what: "record pair_hash",
        });
    }
    Ok(Some(Decoded { header, key, value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        let r = RecordRef {
            seq: 7,
            id: 3,
            kind: RecordKind::Put,
            key: b"k",
            value: b"val",
        };
        encode(
            &mut out,
            &r,
            Location {
                file: 1,
                offset: 0x20,
            },
        );
        out
    }

    #[test]
    fn golden_bytes_pin_the_record_encoding() {
        let b = sample();
        assert_eq!(b.len(), RECORD_HEADER_BYTES + 4);
        // magic, kind, reserved, key_len, prev_file
        assert_eq!(&b[4..12], &[0x79, 0x48, 1, 0, 1, 0, 1, 0]);
        // value_len, id, prev_offset
        assert_eq!(&b[12..24], &[3, 0, 0, 0, 3, 0, 0, 0, 0x20, 0, 0, 0]);
        assert_eq!(&b[24..32], &[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[32..40], &pair_hash(b"k", 3, b"val").to_le_bytes());
        assert_eq!(&b[40..], b"kval");
        let mut crc = crc32fast::Hasher::new();
        crc.update(&b[4..]);
        assert_eq!(&b[0..4], &crc.finalize().to_le_bytes());
    }

    #[test]
    fn round_trip() {
        let b = sample();
        let d = decode(&b).unwrap().unwrap();
        assert_eq!(d.key, b"k");
        assert_eq!(d.value, b"val");
        assert_eq!(d.header.seq, 7);
        assert_eq!(
            d.header.prev,
            Location {
                file: 1,
                offset: 0x20
            }
        );
        assert_eq!(d.to_record().kind, RecordKind::Put);
    }

    #[test]
    fn every_prefix_is_partial_and_every_flip_is_caught() {
        let b = sample();
        for cut in 0..b.len() {
            assert!(matches!(decode(&b[..cut]), Ok(None)), "cut {cut}");
        }
        for bit in 0..b.len() * 8 {
            let mut c = b.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            match decode(&c) {
                Err(_) | Ok(None) => {}
                Ok(Some(_)) => panic!("flip of bit {bit} went unnoticed"),
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors_not_allocations() {
        let mut b = sample();
        b[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            decode(&b),
            Err(CodecError::TooLong { what: "key", .. })
        ));
        let mut b = sample();
        b[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&b),
            Err(CodecError::TooLong { what: "value", .. })
        ));
        assert!(matches!(
            decode(&[0u8; 64]),
            Err(CodecError::BadMagic { .. })
        ));
        let mut b = sample();
        b[6] = 9;
        assert!(matches!(decode(&b), Err(CodecError::BadKind(9))));
    }
}
