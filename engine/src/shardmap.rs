//! Hash maps split in [`MAP_SHARDS`] parts by key, for the tables' changes
//! that wait in memory (the lookup's overlay, the key index's pending
//! slots).
//!
//! A `HashMap` that outgrows its room rehashes every entry at once; the
//! overlay holds up to `CHECKPOINT_IDS_MAX` (and more while the checkpoint
//! thread is behind), and it is filled under the write lock, so one rehash
//! held the lock for about a millisecond. Split in `MAP_SHARDS` parts, each
//! rehash moves a sixteenth of the entries (tens of microseconds), and the
//! parts fill evenly: ids are dense and slot numbers come from a hash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Parts of a [`ShardMap`]: a rehash under the write lock moves at most
/// 1/`MAP_SHARDS` of the entries.
pub const MAP_SHARDS: usize = 16;

/// Hasher for dense u32 ids and table slot numbers: one multiply
/// (Fibonacci hashing).
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A key that picks its part of a [`ShardMap`] by its low bits.
pub trait ShardKey: Copy + Eq + Hash {
    fn shard(self) -> usize;
}

impl ShardKey for u32 {
    fn shard(self) -> usize {
        self as usize % MAP_SHARDS
    }
}

impl ShardKey for u64 {
    fn shard(self) -> usize {
        (self % MAP_SHARDS as u64) as usize
    }
}

type Part<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A hash map in [`MAP_SHARDS`] parts (see the module docs).
#[derive(Clone)]
pub struct ShardMap<K, V> {
    parts: Vec<Part<K, V>>,
    /// Entries in all parts (read on every write: `Lookup::dirty`).
    len: usize,
}

/// Lookup id → value.
pub type IdMap<V> = ShardMap<u32, V>;
/// Key-index slot number → value.
pub type SlotMap<V> = ShardMap<u64, V>;

impl<K: ShardKey, V> Default for ShardMap<K, V> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<K: ShardKey, V> ShardMap<K, V> {
    /// A map with room for about `n` entries without a rehash.
    pub fn with_capacity(n: usize) -> Self {
        let each = n.div_ceil(MAP_SHARDS);
        ShardMap {
            parts: (0..MAP_SHARDS)
                .map(|_| Part::with_capacity_and_hasher(each, Default::default()))
                .collect(),
            len: 0,
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.parts[k.shard()].get(k)
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let old = self.parts[k.shard()].insert(k, v);
        self.len += usize::from(old.is_none());
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.parts.iter().flat_map(|p| p.keys())
    }

    /// Moves every entry of `other` in, replacing equal keys.
    pub fn extend(&mut self, other: Self) {
        for (mine, theirs) in self.parts.iter_mut().zip(other.parts) {
            mine.extend(theirs);
        }
        self.len = self.parts.iter().map(|p| p.len()).sum();
    }
}

impl<K: ShardKey, V> std::ops::Index<&K> for ShardMap<K, V> {
    type Output = V;
    /// Panics if `k` is absent, as `HashMap`'s does.
    fn index(&self, k: &K) -> &V {
        &self.parts[k.shard()][k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map() {
        let mut m: IdMap<u64> = ShardMap::with_capacity(100);
        let mut plain = std::collections::HashMap::new();
        for i in 0..1000u32 {
            let k = i.wrapping_mul(2_654_435_761) % 300;
            assert_eq!(m.insert(k, i as u64), plain.insert(k, i as u64));
        }
        assert_eq!(m.len(), plain.len());
        for k in 0..400u32 {
            assert_eq!(m.get(&k), plain.get(&k));
        }
        let mut other: IdMap<u64> = ShardMap::default();
        other.insert(5, 99);
        other.insert(1000, 7);
        m.extend(other);
        assert_eq!(m.get(&5), Some(&99));
        assert_eq!(m.get(&1000), Some(&7));
        let mut keys: Vec<u32> = m.keys().copied().collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), m.len());
        assert!(!m.is_empty() && ShardMap::<u64, ()>::default().is_empty());
    }
}
