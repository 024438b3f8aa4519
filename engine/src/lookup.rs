//! The lookup table `lookup.tbl`: id → location of the id's newest record.
//!
//! Invariant: the file only ever references records that are durable in the
//! data files. Changes since the last checkpoint live in `overlay` (bounded by
//! `CHECKPOINT_IDS_MAX`) and reach the file only at a checkpoint, after the
//! data files were fsynced. So after a crash the file is the table as of some
//! point between the last checkpoint and the durable end of the log, and
//! replaying the log from the checkpoint makes it exact.
//!
//! A checkpoint writes the frozen entries without the database lock
//! ([`FrozenWrite`]): readers find those ids in `frozen`, never in the
//! mapping, until the write is done, so they never see a half-written entry.

use crate::error::{Error, IoContext, Result};
use crate::io::{FileIo, OpenMode};
use crate::limits::TABLE_HEADER_BYTES;
use crate::location::{decode_entry, encode_entry, Location};
use crate::shardmap::IdMap;
use crate::tables::{TableHeader, LOOKUP_MAGIC};
use memmap2::MmapMut;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Ids the table file grows by at least (so growth is rare).
const GROW_IDS_MIN: u64 = 1 << 14;

/// Table entries (lookup entries, key-index slots) closer than this share
/// one `pwrite`, the bytes between them rewritten unchanged
/// (`write_coalesced`).
const COALESCE_GAP_BYTES: usize = 4096;
/// Longest run of a table written by one `pwrite`.
const COALESCE_RUN_BYTES_MAX: usize = 256 << 10;

pub struct Lookup {
    path: PathBuf,
    file: Arc<File>,
    /// Shared with a running [`FrozenWrite`] (which copies the unchanged
    /// bytes between entries from it).
    map: Arc<MmapMut>,
    keysize: u8,
    /// Ids the file has entries for (id 0 included, never used).
    capacity: u64,
    overlay: IdMap<Location>,
    /// Entries a running checkpoint is writing to the file: the overlay as
    /// of the checkpoint's position (read after `overlay`, before the file).
    /// Shared with the checkpoint's [`FrozenWrite`]; cleared (by
    /// `frozen_written`) only once the file holds them.
    frozen: Arc<IdMap<Location>>,
}

/// A checkpoint's write of the frozen entries into `lookup.tbl`, run
/// without the database lock (`Lookup::frozen_write`, `write`, then
/// `Lookup::frozen_written` under it). Only one runs at a time (the
/// checkpoint lock), and nothing else writes the file meanwhile.
pub struct FrozenWrite {
    path: PathBuf,
    file: Arc<File>,
    map: Arc<MmapMut>,
    keysize: u8,
    capacity: u64,
    /// Set when `write` grew the file: the mapping and capacity to take.
    grown: bool,
    entries: Arc<IdMap<Location>>,
}

