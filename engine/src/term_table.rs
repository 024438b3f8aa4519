//! The codec of the term table (the file `terms`, see `FORMAT.md`): where
//! each term's records start in the log, newest `TERMS_KEPT` terms.
//!
//! ```text
//! | offset    | size | field     | meaning                                   |
//! |-----------|------|-----------|-------------------------------------------|
//! | 0         | 8    | magic     | "HYPHATM\0"                               |
//! | 8         | 2    | version   | u16 LE, 1                                 |
//! | 10        | 2    | count     | u16 LE, 0..=TERMS_KEPT                    |
//! | 12        | 4    | reserved  | zero                                      |
//! | 16 + 16 i | 8    | term      | u64 LE                                    |
//! | 24 + 16 i | 8    | first_seq | u64 LE, >= 1                              |
//! | 16 + 16 n | 4    | crc       | CRC-32 of every byte before it            |
//! ```
//!
//! Entries strictly ascend in term and in first seq.

use crate::error::CodecError;
use crate::limits::{TERMS_KEPT, TERM_TABLE_HEAD_BYTES};
use crate::record::Seq;
use alloc::vec::Vec;

/// Magic of the term table.
pub const TERMS_MAGIC: [u8; 8] = *b"HYPHATM\0";
/// Version of the term table.
pub const TERMS_VERSION: u16 = 1;

/// Where a term's records start: the record at `first_seq` is the log's
/// first of `term`, and the records up to the next entry's `first_seq`
/// (exclusive) or the log's end carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermStart {
    /// The term.
    pub term: u64,
    /// Seq of its first record.
    pub first_seq: Seq,
}

/// Bytes of a table of `count` entries.
pub const fn table_bytes(count: usize) -> usize {
    TERM_TABLE_HEAD_BYTES + 16 * count + 4
}

/// Whether `starts` may be stored: at most `TERMS_KEPT`, first seqs at
/// least 1, both fields strictly ascending.
pub fn check(starts: &[TermStart]) -> Result<(), CodecError> {
    if starts.len() > TERMS_KEPT {
        return Err(CodecError::TooLong {
            what: "term table",
            len: starts.len() as u64,
            max: TERMS_KEPT as u64,
        });
    }
    let ascending = starts
        .windows(2)
        .all(|w| w[0].term < w[1].term && w[0].first_seq < w[1].first_seq);
    if !ascending || starts.iter().any(|t| t.first_seq == 0) {
        return Err(CodecError::BadField {
            what: "term table entries",
        });
    }
    Ok(())
}

/// Encodes a table; `starts` must pass [`check`].
pub fn encode(starts: &[TermStart]) -> Vec<u8> {
    debug_assert!(check(starts).is_ok());
    let mut b = Vec::with_capacity(table_bytes(starts.len()));
    b.extend_from_slice(&TERMS_MAGIC);
    b.extend_from_slice(&TERMS_VERSION.to_le_bytes());
    b.extend_from_slice(&(starts.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    for t in starts {
        b.extend_from_slice(&t.term.to_le_bytes());
        b.extend_from_slice(&t.first_seq.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Decodes and checks a table.
pub fn decode(b: &[u8]) -> Result<Vec<TermStart>, CodecError> {
    if b.len() < table_bytes(0) {
        return Err(CodecError::TooLong {
            what: "term table length",
            len: b.len() as u64,
            max: table_bytes(TERMS_KEPT) as u64,
        });
    }
    if b[0..8] != TERMS_MAGIC {
        return Err(CodecError::BadMagic { what: "term table" });
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != TERMS_VERSION {
        return Err(CodecError::BadVersion {
            what: "term table",
            found: version,
        });
    }
    let count = usize::from(u16::from_le_bytes([b[10], b[11]]));
    if count > TERMS_KEPT || b.len() != table_bytes(count) {
        return Err(CodecError::TooLong {
            what: "term table length",
            len: b.len() as u64,
            max: table_bytes(count.min(TERMS_KEPT)) as u64,
        });
    }
    let at = b.len() - 4;
    let expected = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let actual = crc32fast::hash(&b[..at]);
    if expected != actual {
        return Err(CodecError::BadCrc { expected, actual });
    }
    if b[12..16] != [0; 4] {
        return Err(CodecError::BadField {
            what: "term table reserved bytes",
        });
    }
    let starts: Vec<TermStart> = (0..count)
        .map(|i| TermStart {
            term: u64_at(b, TERM_TABLE_HEAD_BYTES + 16 * i),
            first_seq: u64_at(b, TERM_TABLE_HEAD_BYTES + 16 * i + 8),
        })
        .collect();
    check(&starts)?;
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn t(term: u64, first_seq: u64) -> TermStart {
        TermStart { term, first_seq }
    }

    #[test]
    fn a_table_round_trips_and_every_byte_is_checked() {
        let starts = vec![t(0, 1), t(3, 40), t(9, 41)];
        let b = encode(&starts);
        assert_eq!(b.len(), table_bytes(3));
        assert_eq!(decode(&b), Ok(starts));
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad).is_err(), "byte {i} flipped went unnoticed");
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
        assert_eq!(decode(&encode(&[])), Ok(vec![]));
    }

    #[test]
    fn entries_must_ascend_and_stay_few() {
        assert!(check(&[t(2, 5), t(2, 6)]).is_err());
        assert!(check(&[t(2, 5), t(3, 5)]).is_err());
        assert!(check(&[t(2, 0)]).is_err());
        let many: Vec<_> = (1..=TERMS_KEPT as u64 + 1).map(|i| t(i, i)).collect();
        assert!(check(&many).is_err());
        assert!(check(&many[..TERMS_KEPT]).is_ok());
    }
}
