//! The key index `keys.idx`: an open-addressing hash table on disk, from key
//! hash to id, read through a memory mapping and written with `pwrite` (see
//! `KEY_PENDING_MAX`). Slots hold (hash, id); the key itself lives in the id's records,
//! so a probe confirms a hash match by reading the key. Slots filled since
//! they were last written wait in `pending` and reach the file together
//! ([`KeyFlush`], without the database lock: asked of the checkpoint thread
//! at `KEY_PENDING_MAX`), at the latest at the next checkpoint. While they
//! are written they wait in `flushing`, which a probe reads before the
//! mapping, so it never sees a half-written slot.
//!
//! Slots are written in place and never cleared (deleted keys keep their id),
//! so a slot lost or left stale by a crash is harmless: a stale slot fails the
//! key comparison, and replay re-inserts the keys written since the last
//! checkpoint. The table doubles into a new file renamed over the old one.

use crate::dir::sync_dir;
use crate::error::{Error, IoContext, Result};
use crate::io::{FileIo, OpenMode};
use crate::limits::{INDEX_LOAD_PERCENT_MAX, INDEX_SLOTS_MIN, SLOT_BYTES, TABLE_HEADER_BYTES};
use crate::lookup::{map_mut, write_coalesced};
use crate::shardmap::SlotMap;
use crate::tables::{decode_slot, encode_slot, TableHeader, INDEX_MAGIC};
use memmap2::MmapMut;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Filled slots held in memory before they are written to `keys.idx`
/// together (about 24 bytes each, so ~1.5 MiB at most, freed at each
/// checkpoint).
///
/// One `pwrite` per new key cost a third of a writer's time (1M new keys);
/// written together, nearby slots share a page and a write. Writing through
/// the shared mapping instead costs more: a page dirtied through it must be
/// write-protected again when the checkpoint writes it back, one TLB
/// shootdown per page that interrupts the core the writer runs on (~45 % of
/// a writer's time with 1M new keys).
pub const KEY_PENDING_MAX: usize = 1 << 15;
/// Pending slots at which a writer writes them itself (without the lock)
/// rather than wait for the checkpoint thread, which is behind.
pub const KEY_PENDING_WRITER_MAX: usize = 2 * KEY_PENDING_MAX;
/// Pending slots at which `KeyIndex::insert` writes them at once, under the
/// caller's lock: only where no thread writes them (recovery replaying the
/// log), since a running database writes them before (above).
pub const KEY_PENDING_INLINE_MAX: usize = 4 * KEY_PENDING_MAX;
const _: () = assert!(KEY_PENDING_MAX < KEY_PENDING_WRITER_MAX);
const _: () = assert!(KEY_PENDING_WRITER_MAX < KEY_PENDING_INLINE_MAX);

pub struct KeyIndex {
    dir: PathBuf,
    file: Arc<File>,
    /// Shared with a running [`KeyFlush`] (which copies the unchanged bytes
    /// between slots from it).
    map: Arc<MmapMut>,
    /// Filled slots not yet written to the file: slot number → (hash, id).
    /// Only slots the file (and `flushing`) show empty, so a probe looks
    /// here at an empty slot only.
    pending: SlotMap<(u64, u32)>,
    /// Slots a [`KeyFlush`] is writing to the file, found here before the
    /// mapping is read; cleared only once the file holds them (or a grown
    /// table replaced the file).
    flushing: Arc<SlotMap<(u64, u32)>>,
    pub slots: u64,
    pub used: u64,
    pub seed: u64,
}

