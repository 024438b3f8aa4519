//! The state behind the database lock: data files, tables, counters. Every
//! method here runs under `Db`'s `RwLock` (reads shared, writes exclusive).

use crate::error::{Error, IoContext, Result};
use crate::files::Log;
use crate::hash::key_hash;
use crate::io::FileIo;
use crate::keyindex::KeyIndex;
use crate::location::Location;
use crate::lookup::Lookup;
use crate::record::{self, Header, RecordKind, RecordMeta, RecordRef, Seq};
use crate::tables::Meta;
use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// An id's newest record: where it is, its header and its key.
pub type Current<'a> = (Location, Header, Cow<'a, [u8]>);

/// A checkpoint is taken when this many ids changed since the last one; it
/// bounds the overlay's memory and the replay after a crash.
pub const CHECKPOINT_IDS_MAX: usize = 1 << 16;
/// A checkpoint is taken when this many bytes were appended since the last
/// one; recovery replays at most about this much.
pub const CHECKPOINT_BYTES_MAX: u64 = 64 << 20;

pub struct Core {
    pub log: Log,
    pub lookup: Lookup,
    pub keys: KeyIndex,
    /// Fixed fields (keysize, file_size, history, seed) and the counters as
    /// of the last checkpoint.
    pub meta: Meta,
    pub seq: Seq,
    pub next_id: u32,
    pub live: u64,
    pub digest: u64,
    /// Bytes of the newest records that hold values (header, key, value).
    pub live_bytes: u64,
    pub ckpt_bytes: u64,
    /// Records with a seq up to this were rewritten by the last compaction.
    pub compact_seq: Seq,
    /// Random id of the last compaction.
    pub compact_id: u64,
    /// Highest seq of a delete compaction dropped (see `Db::read_from`).
    pub tombstone_horizon: Seq,
    /// The term this node's own writes carry (`Db::set_term`); 0 before
    /// failover.
    pub term: u64,
    /// The term of the newest record in the log.
    pub last_term: u64,
    /// Where the newest terms start in the log (the file `terms`).
    pub terms: crate::terms::Terms,
}

/// One mutation to append.
pub struct Write<'a> {
    pub id: u32,
    pub key: &'a [u8],
    pub kind: RecordKind,
    pub value: &'a [u8],
    /// `Some` when a replica applies a record with its original seq.
    pub seq: Option<Seq>,
    /// `Some` when a replica applies a record with its original term,
    /// deadline, request id and batch marker; `None`: the node's own term.
    pub meta: Option<RecordMeta>,
}