impl Lookup {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("lookup.tbl")
    }

    /// Creates an empty table (replacing any file there).
    pub fn create(dir: &Path, keysize: u8, io: &dyn FileIo) -> Result<Lookup> {
        let path = Self::path(dir);
        let file = io
            .open(&path, OpenMode::Truncate)
            .ctx(|| format!("create {}", path.display()))?;
        let header = TableHeader {
            width: keysize,
            seed: 0,
        }
        .encode(&LOOKUP_MAGIC);
        io.write_at(&file, &header, 0)
            .ctx(|| format!("write {}", path.display()))?;
        io.sync_data(&file)
            .ctx(|| format!("fsync {}", path.display()))?;
        Self::open_file(path, file, keysize)
    }

    /// Opens the table; an error means it must be rebuilt from the log.
    pub fn open(dir: &Path, keysize: u8, io: &dyn FileIo) -> Result<Lookup> {
        let path = Self::path(dir);
        let file = io
            .open(&path, OpenMode::Existing)
            .ctx(|| format!("open {}", path.display()))?;
        Self::open_file(path, file, keysize)
    }

    fn open_file(path: PathBuf, file: File, keysize: u8) -> Result<Lookup> {
        let len = file
            .metadata()
            .ctx(|| format!("stat {}", path.display()))?
            .len();
        let map = map_mut(&file, &path)?;
        let header =
            TableHeader::decode(&map, &LOOKUP_MAGIC, "lookup table header").map_err(|cause| {
                Error::Corrupted {
                    file: path.clone(),
                    offset: 0,
                    cause,
                }
            })?;
        if header.width != keysize {
            return Err(Error::BadOptions {
                detail: format!(
                    "{} has keysize {}, the database {keysize}",
                    path.display(),
                    header.width
                ),
            });
        }
        let capacity = (len - TABLE_HEADER_BYTES as u64) / keysize as u64;
        Ok(Lookup {
            path,
            file: Arc::new(file),
            map: Arc::new(map),
            keysize,
            capacity,
            overlay: IdMap::default(),
            frozen: Arc::default(),
        })
    }

    /// The newest record of `id`, or `Location::NONE`.
    pub fn get(&self, id: u32) -> Result<Location> {
        if let Some(&loc) = self.overlay.get(&id).or_else(|| self.frozen.get(&id)) {
            return Ok(loc);
        }
        if id as u64 >= self.capacity {
            return Ok(Location::NONE);
        }
        let at = TABLE_HEADER_BYTES + id as usize * self.keysize as usize;
        decode_entry(&self.map[at..at + self.keysize as usize]).map_err(|cause| Error::Corrupted {
            file: self.path.clone(),
            offset: at as u64,
            cause,
        })
    }

    /// Checks that `loc` fits this table's entries.
    pub fn check_fits(&self, loc: Location) -> Result<()> {
        let mut entry = [0u8; 6];
        encode_entry(loc, &mut entry[..self.keysize as usize]).map_err(|e| Error::Full {
            reason: e.to_string(),
        })
    }

    pub fn set(&mut self, id: u32, loc: Location) {
        self.overlay.insert(id, loc);
    }

    pub fn dirty(&self) -> usize {
        self.overlay.len()
    }

    /// Starts a checkpoint: the overlay becomes the frozen entries, which
    /// a [`FrozenWrite`] puts in the file once their records are durable.
    /// The new overlay gets room for as many ids as the old one held and a
    /// quarter more, so a steady stream of writes does not rehash it (which
    /// takes about a millisecond, under the write lock) as it fills, and an
    /// idle database keeps little.
    pub fn freeze(&mut self) {
        let room = self.overlay.len() + self.overlay.len() / 4;
        let fresh = IdMap::with_capacity(room);
        let newer = std::mem::replace(&mut self.overlay, fresh);
        if self.frozen.is_empty() {
            self.frozen = Arc::new(newer);
        } else {
            // A checkpoint that failed half way: keep its entries too.
            Arc::make_mut(&mut self.frozen).extend(newer);
        }
    }

    /// The write of the frozen entries, to run without the lock (`None`:
    /// nothing is frozen).
    pub fn frozen_write(&self) -> Option<FrozenWrite> {
        if self.frozen.is_empty() {
            return None;
        }
        Some(FrozenWrite {
            path: self.path.clone(),
            file: self.file.clone(),
            map: self.map.clone(),
            keysize: self.keysize,
            capacity: self.capacity,
            grown: false,
            entries: self.frozen.clone(),
        })
    }

    /// Ends a [`FrozenWrite`] that succeeded: takes the grown mapping, if
    /// any, and clears the frozen entries (the file holds them now).
    /// Returns what to drop (unmap, free) without the lock.
    pub fn frozen_written(&mut self, done: FrozenWrite) -> (FrozenWrite, Arc<IdMap<Location>>) {
        assert!(
            Arc::ptr_eq(&self.frozen, &done.entries),
            "the frozen lookup entries changed while a checkpoint wrote them"
        );
        let mut done = done;
        if done.grown {
            std::mem::swap(&mut self.map, &mut done.map);
            self.capacity = done.capacity;
        }
        (done, std::mem::take(&mut self.frozen))
    }

    /// Writes the frozen entries into the file at once (open and close,
    /// holding `&mut self`).
    pub fn write_frozen(&mut self, io: &dyn FileIo) -> Result<()> {
        let Some(mut job) = self.frozen_write() else {
            return Ok(());
        };
        job.write(io)?;
        drop(self.frozen_written(job));
        Ok(())
    }

    /// The file's handle, to fsync it without the database lock.
    pub fn file_handle(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Ids the table can hold without growing (an upper bound for scans).
    pub fn id_bound(&self) -> u64 {
        let overlay_max = self
            .overlay
            .keys()
            .chain(self.frozen.keys())
            .copied()
            .max()
            .map_or(0, |m| m as u64 + 1);
        self.capacity.max(overlay_max)
    }

    pub fn file_bytes(&self) -> u64 {
        TABLE_HEADER_BYTES as u64 + self.capacity * self.keysize as u64
    }
}