impl KeyIndex {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("keys.idx")
    }

    /// Creates an empty index with `slots` slots (replacing any file there).
    pub fn create(dir: &Path, seed: u64, slots: u64, io: &dyn FileIo) -> Result<KeyIndex> {
        let (file, map) = Self::create_file(&Self::path(dir), seed, slots, io)?;
        sync_dir(dir, io)?;
        Ok(KeyIndex {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            map: Arc::new(map),
            pending: SlotMap::default(),
            flushing: Arc::default(),
            slots,
            used: 0,
            seed,
        })
    }

    fn create_file(path: &Path, seed: u64, slots: u64, io: &dyn FileIo) -> Result<(File, MmapMut)> {
        assert!(slots.is_power_of_two());
        let file = io
            .open(path, OpenMode::Truncate)
            .ctx(|| format!("create {}", path.display()))?;
        io.set_len(&file, TABLE_HEADER_BYTES as u64 + slots * SLOT_BYTES as u64)
            .ctx(|| format!("size {}", path.display()))?;
        let header = TableHeader {
            width: SLOT_BYTES as u8,
            seed,
        }
        .encode(&INDEX_MAGIC);
        io.write_at(&file, &header, 0)
            .ctx(|| format!("write {}", path.display()))?;
        let map = map_mut(&file, path)?;
        Ok((file, map))
    }

    /// Opens the index; an error means it must be rebuilt from the log. The
    /// slot count comes from the file (it may have grown after the last
    /// checkpoint) and the used count is recounted, since a crash can leave
    /// slots the checkpoint did not count.
    pub fn open(dir: &Path, seed: u64, io: &dyn FileIo) -> Result<KeyIndex> {
        let path = Self::path(dir);
        let file = io
            .open(&path, OpenMode::Existing)
            .ctx(|| format!("open {}", path.display()))?;
        let len = file
            .metadata()
            .ctx(|| format!("stat {}", path.display()))?
            .len();
        let map = map_mut(&file, &path)?;
        let header =
            TableHeader::decode(&map, &INDEX_MAGIC, "key index header").map_err(|cause| {
                Error::Corrupted {
                    file: path.clone(),
                    offset: 0,
                    cause,
                }
            })?;
        let slots = len.saturating_sub(TABLE_HEADER_BYTES as u64) / SLOT_BYTES as u64;
        let expected = TABLE_HEADER_BYTES as u64 + slots * SLOT_BYTES as u64;
        if header.seed != seed
            || header.width as usize != SLOT_BYTES
            || len != expected
            || !slots.is_power_of_two()
            || slots < INDEX_SLOTS_MIN
        {
            return Err(Error::Corrupted {
                file: path,
                offset: 0,
                cause: crate::CodecError::BadField {
                    what: "key index size or seed (differs from meta)",
                },
            });
        }
        let mut index = KeyIndex {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            map: Arc::new(map),
            pending: SlotMap::default(),
            flushing: Arc::default(),
            slots,
            used: 0,
            seed,
        };
        index.used = (0..slots).filter(|&i| index.slot(i).0 != 0).count() as u64;
        Ok(index)
    }

    fn slot(&self, i: u64) -> (u64, u32) {
        let at = TABLE_HEADER_BYTES + i as usize * SLOT_BYTES;
        decode_slot(&self.map[at..at + SLOT_BYTES])
    }

    /// Slot `i` as the index stands: one being written, the file's, or a
    /// pending one.
    fn entry(&self, i: u64) -> (u64, u32) {
        if !self.flushing.is_empty() {
            if let Some(&f) = self.flushing.get(&i) {
                return f;
            }
        }
        let s = self.slot(i);
        if s.0 == 0 && !self.pending.is_empty() {
            if let Some(&p) = self.pending.get(&i) {
                return p;
            }
        }
        s
    }

    /// Finds the id whose key `is_key` accepts among the slots with `hash`.
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.slots - 1;
        let mut i = hash & mask;
        for _ in 0..self.slots {
            let (h, id) = self.entry(i);
            if h == 0 {
                return None;
            }
            if h == hash && is_key(id) {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Inserts (hash, id); the caller checked the key is not present. The
    /// slot waits in `pending` (see `KEY_PENDING_MAX`); written here, at
    /// once, only at `KEY_PENDING_INLINE_MAX`.
    pub fn insert(&mut self, hash: u64, id: u32, io: &dyn FileIo) -> Result<()> {
        if (self.used + 1) * 100 > self.slots * INDEX_LOAD_PERCENT_MAX {
            self.grow(io)?;
        }
        loop {
            let mask = self.slots - 1;
            let mut i = hash & mask;
            for _ in 0..self.slots {
                if self.entry(i).0 == 0 {
                    self.pending.insert(i, (hash, id));
                    self.used += 1;
                    if self.pending.len() >= KEY_PENDING_INLINE_MAX {
                        self.write_pending(io)?;
                    }
                    return Ok(());
                }
                i = (i + 1) & mask;
            }
            // Only reachable if `used` undercounts; growing recounts it.
            self.grow(io)?;
        }
    }

    /// Slots waiting to be written.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Moves the pending slots to `flushing` and returns their write, to
    /// run without the lock (`None`: nothing to write). The new pending
    /// table gets room for as many slots and a quarter more, so a stream of
    /// new keys does not rehash it under the write lock, and a burst of new
    /// keys leaves little allocated behind it.
    pub fn flush_begin(&mut self) -> Option<KeyFlush> {
        if self.pending.is_empty() && self.flushing.is_empty() {
            return None;
        }
        let room = self.pending.len() + self.pending.len() / 4;
        let fresh = SlotMap::with_capacity(room);
        let pending = std::mem::replace(&mut self.pending, fresh);
        if self.flushing.is_empty() {
            self.flushing = Arc::new(pending);
        } else {
            // A write that failed half way: write its slots again too.
            Arc::make_mut(&mut self.flushing).extend(pending);
        }
        Some(KeyFlush {
            path: Self::path(&self.dir),
            file: self.file.clone(),
            map: self.map.clone(),
            slots: self.flushing.clone(),
        })
    }

    /// Ends a [`KeyFlush`] that succeeded: its slots are in the file, or a
    /// grown table replaced the file meanwhile (and holds them). Returns
    /// what to drop (unmap, free) without the lock.
    pub fn flush_end(&mut self, done: KeyFlush) -> (KeyFlush, Arc<SlotMap<(u64, u32)>>) {
        let taken = match Arc::ptr_eq(&self.flushing, &done.slots) {
            true => std::mem::take(&mut self.flushing),
            false => Arc::default(),
        };
        (done, taken)
    }

    /// Writes the pending slots to the file at once (open, close, tests).
    /// On error they stay in `flushing`, so lookups still find them.
    pub fn write_pending(&mut self, io: &dyn FileIo) -> Result<()> {
        let Some(job) = self.flush_begin() else {
            return Ok(());
        };
        job.write(io)?;
        drop(self.flush_end(job));
        Ok(())
    }

    /// True when the table must double before the next insert (it would
    /// be more than `INDEX_LOAD_PERCENT_MAX` full).
    pub fn needs_grow(&self) -> bool {
        self.needs_grow_by(1)
    }

    /// True when the table must double before `n` more inserts (an atomic
    /// batch binds all its new keys under one hold of the write lock).
    pub fn needs_grow_by(&self, n: u64) -> bool {
        (self.used + n) * 100 > self.slots * INDEX_LOAD_PERCENT_MAX
    }

    /// Copies slots `from..to` (file or pending; stale ones too, they are
    /// harmless) into the doubled table `grown`.
    pub fn copy_into(&self, grown: &mut Grown, from: u64, to: u64) {
        for s in from..to.min(self.slots) {
            let (h, id) = self.entry(s);
            if h != 0 {
                grown.place(h, id);
            }
        }
    }

    /// Takes `grown` (complete, durable and renamed over `keys.idx`) as the
    /// table; returns the old table's file and mapping, for the caller to
    /// drop (unmap) without its lock.
    pub fn replace(&mut self, grown: Grown) -> (Arc<File>, Arc<MmapMut>) {
        log::debug!(
            "key index grew to {} slots ({} used)",
            grown.slots,
            grown.used
        );
        let file = std::mem::replace(&mut self.file, Arc::new(grown.file));
        let map = std::mem::replace(&mut self.map, Arc::new(grown.map));
        self.pending = SlotMap::default();
        // A running KeyFlush writes the old file; the grown table holds
        // its slots (`copy_into` read them here).
        self.flushing = Arc::default();
        self.slots = grown.slots;
        self.used = grown.used;
        (file, map)
    }

    /// Doubles the table at once (see [`Grown`]); at open, where nothing
    /// runs concurrently. A running database grows it without its lock
    /// (`Inner::grow_index`).
    fn grow(&mut self, io: &dyn FileIo) -> Result<()> {
        let mut grown = Grown::create(&self.dir, self.seed, self.slots, io)?;
        self.copy_into(&mut grown, 0, self.slots);
        grown.finish(&self.dir, io)?;
        drop(self.replace(grown));
        Ok(())
    }

    /// The file's handle, to fsync it without the database lock.
    pub fn file_handle(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn file_bytes(&self) -> u64 {
        TABLE_HEADER_BYTES as u64 + self.slots * SLOT_BYTES as u64
    }
}

/// A write of the slots in `KeyIndex::flushing` into `keys.idx`, run
/// without the database lock (`KeyIndex::flush_begin`, `write`, then
/// `KeyIndex::flush_end` under it). Only one runs at a time
/// (`Inner::flush_keys`), and nothing else writes the file meanwhile.
pub struct KeyFlush {
    path: PathBuf,
    file: Arc<File>,
    map: Arc<MmapMut>,
    slots: Arc<SlotMap<(u64, u32)>>,
}

impl KeyFlush {
    /// Writes the slots (nearby ones in one `pwrite`, the bytes between
    /// them rewritten unchanged); the caller fsyncs the file at the next
    /// checkpoint. Readers find these slots in `flushing` meanwhile.
    pub fn write(&self, io: &dyn FileIo) -> Result<()> {
        let mut slots: Vec<u64> = self.slots.keys().copied().collect();
        slots.sort_unstable();
        let ats: Vec<usize> = slots
            .iter()
            .map(|&i| TABLE_HEADER_BYTES + i as usize * SLOT_BYTES)
            .collect();
        let all = &self.slots;
        write_coalesced(
            &self.file,
            &self.path,
            &self.map,
            &ats,
            SLOT_BYTES,
            io,
            |k, out| {
                let (hash, id) = all[&slots[k]];
                out.copy_from_slice(&encode_slot(hash, id));
                Ok(())
            },
        )
    }
}

/// A doubled key index being built in `keys.idx.new`: filled from the
/// old table, fsynced, then renamed over `keys.idx`. Until the rename is
/// durable a crash leaves the old table, which holds every slot a
/// checkpoint counted; after it, the new one holds them too (it was fsynced
/// first).
pub struct Grown {
    path: PathBuf,
    file: File,
    map: MmapMut,
    slots: u64,
    used: u64,
}

impl Grown {
    /// An empty table of twice `slots` slots in `keys.idx.new`.
    pub fn create(dir: &Path, seed: u64, slots: u64, io: &dyn FileIo) -> Result<Grown> {
        let slots = (slots * 2).max(INDEX_SLOTS_MIN);
        let path = dir.join("keys.idx.new");
        let (file, map) = KeyIndex::create_file(&path, seed, slots, io)?;
        Ok(Grown {
            path,
            file,
            map,
            slots,
            used: 0,
        })
    }

    fn place(&mut self, hash: u64, id: u32) {
        let mask = self.slots - 1;
        let mut i = hash & mask;
        loop {
            let at = TABLE_HEADER_BYTES + i as usize * SLOT_BYTES;
            if decode_slot(&self.map[at..at + SLOT_BYTES]).0 == 0 {
                self.map[at..at + SLOT_BYTES].copy_from_slice(&encode_slot(hash, id));
                self.used += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    /// fsyncs the table, renames it over `keys.idx` and fsyncs the
    /// directory.
    pub fn finish(&self, dir: &Path, io: &dyn FileIo) -> Result<()> {
        io.sync_data(&self.file)
            .ctx(|| format!("fsync {}", self.path.display()))?;
        let to = KeyIndex::path(dir);
        io.rename(&self.path, &to)
            .ctx(|| format!("rename {} to {}", self.path.display(), to.display()))?;
        sync_dir(dir, io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::RealIo;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hypha-keyindex-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn hash(i: u64) -> u64 {
        crate::hash::hash64(&i.to_le_bytes(), 7) | 1
    }

    #[test]
    fn pending_slots_are_found_and_reach_the_file_in_batches() {
        let dir = temp_dir("pending");
        // Big enough not to grow (growing writes every slot anyway).
        let slots = (KEY_PENDING_INLINE_MAX as u64 * 4).next_power_of_two();
        let mut index = KeyIndex::create(&dir, 7, slots, &RealIo).expect("create");
        let n = KEY_PENDING_INLINE_MAX as u64 + 100;
        for i in 1..=n {
            index.insert(hash(i), i as u32, &RealIo).expect("insert");
            // Found at once, pending or written.
            assert_eq!(index.find(hash(i), |id| id == i as u32), Some(i as u32));
        }
        assert_eq!(index.slots, slots, "grew");
        assert_eq!(
            index.pending.len(),
            100,
            "not written at KEY_PENDING_INLINE_MAX"
        );
        let pending = index.pending.len() as u64;
        // What the file holds: every slot but the pending ones.
        let on_disk = KeyIndex::open(&dir, 7, &RealIo).expect("open");
        assert_eq!(on_disk.used, n - pending);
        index.write_pending(&RealIo).expect("write");
        let on_disk = KeyIndex::open(&dir, 7, &RealIo).expect("open");
        assert_eq!(on_disk.used, n);
        for i in 1..=n {
            assert_eq!(on_disk.find(hash(i), |id| id == i as u32), Some(i as u32));
        }
        assert_eq!(on_disk.find(hash(n + 1), |_| true), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn slots_being_flushed_are_found_and_not_reused() {
        let dir = temp_dir("flushing");
        let mut index = KeyIndex::create(&dir, 7, 1 << 12, &RealIo).expect("create");
        // Colliding hashes: every slot probes the same run.
        let same = |i: u64| (hash(1) & !0xfff) | 5 | (i << 40);
        for i in 1..=10 {
            index.insert(same(i), i as u32, &RealIo).expect("insert");
        }
        let job = index.flush_begin().expect("slots to write");
        assert!(index.pending.is_empty());
        // Inserted while the first ten are written: probes past them.
        for i in 11..=20 {
            index.insert(same(i), i as u32, &RealIo).expect("insert");
        }
        job.write(&RealIo).expect("write");
        for i in 1..=20 {
            assert_eq!(index.find(same(i), |id| id == i as u32), Some(i as u32));
        }
        drop(index.flush_end(job));
        assert!(index.flushing.is_empty());
        index.write_pending(&RealIo).expect("write");
        let on_disk = KeyIndex::open(&dir, 7, &RealIo).expect("open");
        assert_eq!(on_disk.used, 20, "a slot was written twice");
        for i in 1..=20 {
            assert_eq!(on_disk.find(same(i), |id| id == i as u32), Some(i as u32));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