impl Core {
    /// The id holding `key` and the location of its newest record.
    ///
    /// A key is bound to one id; only after compaction dropped a deleted
    /// key's tombstone can a later put bind it to a new id, and a replica may
    /// then hold both (the old one ending in a delete). So a match whose
    /// newest record is a delete does not end the probe: a match holding a
    /// value wins, else the delete with the highest seq.
    pub fn find_key(&self, key: &[u8]) -> Result<Option<(u32, Location)>> {
        let hash = key_hash(key, self.keys.seed);
        let mut error = None;
        let mut deleted: Option<(Seq, u32, Location)> = None;
        let found = self.keys.find(hash, |id| match self.lookup.get(id) {
            Ok(loc) if !loc.is_none() => match self.log.header_and_key(loc) {
                Some((h, k)) if h.id == id && k == key => {
                    if h.kind == RecordKind::Put {
                        return true;
                    }
                    if deleted.is_none_or(|(seq, _, _)| h.seq > seq) {
                        deleted = Some((h.seq, id, loc));
                    }
                    false
                }
                _ => false,
            },
            Ok(_) => false,
            Err(e) => {
                error = Some(e);
                false
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        match found {
            Some(id) => Ok(Some((id, self.lookup.get(id)?))),
            None => Ok(deleted.map(|(_, id, loc)| (id, loc))),
        }
    }

    /// Assigns a fresh id to `key` and records it in the key index.
    pub fn new_key_id(&mut self, key: &[u8], ids_max: u32) -> Result<u32> {
        let id = self.next_id;
        if id == 0 || id > ids_max {
            return Err(Error::Full {
                reason: format!("all ids up to {ids_max} (ids_max) are assigned"),
            });
        }
        let io = self.log.io.clone();
        self.keys.insert(key_hash(key, self.keys.seed), id, &*io)?;
        Ok(id)
    }

    /// The header of the newest record of `id`, if any.
    pub fn current(&self, id: u32) -> Result<Option<Current<'_>>> {
        let loc = self.lookup.get(id)?;
        if loc.is_none() {
            return Ok(None);
        }
        let (h, key) = self.log.header_and_key(loc).ok_or_else(|| {
            self.log.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "record header",
                },
            )
        })?;
        if h.id != id {
            return Err(self.log.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "record id (lookup disagrees)",
                },
            ));
        }
        Ok(Some((loc, h, key)))
    }

    /// The previous version of the record `h` (at `loc`): its location and
    /// header, or `None` at the end of the chain. The previous version must
    /// be an earlier record of the same id — except that a record written
    /// while a compaction ran may point at a version that compaction moved:
    /// its chain ends there.
    pub fn prev_version(&self, h: &Header, loc: Location) -> Result<Option<(Location, Header)>> {
        if h.prev.is_none() {
            return Ok(None);
        }
        match self.log.header_and_key(h.prev) {
            Some((p, _)) if p.id == h.id && p.seq < h.seq => Ok(Some((h.prev, p))),
            _ if self.may_dangle(h) => Ok(None),
            _ => Err(self.log.corrupted(
                loc,
                crate::CodecError::BadField {
                    what: "previous version",
                },
            )),
        }
    }

    /// True if `h`'s previous-version pointer may point at a record a
    /// compaction moved (it was written after that compaction began).
    pub fn may_dangle(&self, h: &Header) -> bool {
        self.compact_seq > 0 && h.seq > self.compact_seq
    }

    /// Appends a record, updates the tables and counters, and takes a
    /// checkpoint when one is due. Returns the seq and the position (in
    /// `Log::appended`) just past the record: what a durable write must sync.
    pub fn append(&mut self, w: Write<'_>) -> Result<(Seq, u64)> {
        // An id at or past `next_id` was never written (a checkpoint's
        // table entries point at records that recovery replays, which set
        // `next_id` past them), so it has no previous version: its entry is
        // not read from the table, whose page may not be mapped yet (a page
        // fault under the write lock can wait on the checkpoint thread's
        // write of that page). An entry there anyway is damage in the table,
        // which this write replaces.
        let prev = match w.id >= self.next_id {
            true => Location::NONE,
            false => self.lookup.get(w.id)?,
        };
        let old = match prev.is_none() {
            true => None,
            false => Some(
                self.current(w.id)?
                    .map(|(_, h, _)| h)
                    .expect("lookup entry is not none"),
            ),
        };
        let seq = w.seq.unwrap_or(self.seq + 1);
        assert!(seq > self.seq, "seq {seq} after {}", self.seq);
        let meta = w.meta.unwrap_or(RecordMeta {
            term: self.term,
            ..RecordMeta::default()
        });
        if meta.term < self.last_term && self.seq > 0 {
            return Err(Error::InvalidRecord {
                detail: format!(
                    "seq {seq} has term {}, below the term {} of the newest record: terms never \
                     go back along a log",
                    meta.term, self.last_term
                ),
            });
        }
        if self.terms.changes(meta.term, seq) {
            // Durable before the record: the table never claims less than
            // the log holds (once per term; see `terms.rs`).
            let (dir, io) = (self.log.dir.clone(), self.log.io.clone());
            self.terms.note(meta.term, seq, &dir, &*io)?;
        }
        let len = record::encoded_len(w.key.len(), w.value.len(), &meta);
        let loc = self
            .log
            .reserve(len, seq, self.meta.keysize < 6, meta.flags() != 0)?;
        self.lookup.check_fits(loc)?;
        let start = self.log.buf.len();
        let r = RecordRef {
            seq,
            id: w.id,
            kind: w.kind,
            key: w.key,
            value: w.value,
            meta,
        };
        record::encode(&mut self.log.buf, &r, prev);
        self.log.batch_open = meta.batch_more;
        let new = record::decode_header(&self.log.buf[start..])
            .ok()
            .flatten()
            .expect("record just encoded");
        self.lookup.set(w.id, loc);
        self.account(old.as_ref(), &new);
        self.seq = seq;
        self.last_term = meta.term;
        self.next_id = self.next_id.max(w.id.saturating_add(1));
        self.ckpt_bytes += len as u64;
        self.log.appended += len as u64;
        // A full buffer is written out after the lock is released
        // (`Inner::try_mutate`).
        Ok((seq, self.log.appended))
    }

    /// Updates live count, live bytes and digest for a record replacing `old`.
    pub fn account(&mut self, old: Option<&Header>, new: &Header) {
        if let Some(o) = old.filter(|o| o.kind == RecordKind::Put) {
            self.digest = self.digest.wrapping_sub(o.pair_hash);
            // Saturating: a damaged log must not be able to panic the engine.
            self.live = self.live.saturating_sub(1);
            self.live_bytes = self.live_bytes.saturating_sub(o.record_len() as u64);
        }
        if new.kind == RecordKind::Put {
            self.digest = self.digest.wrapping_add(new.pair_hash);
            self.live += 1;
            self.live_bytes += new.record_len() as u64;
        }
    }

    /// True when a checkpoint is due (see `CHECKPOINT_IDS_MAX`,
    /// `CHECKPOINT_BYTES_MAX`); the writer that sees it takes one after
    /// releasing the lock.
    pub fn checkpoint_due(&self) -> bool {
        self.lookup.dirty() >= CHECKPOINT_IDS_MAX || self.ckpt_bytes >= CHECKPOINT_BYTES_MAX
    }

    /// Checkpoint, phase 1 (under the write lock): writes the buffer, freezes
    /// the lookup overlay and the counters as of the end of the log. Returns
    /// the data files to fsync and the checkpoint to write.
    ///
    /// Phase 2 (no lock) fsyncs those files; phase 3 (`Inner::checkpoint`:
    /// `FrozenWrite`, `KeyFlush`, each taken and ended under the lock,
    /// written without it) writes the frozen entries into `lookup.tbl`,
    /// which then references only durable records, and the pending
    /// key-index slots into `keys.idx`; phase 4 (no lock) fsyncs the tables
    /// and replaces `meta`. So a checkpoint holds the lock for memory work
    /// only, never for a table write or an fsync.
    pub fn checkpoint_begin(&mut self) -> Result<(Vec<Arc<File>>, Meta)> {
        self.log.flush()?;
        let files = self.log.files_from(self.meta.ckpt.file);
        self.lookup.freeze();
        let meta = Meta {
            ckpt: self.log.end(),
            seq: self.seq,
            next_id: self.next_id,
            live: self.live,
            digest: self.digest,
            index_used: self.keys.used,
            index_slots: self.keys.slots,
            compact_seq: self.compact_seq,
            tombstone_horizon: self.tombstone_horizon,
            live_bytes: Some(self.live_bytes),
            file_count: self.log.order.len() as u32,
            compact_id: self.compact_id,
            last_term: self.last_term,
            ..self.meta
        };
        self.ckpt_bytes = 0;
        Ok((files, meta))
    }

    /// Checkpoint, phase 3 at once (holding `&mut self`, after the data
    /// files are durable): writes the frozen lookup entries and the pending
    /// key-index slots; returns the table files to fsync.
    pub fn checkpoint_tables(&mut self) -> Result<[Arc<File>; 2]> {
        self.lookup.write_frozen(&*self.log.io)?;
        self.keys.write_pending(&*self.log.io)?;
        Ok(self.table_files())
    }

    /// The table files, to fsync without the lock.
    pub fn table_files(&self) -> [Arc<File>; 2] {
        [self.lookup.file_handle(), self.keys.file_handle()]
    }

    /// All phases of a checkpoint at once, holding `&mut self` throughout
    /// (open and close). The newest file is trimmed first, so a cleanly
    /// closed database has no zeros written ahead.
    pub fn checkpoint(&mut self) -> Result<Location> {
        let io = self.log.io.clone();
        self.log.trim()?;
        if let Some(seal) = self.log.unsealed.take() {
            seal.sync(&self.log.dir, &*io)?;
        }
        let (files, meta) = self.checkpoint_begin()?;
        sync_files(&files, &self.log.dir, &*io)?;
        let tables = self.checkpoint_tables()?;
        sync_files(&tables, &self.log.dir, &*io)?;
        write_meta(&self.log.dir, &meta, &*io)?;
        self.meta = meta;
        log::debug!(
            "checkpoint at file {} offset {} (seq {})",
            meta.ckpt.file,
            meta.ckpt.offset,
            meta.seq
        );
        Ok(meta.ckpt)
    }

    /// Bytes of all data files, tables and buffer.
    pub fn disk_bytes(&self) -> u64 {
        self.log.data_bytes() + self.lookup.file_bytes() + self.keys.file_bytes()
    }
}

/// fdatasyncs `files` (of the database in `dir`).
pub fn sync_files(files: &[Arc<File>], dir: &Path, io: &dyn FileIo) -> Result<()> {
    for f in files {
        io.sync_data(f)
            .ctx(|| format!("fsync a data file or table in {}", dir.display()))?;
    }
    Ok(())
}

/// Replaces `dir/meta` atomically: write `meta.tmp`, fsync, rename, fsync dir.
pub fn write_meta(dir: &Path, meta: &Meta, io: &dyn FileIo) -> Result<()> {
    crate::dir::replace_file(dir, "meta", &meta.encode(), io)
}
