//! A small, fast, non-cryptographic 64-bit hash (multiply-fold, in the style of
//! wyhash) for the key index and the content digest.
//!
//! The key index seeds it with a per-database random `hash_seed` so that keys
//! chosen by a client cannot be aimed at one probe chain; the digest uses the
//! fixed [`DIGEST_SEED`] so that two databases with the same live pairs agree.
//! The function is part of the on-disk format (index slots store its output).

const P0: u64 = 0xa076_1d64_78bd_642f;
const P1: u64 = 0xe703_7ed1_a0b4_28db;
const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
const P3: u64 = 0x5899_65cc_7537_4cc3;

/// Seed of the content digest; fixed so digests compare across databases.
pub const DIGEST_SEED: u64 = 0x6879_7068_6164_6967; // "hyphadig"

#[inline]
fn mum(a: u64, b: u64) -> u64 {
    let r = (a as u128).wrapping_mul(b as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline]
fn read8(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// Hashes `data` with `seed`.
pub fn hash64(data: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ P0 ^ (data.len() as u64).wrapping_mul(P1);
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        h = mum(read8(&c[0..8]) ^ P1, read8(&c[8..16]) ^ h ^ P2);
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 16];
    tail[..rest.len()].copy_from_slice(rest);
    h = mum(
        read8(&tail[0..8]) ^ P1 ^ rest.len() as u64,
        read8(&tail[8..16]) ^ h ^ P3,
    );
    mum(h ^ P0, h.rotate_left(29) ^ P2)
}

/// Hash of a key for the key index.
pub fn key_hash(key: &[u8], seed: u64) -> u64 {
    // 0 marks an empty index slot, so no key hashes to it.
    match hash64(key, seed) {
        0 => 1,
        h => h,
    }
}

/// Hash of one live pair for the content digest. Records of the id API (empty
/// key) hash their id instead, in a separate domain, so they count too.
pub fn pair_hash(key: &[u8], id: u32, value: &[u8]) -> u64 {
    let k = if key.is_empty() {
        hash64(&id.to_le_bytes(), DIGEST_SEED ^ 1)
    } else {
        hash64(key, DIGEST_SEED)
    };
    hash64(value, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_values_pin_the_function() {
        // The index stores these hashes on disk: changing the function breaks
        // every existing database.
        assert_eq!(hash64(b"", 0), 0xc4c5_08cc_26de_9d2d);
        assert_eq!(hash64(b"hello", 0), 0x0823_78a6_f968_b4fd);
        assert_eq!(hash64(b"0123456789abcdefXYZ", 42), 0x6b7d_9b96_45c1_cf61);
        assert_ne!(hash64(b"hello", 0), hash64(b"hello", 1));
    }

    #[test]
    fn every_length_and_bit_changes_the_hash() {
        let data = [0xA5u8; 64];
        let mut seen = alloc::collections::BTreeSet::new();
        for len in 0..=64 {
            assert!(
                seen.insert(hash64(&data[..len], 7)),
                "collision at len {len}"
            );
        }
        for bit in 0..(32 * 8) {
            let mut d = [0u8; 32];
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(seen.insert(hash64(&d, 7)), "collision at bit {bit}");
        }
    }

    #[test]
    fn key_hash_is_never_zero_and_pairs_separate_domains() {
        assert_ne!(key_hash(b"", 0), 0);
        assert_ne!(
            pair_hash(b"", 5, b"v"),
            pair_hash(&5u32.to_le_bytes(), 0, b"v")
        );
        assert_ne!(pair_hash(b"a", 0, b"bc"), pair_hash(b"ab", 0, b"c"));
    }
}
