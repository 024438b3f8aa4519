//! Opening a database: create it, or load the checkpoint and replay the log
//! written since, truncating a torn tail.
//!
//! Recovery reads only what was written after the last checkpoint (at most
//! about `CHECKPOINT_BYTES_MAX`), so its time does not grow with the
//! database. A record that fails its checks ends the log there: its bytes and
//! everything after are moved to `torn/` (unless they are all zeros, as after
//! a power cut) and the file is truncated, so no byte is destroyed and no
//! corrupt value is ever served.

mod setup;
use setup::{check_options, fresh_meta};

use crate::cut::{cut_tail, keep_cut, Keep};
use crate::dir::{data_path, read_if_exists, sync_dir};
use crate::error::{CodecError, Error, IoContext, Result};
use crate::files::{DataFile, Log};
use crate::hash::key_hash;
use crate::io::FileIo;
use crate::keyindex::KeyIndex;
use crate::limits::{BATCH_RECORDS_MAX, FILE_HEADER_BYTES, INDEX_SLOTS_MIN, META_BYTES};
use crate::location::Location;
use crate::lookup::Lookup;
use crate::marker::{finish_or_undo, remove_marker};
use crate::options::Options;
use crate::record::{self, Seq};
use crate::state::{write_meta, Core};
use crate::tables::{Marker, Meta};
use crate::terms::Terms;
use crate::truncate;
use std::fs;
use std::path::Path;
use std::sync::Arc;

/// What `open` found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Records replayed from the checkpoint on.
    pub replayed: u64,
    /// Bytes cut off the end of the log (torn or corrupt tail). Zeros past
    /// the last record are cut too, and counted in `zeros_cut`.
    pub truncated_bytes: u64,
    /// Where the tail was cut, if it was.
    pub truncated_at: Option<(u16, u32)>,
    /// Zero bytes cut past the last record: space written ahead under
    /// `Fsync::Always`, or, under the other modes, pages a power cut left
    /// unwritten (writes that were never synced).
    pub zeros_cut: u64,
    /// The tables were rebuilt from the whole log.
    pub rebuilt: bool,
    /// Bytes of records cut by a rejoin (`Db::truncate_after`), kept in
    /// `diverged/after-SEQ/`.
    pub diverged_bytes: u64,
    /// The seq the log was cut back to by a rejoin, if it was.
    pub diverged_after: Option<u64>,
}

/// Opens (or creates) the database in `dir`: the state to serve from and
/// what recovery did.
pub fn open_core(dir: &Path, opts: &Options) -> Result<(Core, Recovery)> {
    let io = opts.io.clone();
    let meta_path = dir.join("meta");
    let stored = match read_if_exists(&meta_path)? {
        Some(bytes) => Some(Meta::decode(&bytes).map_err(|cause| Error::Corrupted {
            file: meta_path.clone(),
            offset: 0,
            cause,
        })?),
        None => None,
    };
    // A compaction that wrote its marker is finished here; one that did not
    // left only `.compact` files, which are removed.
    let marker = finish_or_undo(dir, &*io)?;
    let numbers = data_file_numbers(dir)?;
    let mut report = Recovery::default();
    let mut meta = match stored {
        Some(m) => {
            check_options(&m, opts, dir)?;
            m
        }
        None => {
            if !numbers.is_empty() {
                log::warn!(
                    "{} has data files but no meta: rebuilding the tables from the whole log \
                     under a new history id",
                    dir.display()
                );
                report.rebuilt = true;
            }
            fresh_meta(opts)
        }
    };
    if numbers.is_empty() {
        let mut core = create(dir, meta, io)?;
        core.terms = Terms::load(dir, 0, 0, &*core.log.io)?;
        return Ok((core, report));
    }
    let files = open_files(dir, &numbers, &meta, &mut report, &*io)?;
    let mut log = Log::new(dir.to_path_buf(), meta.file_size, files, io)?;
    let truncating = truncate::pending(dir)?;
    if let Some(after) = truncating {
        // A rejoin's cut: the tables may name cut records, so they are
        // rebuilt, and the log ends at `after` (`Db::truncate_after`).
        let cut = truncate::apply(
            &mut log,
            after,
            meta.compact_seq.max(meta.tombstone_horizon),
        )?;
        report.diverged_bytes += cut.bytes;
        report.diverged_after = Some(after);
        report.rebuilt = true;
        meta.seq = after;
    }
    if let Some(m) = &marker {
        follow_marker(&mut meta, m, &mut report, dir);
    }
    if !report.rebuilt {
        check_file_count(&log, &meta)?;
    }
    let (lookup, keys) = load_tables(&log, &mut meta, &mut report, opts)?;
    let mut core = core_from(log, lookup, keys, meta);
    replay(&mut core, &mut report)?;
    if meta.live_bytes.is_none() {
        core.live_bytes = count_live_bytes(&core)?;
    }
    core.checkpoint()?;
    if marker.is_some() {
        remove_marker(dir, &*core.log.io)?;
    }
    if truncating.is_some() {
        truncate::finish(dir, &*core.log.io)?;
    }
    // After the cut: a cut's terms go with its records.
    core.terms = Terms::load(dir, core.seq, core.last_term, &*core.log.io)?;
    if report.replayed > 0 || report.truncated_bytes > 0 || report.zeros_cut > 0 {
        log::info!(
            "recovered {}: replayed {} records since the checkpoint, cut {} bytes of torn or \
             corrupt tail and {} zero bytes past the last record",
            dir.display(),
            report.replayed,
            report.truncated_bytes,
            report.zeros_cut
        );
    }
    Ok((core, report))
}

