//! Locations of records and their encoding as lookup-table entries.
//!
//! A lookup entry is `keysize` bytes, little-endian:
//!
//! ```text
//! keysize 2: offset u16            (one data file, file_size <= 64 KiB)
//! keysize 3: offset u24            (one data file, file_size <= 16 MiB)
//! keysize 4: offset u32            (one data file)
//! keysize 6: file u16, offset u32  (up to 65536 data files)
//! ```
//! All-zero means "no record": offset 0 of every data file holds the file
//! header, so no record ever starts there.

use crate::error::CodecError;
use crate::limits::{FILE_HEADER_BYTES, KEYSIZES};

/// Where a record starts: data file number and byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Data file number (`N.db`).
    pub file: u16,
    /// Byte offset of the record in that file.
    pub offset: u32,
}

impl Location {
    /// No record.
    pub const NONE: Location = Location { file: 0, offset: 0 };

    /// True for [`Location::NONE`].
    pub fn is_none(self) -> bool {
        self == Self::NONE
    }

    /// Packs into a u64 that orders like the log: file, then offset.
    pub fn pack(self) -> u64 {
        (self.file as u64) << 32 | self.offset as u64
    }

    /// Inverse of [`Location::pack`].
    pub fn unpack(v: u64) -> Location {
        Location {
            file: (v >> 32) as u16,
            offset: v as u32,
        }
    }
}

/// Checks that `keysize` is one OurDB defines.
pub fn check_keysize(keysize: u8) -> Result<(), CodecError> {
    if KEYSIZES.contains(&keysize) {
        Ok(())
    } else {
        Err(CodecError::BadKeysize(keysize))
    }
}

/// The keysize of an entry `len` bytes long, if it is one OurDB defines.
fn keysize_of(len: usize) -> Result<u8, CodecError> {
    let keysize = u8::try_from(len).map_err(|_| CodecError::BadKeysize(u8::MAX))?;
    check_keysize(keysize)?;
    Ok(keysize)
}

/// Highest offset + 1 a keysize can address in one file (`None`: u32 range).
pub fn offset_limit(keysize: u8) -> Option<u64> {
    match keysize {
        2 | 3 => Some(1u64 << (8 * keysize as u32)),
        _ => None,
    }
}

/// Encodes `loc` as a lookup entry of `out.len()` (= keysize) bytes.
///
/// Fails when the location does not fit the keysize: a file other than 0 for
/// keysize < 6, or an offset beyond the keysize's range.
pub fn encode_entry(loc: Location, out: &mut [u8]) -> Result<(), CodecError> {
    let keysize = keysize_of(out.len())?;
    if keysize < 6 {
        if loc.file != 0 {
            return Err(CodecError::LocationDoesNotFit {
                keysize,
                file: loc.file,
                offset: loc.offset,
            });
        }
        if let Some(limit) = offset_limit(keysize) {
            if loc.offset as u64 >= limit {
                return Err(CodecError::LocationDoesNotFit {
                    keysize,
                    file: loc.file,
                    offset: loc.offset,
                });
            }
        }
        out.copy_from_slice(&loc.offset.to_le_bytes()[..keysize as usize]);
    } else {
        out[0..2].copy_from_slice(&loc.file.to_le_bytes());
        out[2..6].copy_from_slice(&loc.offset.to_le_bytes());
    }
    Ok(())
}

/// Decodes a lookup entry of keysize `entry.len()`.
pub fn decode_entry(entry: &[u8]) -> Result<Location, CodecError> {
    let keysize = keysize_of(entry.len())?;
    let loc = if keysize < 6 {
        let mut w = [0u8; 4];
        w[..entry.len()].copy_from_slice(entry);
        Location {
            file: 0,
            offset: u32::from_le_bytes(w),
        }
    } else {
        Location {
            file: u16::from_le_bytes([entry[0], entry[1]]),
            offset: u32::from_le_bytes([entry[2], entry[3], entry[4], entry[5]]),
        }
    };
    if !loc.is_none() && (loc.offset as usize) < FILE_HEADER_BYTES {
        return Err(CodecError::BadField {
            what: "lookup entry points into a file header",
        });
    }
    Ok(loc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_pin_each_keysize() {
        let loc = Location {
            file: 0,
            offset: 0x0102,
        };
        let mut e2 = [0u8; 2];
        encode_entry(loc, &mut e2).unwrap();
        assert_eq!(e2, [0x02, 0x01]);
        let mut e3 = [0u8; 3];
        encode_entry(
            Location {
                file: 0,
                offset: 0x030201,
            },
            &mut e3,
        )
        .unwrap();
        assert_eq!(e3, [1, 2, 3]);
        let mut e4 = [0u8; 4];
        encode_entry(
            Location {
                file: 0,
                offset: 0x04030201,
            },
            &mut e4,
        )
        .unwrap();
        assert_eq!(e4, [1, 2, 3, 4]);
        let mut e6 = [0u8; 6];
        encode_entry(
            Location {
                file: 0x0a0b,
                offset: 0x04030201,
            },
            &mut e6,
        )
        .unwrap();
        assert_eq!(e6, [0x0b, 0x0a, 1, 2, 3, 4]);
        for e in [&e2[..], &e3[..], &e4[..], &e6[..]] {
            let back = decode_entry(e).unwrap();
            let mut again = [0u8; 6];
            encode_entry(back, &mut again[..e.len()]).unwrap();
            assert_eq!(&again[..e.len()], e);
        }
    }

    #[test]
    fn locations_that_do_not_fit_are_errors() {
        let mut e2 = [0u8; 2];
        assert!(encode_entry(
            Location {
                file: 0,
                offset: 0x1_0000
            },
            &mut e2
        )
        .is_err());
        assert!(encode_entry(
            Location {
                file: 1,
                offset: 64
            },
            &mut e2
        )
        .is_err());
        let mut e4 = [0u8; 4];
        assert!(encode_entry(
            Location {
                file: 1,
                offset: 64
            },
            &mut e4
        )
        .is_err());
        let mut e5 = [0u8; 5];
        assert!(matches!(
            encode_entry(Location::NONE, &mut e5),
            Err(CodecError::BadKeysize(5))
        ));
        assert!(
            decode_entry(&[5, 0]).is_err(),
            "offset inside the file header"
        );
        assert_eq!(decode_entry(&[0, 0, 0, 0, 0, 0]).unwrap(), Location::NONE);
        // 258 bytes is 2 as a u8: must not pass for keysize 2.
        assert!(decode_entry(&[0u8; 258]).is_err());
        assert!(encode_entry(Location::NONE, &mut [0u8; 258]).is_err());
    }

    #[test]
    fn pack_orders_like_the_log() {
        let a = Location {
            file: 1,
            offset: u32::MAX,
        };
        let b = Location {
            file: 2,
            offset: 32,
        };
        assert!(a.pack() < b.pack());
        assert_eq!(Location::unpack(b.pack()), b);
    }
}
