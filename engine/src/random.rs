//! Random ids (history id, hash seed, compaction id): the one source of
//! randomness in the engine.

use std::io::Read;

/// 64 random bits from the OS, or from time and pid if it has none.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    crate::hash::hash64(&t.to_le_bytes(), std::process::id() as u64)
}