/// A new database in the empty directory `dir`.
fn create(dir: &Path, mut meta: Meta, io: Arc<dyn FileIo>) -> Result<Core> {
    let f = DataFile::create(dir, 0, 1, meta.file_size, &*io)?;
    let log = Log::new(dir.to_path_buf(), meta.file_size, vec![f], io)?;
    let lookup = Lookup::create(dir, meta.keysize, &*log.io)?;
    let keys = KeyIndex::create(dir, meta.hash_seed, INDEX_SLOTS_MIN, &*log.io)?;
    meta.ckpt = log.end();
    meta.index_slots = keys.slots;
    meta.live_bytes = Some(0);
    meta.file_count = 1;
    write_meta(dir, &meta, &*log.io)?;
    Ok(core_from(log, lookup, keys, meta))
}

/// A compaction committed (marker `m`) since the checkpoint `meta`: its
/// counters win, and unless its final checkpoint was taken the tables are
/// rebuilt from the log.
fn follow_marker(meta: &mut Meta, m: &Marker, report: &mut Recovery, dir: &Path) {
    if meta.compact_id != m.compact_id {
        log::warn!(
            "{}: a compaction was interrupted while it switched files; rebuilding the \
             tables from the log",
            dir.display()
        );
        report.rebuilt = true;
    }
    meta.compact_seq = meta.compact_seq.max(m.compact_seq);
    meta.tombstone_horizon = meta.tombstone_horizon.max(m.tombstone_horizon);
    meta.compact_id = m.compact_id;
    meta.seq = meta.seq.max(m.compact_seq);
    meta.next_id = meta.next_id.max(m.next_id);
}

