//! The file `witness`: the newest log id a failover group's leader told a
//! witness (`hypha witness`), which then votes only for logs at least as
//! new. See `FORMAT.md`, "Witness".
//!
//! ```text
//!  0 magic[8] "HYPHAWT\0" | 8 version u16 | 10 reserved u16 | 12 reserved u32
//! 16 last_term u64 | 24 last_seq u64 | 32 crc32 of 0..32
//! ```

use crate::error::CodecError;
use crate::tables::{check_crc, check_magic_version, crc, u64_at, FORMAT_VERSION};

/// Magic of the witness file.
pub const WITNESS_MAGIC: [u8; 8] = *b"HYPHAWT\0";
/// Bytes of the witness file.
pub const WITNESS_BYTES: usize = 36;
const W_TERM: usize = 16;
const W_SEQ: usize = 24;
const W_CRC: usize = 32;
const _: () = assert!(W_CRC + 4 == WITNESS_BYTES);

/// The (term, seq) a witness vouches for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct WitnessLast {
    /// Term of the newest record a leader held durably when it said so.
    pub term: u64,
    /// Its seq.
    pub seq: u64,
}

impl WitnessLast {
    /// Encodes the file.
    pub fn encode(&self) -> [u8; WITNESS_BYTES] {
        let mut out = [0u8; WITNESS_BYTES];
        out[0..8].copy_from_slice(&WITNESS_MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[W_TERM..W_TERM + 8].copy_from_slice(&self.term.to_le_bytes());
        out[W_SEQ..W_SEQ + 8].copy_from_slice(&self.seq.to_le_bytes());
        let c = crc(&out[..W_CRC]);
        out[W_CRC..].copy_from_slice(&c.to_le_bytes());
        out
    }

    /// Decodes and checks the file.
    pub fn decode(b: &[u8]) -> Result<WitnessLast, CodecError> {
        const WHAT: &str = "witness file";
        if b.len() != WITNESS_BYTES {
            return Err(CodecError::TooLong {
                what: WHAT,
                len: b.len() as u64,
                max: WITNESS_BYTES as u64,
            });
        }
        check_magic_version(b, &WITNESS_MAGIC, WHAT)?;
        check_crc(b, W_CRC)?;
        if b[10..W_TERM].iter().any(|&x| x != 0) {
            return Err(CodecError::BadField { what: WHAT });
        }
        Ok(WitnessLast {
            term: u64_at(b, W_TERM),
            seq: u64_at(b, W_SEQ),
        })
    }
}