impl FrozenWrite {
    /// Writes the entries into the file (growing it if needed); the caller
    /// fsyncs the file. Runs without the database lock: readers look these
    /// ids up in `Lookup::frozen`, and the bytes between them are rewritten
    /// unchanged; growing only lengthens the file (the old mapping stays
    /// valid) and maps it anew for `Lookup::frozen_written` to take.
    ///
    /// The entries go in with `pwrite`, never through the mapping: pages
    /// dirtied through a shared mapping must be write-protected again when
    /// they are written back, one TLB shootdown (an interrupt to every core
    /// running this process) per page, which cost a writer on the other core
    /// about 45 % of its time. Nearby entries share one write: a run
    /// continues while the next entry is less than `COALESCE_GAP_BYTES` away,
    /// up to `COALESCE_RUN_BYTES_MAX`, the bytes in between copied from the
    /// mapping.
    pub fn write(&mut self, io: &dyn FileIo) -> Result<()> {
        let max_id = self.entries.keys().copied().max().unwrap_or(0) as u64;
        if max_id >= self.capacity {
            let capacity = (max_id + 1)
                .max(self.capacity * 2)
                .max(GROW_IDS_MIN)
                .min(u32::MAX as u64 + 1);
            let len = TABLE_HEADER_BYTES as u64 + capacity * self.keysize as u64;
            io.set_len(&self.file, len)
                .ctx(|| format!("grow {} to {len} bytes", self.path.display()))?;
            self.map = Arc::new(map_mut(&self.file, &self.path)?);
            self.capacity = capacity;
            self.grown = true;
        }
        let ks = self.keysize as usize;
        let mut ids: Vec<u32> = self.entries.keys().copied().collect();
        ids.sort_unstable();
        let ats: Vec<usize> = ids
            .iter()
            .map(|&id| TABLE_HEADER_BYTES + id as usize * ks)
            .collect();
        let entries = &self.entries;
        write_coalesced(&self.file, &self.path, &self.map, &ats, ks, io, |k, out| {
            encode_entry(entries[&ids[k]], out).map_err(|e| Error::Full {
                reason: e.to_string(),
            })
        })
    }
}

/// Writes `width`-byte entries at the byte offsets `ats` (ascending) of a
/// table file whose current bytes `map` shows, `fill(k, out)` encoding the
/// `k`th. Entries closer than `COALESCE_GAP_BYTES` share one `pwrite` (the
/// bytes between them rewritten unchanged from `map`), up to
/// `COALESCE_RUN_BYTES_MAX` per write.
pub fn write_coalesced(
    file: &File,
    path: &Path,
    map: &[u8],
    ats: &[usize],
    width: usize,
    io: &dyn FileIo,
    mut fill: impl FnMut(usize, &mut [u8]) -> Result<()>,
) -> Result<()> {
    let write = |run: &[u8], at: usize| -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        io.write_at(file, run, at as u64)
            .ctx(|| format!("write {}", path.display()))
    };
    let mut run: Vec<u8> = Vec::new();
    let mut run_at = 0usize;
    for (k, &at) in ats.iter().enumerate() {
        let run_end = run_at + run.len();
        if run.is_empty()
            || at >= run_end + COALESCE_GAP_BYTES
            || run.len() >= COALESCE_RUN_BYTES_MAX
        {
            write(&run, run_at)?;
            run.clear();
            run_at = at;
        } else {
            // The unchanged entries between the last one and this one.
            run.extend_from_slice(&map[run_end..at]);
        }
        let from = run.len();
        run.resize(from + width, 0);
        fill(k, &mut run[from..])?;
    }
    write(&run, run_at)
}

pub fn map_mut(file: &File, path: &Path) -> Result<MmapMut> {
    // SAFETY: the directory is locked against other hypha processes; this
    // process changes the file only with `&mut` to its owner (through this
    // mapping, `pwrite` or set_len, after which it maps again before touching
    // the new bytes), or without the lock through `pwrite` of entries that
    // readers meanwhile take from memory, never from the mapping (the
    // lookup's `frozen`, the key index's `flushing`), with the bytes between
    // them rewritten unchanged. So no slice of the mapping that is read
    // changes while it is alive.
    unsafe { MmapMut::map_mut(file) }.ctx(|| format!("mmap {}", path.display()))
}