/// The lookup table and key index as the checkpoint left them, or new empty
/// ones (and a checkpoint to rebuild them from the whole log) if they are
/// damaged or a rebuild was decided.
fn load_tables(
    log: &Log,
    meta: &mut Meta,
    report: &mut Recovery,
    opts: &Options,
) -> Result<(Lookup, KeyIndex)> {
    let dir = log.dir.as_path();
    let io = &*log.io;
    if !report.rebuilt {
        let lookup = Lookup::open(dir, meta.keysize, io);
        let keys = KeyIndex::open(dir, meta.hash_seed, io);
        match (lookup, keys) {
            (Ok(l), Ok(k)) => return Ok((l, k)),
            (l, k) => {
                let why = l
                    .err()
                    .or(k.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                log::warn!(
                    "rebuilding lookup table and key index of {} from the log: {why}",
                    dir.display()
                );
            }
        }
    }
    report.rebuilt = true;
    // Rebuilding keeps what the log alone may not show: a compaction may
    // have dropped the newest records (deletes), whose seqs and ids must
    // never be issued again.
    *meta = Meta {
        history_id: meta.history_id,
        hash_seed: meta.hash_seed,
        compact_seq: meta.compact_seq,
        tombstone_horizon: meta.tombstone_horizon,
        compact_id: meta.compact_id,
        seq: meta.seq.max(meta.compact_seq),
        next_id: meta.next_id,
        ckpt: Location::NONE,
        live_bytes: Some(0),
        ..fresh_meta(opts)
    };
    Ok((
        Lookup::create(dir, meta.keysize, io)?,
        KeyIndex::create(dir, meta.hash_seed, INDEX_SLOTS_MIN, io)?,
    ))
}

fn core_from(log: Log, lookup: Lookup, keys: KeyIndex, meta: Meta) -> Core {
    Core {
        log,
        lookup,
        keys,
        seq: meta.seq,
        next_id: meta.next_id,
        live: meta.live,
        digest: meta.digest,
        live_bytes: meta.live_bytes.unwrap_or(0),
        ckpt_bytes: 0,
        compact_seq: meta.compact_seq,
        compact_id: meta.compact_id,
        tombstone_horizon: meta.tombstone_horizon,
        // A node goes on writing in the term of its log until told another
        // (`Db::set_term`).
        term: meta.last_term,
        last_term: meta.last_term,
        terms: Default::default(),
        meta,
    }
}

/// Numbers of the data files `N.db` in `dir`, ascending.
fn data_file_numbers(dir: &Path) -> Result<Vec<u16>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))? {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".db")) else {
            continue;
        };
        if let Ok(n) = stem.parse::<u16>() {
            if n.to_string() == stem {
                numbers.push(n);
            }
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Opens the data files and checks their headers. A torn header (a crash
/// while the newest file was created) is accepted on one file that the
/// checkpoint does not name: that file is cut like a torn tail.
fn open_files(
    dir: &Path,
    numbers: &[u16],
    meta: &Meta,
    report: &mut Recovery,
    io: &dyn FileIo,
) -> Result<Vec<DataFile>> {
    let mut files = Vec::with_capacity(numbers.len());
    let mut torn = Vec::new();
    for &n in numbers {
        let f = DataFile::open(data_path(dir, n), io)?;
        if f.header.file_no == n {
            files.push(f);
        } else if f.header.file_no == u16::MAX && n != u16::MAX {
            torn.push((n, f));
        } else {
            return Err(bad_header(&f));
        }
    }
    let named = !meta.ckpt.is_none() && meta.file_count > 0;
    match torn.len() {
        0 => {}
        1 if files.is_empty() || (named && torn[0].0 == meta.ckpt.file) => {
            return Err(bad_header(&torn[0].1));
        }
        1 => {
            let (n, f) = torn.pop().expect("one torn file");
            keep_cut(dir, n, 0, &f.whole()?, Keep::Torn, io)?;
            report.truncated_bytes += f.len as u64;
            report.truncated_at = Some((n, 0));
            io.remove_file(&f.path)
                .ctx(|| format!("remove {}", f.path.display()))?;
            sync_dir(dir, io)?;
        }
        _ => return Err(bad_header(&torn[0].1)),
    }
    Ok(files)
}

fn bad_header(f: &DataFile) -> Error {
    Error::Corrupted {
        file: f.path.clone(),
        offset: 0,
        cause: CodecError::BadField {
            what: "data file header (number or length)",
        },
    }
}

/// With a checkpoint that counts files, a missing older file is an error
/// that names what to restore, never a silently shorter log.
fn check_file_count(log: &Log, meta: &Meta) -> Result<()> {
    if meta.file_count == 0 {
        return Ok(());
    }
    let found = log.position(meta.ckpt.file).map(|i| i as u32 + 1);
    if found != Some(meta.file_count) {
        return Err(Error::BadOptions {
            detail: format!(
                "{}: the checkpoint counts {} data files up to {}.db, found {}: a data file \
                 is missing; restore it",
                log.dir.display(),
                meta.file_count,
                meta.ckpt.file,
                found.map_or("none".to_string(), |n| n.to_string())
            ),
        });
    }
    Ok(())
}

/// Replays the records from the checkpoint (or, rebuilding, from the start)
/// to the end of the log, in log order. The records of an atomic batch are
/// replayed together once its last one is read; a batch the log ends inside
/// is cut with the torn tail. A record this release cannot apply (a newer
/// hypha wrote it) stops the open and changes nothing.
fn replay(core: &mut Core, report: &mut Recovery) -> Result<()> {
    let first = core.log.order[0];
    let mut pos = core.meta.ckpt;
    if report.rebuilt || pos.is_none() || core.log.position(pos.file).is_none() {
        pos = Location {
            file: first,
            offset: FILE_HEADER_BYTES as u32,
        };
    }
    pos.offset = pos.offset.max(FILE_HEADER_BYTES as u32);
    // The records of a batch not ended yet.
    let mut batch: Vec<(record::Header, Location)> = Vec::new();
    loop {
        let file = core.log.file(pos.file).expect("replayed file is open");
        let len = file.len;
        // Mapped for the replay only (one file at a time).
        let map = file.own_map()?;
        if pos.offset > len {
            return Err(Error::Corrupted {
                file: file.path.clone(),
                offset: len as u64,
                cause: CodecError::BadField {
                    what: "file shorter than the checkpoint says",
                },
            });
        }
        while pos.offset < len {
            let bytes = &map[pos.offset as usize..];
            let decoded = record::decode(bytes);
            let (header, key) = match decoded {
                Ok(Some(d)) => (d.header, d.key.to_vec()),
                Err(cause @ CodecError::Unsupported { .. }) => {
                    return Err(Error::Corrupted {
                        file: core.log.file(pos.file).expect("open").path.clone(),
                        offset: pos.offset as u64,
                        cause,
                    })
                }
                Ok(None) | Err(_) => {
                    if let Err(e) = &decoded {
                        // All zeros from here is the normal end of a log
                        // written ahead (cut_tail reports it).
                        if !bytes.iter().all(|&b| b == 0) {
                            log::warn!(
                                "bad record in file {} at offset {}: {e}",
                                pos.file,
                                pos.offset
                            );
                        }
                    }
                    let cut = batch.first().map_or(pos, |&(_, at)| at);
                    cut_torn(&mut core.log, cut, report)?;
                    return Ok(());
                }
            };
            let len = header.record_len() as u32;
            if header.meta.batch_more || !batch.is_empty() {
                if batch.len() >= BATCH_RECORDS_MAX {
                    log::warn!(
                        "a batch of more than {BATCH_RECORDS_MAX} records (BATCH_RECORDS_MAX) \
                         in file {} at offset {}: cut as corrupt",
                        pos.file,
                        pos.offset
                    );
                    let cut = batch[0].1;
                    cut_torn(&mut core.log, cut, report)?;
                    return Ok(());
                }
                batch.push((header, pos));
                if !header.meta.batch_more {
                    replay_batch(core, &mut batch, report)?;
                }
            } else {
                replay_one(core, &header, &key, pos, report.rebuilt)?;
                report.replayed += 1;
            }
            pos.offset += len;
        }
        match next_file(core, pos.file, &batch, report)? {
            Some(next) => pos = next,
            None => return Ok(()),
        }
    }
}

/// Where replay goes on after file `file`, or `None` where the log ends:
/// after the newest file, or where a power cut took the tail of the file a
/// rollover sealed (the next file says how long it was sealed at; nothing
/// after it was acknowledged). A batch the log ends inside is cut whole.
fn next_file(
    core: &mut Core,
    file: u16,
    batch: &[(record::Header, Location)],
    report: &mut Recovery,
) -> Result<Option<Location>> {
    let next = core.log.next_after(file);
    let end = match next {
        Some(n) if !lost_tail(&core.log, file, n, core.compact_seq) => {
            return Ok(Some(Location {
                file: n,
                offset: FILE_HEADER_BYTES as u32,
            }))
        }
        None if batch.is_empty() => return Ok(None),
        _ => Location {
            file,
            offset: core.log.file(file).expect("open").len,
        },
    };
    let cut = batch.first().map_or(end, |&(_, at)| at);
    cut_torn(&mut core.log, cut, report)?;
    Ok(None)
}

/// True if file `next` was created by sealing `file` at a length `file`
/// no longer has. Only a file newer than the last compaction can be the
/// one sealed (compaction outputs hold seqs up to `compact_seq` and replace
/// the files that were sealed then).
fn lost_tail(log: &Log, file: u16, next: u16, compact_seq: Seq) -> bool {
    let (Some(f), Some(n)) = (log.file(file), log.file(next)) else {
        return false;
    };
    n.header.prev_len != 0 && f.header.first_seq > compact_seq && f.len < n.header.prev_len
}

/// Replays the records of one whole batch (and empties `batch`).
fn replay_batch(
    core: &mut Core,
    batch: &mut Vec<(record::Header, Location)>,
    report: &mut Recovery,
) -> Result<()> {
    for (h, at) in batch.drain(..) {
        let key = match core.log.header_and_key(at) {
            Some((_, key)) => key.to_vec(),
            None => Vec::new(),
        };
        replay_one(core, &h, &key, at, report.rebuilt)?;
        report.replayed += 1;
    }
    Ok(())
}

fn replay_one(
    core: &mut Core,
    h: &record::Header,
    key: &[u8],
    loc: Location,
    rebuilding: bool,
) -> Result<()> {
    let old = if rebuilding {
        // Rebuilding in log order, the lookup entry is exactly the previous
        // version (a record's own pointer may lead to a file compaction
        // removed).
        let cur = core.lookup.get(h.id)?;
        match cur.is_none() {
            true => None,
            false => core.log.header_and_key(cur).map(|(o, _)| o),
        }
    } else {
        // From a checkpoint the lookup file may run ahead of it, so the
        // record's own pointer names what it replaced. It must be an earlier
        // record of the same id: a record whose CRC holds but whose chain
        // does not cannot be trusted, and the counters would go wrong.
        core.prev_version(h, loc)?.map(|(_, p)| p)
    };
    core.lookup.set(h.id, loc);
    if !key.is_empty() {
        let hash = key_hash(key, core.keys.seed);
        if core.keys.find(hash, |id| id == h.id).is_none() {
            let io = core.log.io.clone();
            core.keys.insert(hash, h.id, &*io)?;
        }
    }
    core.account(old.as_ref(), h);
    core.seq = core.seq.max(h.seq);
    core.last_term = h.meta.term;
    core.term = core.term.max(h.meta.term);
    core.next_id = core.next_id.max(h.id.saturating_add(1));
    Ok(())
}

/// Bytes of the newest records holding values, counted once when a
/// version-1 checkpoint (which lacks the counter) is opened.
fn count_live_bytes(core: &Core) -> Result<u64> {
    let mut total = 0u64;
    for id in 1..core.lookup.id_bound().min(u32::MAX as u64) {
        if let Some((_, h, _)) = core.current(id as u32)? {
            if h.kind == record::RecordKind::Put {
                total += h.record_len() as u64;
            }
        }
    }
    Ok(total)
}

/// Ends the log at `at`, a torn or corrupt tail (kept in `torn/`).
fn cut_torn(log: &mut Log, at: Location, report: &mut Recovery) -> Result<()> {
    let cut = cut_tail(log, at, Keep::Torn)?;
    report.zeros_cut += cut.zeros;
    if cut.bytes > 0 {
        report.truncated_bytes += cut.bytes;
        report.truncated_at = Some((at.file, at.offset));
    }
    Ok(())
}

const _: () = assert!(META_BYTES < 4096);
